"""MNIST-style data for the Keras reference: the same IDX files as the port, read with NumPy.

The files live in torchvision's layout, ``<data_dir>/<folder>/raw/<name>``, so both frameworks
train on the same bytes. Only when none of the four files is there does this fall back to the
tutorial's own call, ``keras.datasets.<dataset>.load_data()`` (which downloads). This module
deliberately re-implements the small IDX reader instead of importing ``lightning_mnist``: the
reference must run without torch installed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

# dataset name -> torchvision's folder name under the data dir.
FOLDERS: dict[str, str] = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}

# (file name, magic number, number of items), in load_data()'s order: x_train, y_train, x_test,
# y_test. Magic 2051 = uint8 with 3 dimensions (images), 2049 = uint8 with 1 dimension (labels).
FILES: tuple[tuple[str, int, int], ...] = (
    ("train-images-idx3-ubyte", 2051, 60000),
    ("train-labels-idx1-ubyte", 2049, 60000),
    ("t10k-images-idx3-ubyte", 2051, 10000),
    ("t10k-labels-idx1-ubyte", 2049, 10000),
)

# MD5s of the official uncompressed MNIST files (docs/parity.md, "MNIST bytes"); a bit flip
# that keeps the header intact is caught only here. Other datasets get the structural checks alone.
MD5S: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    }
}

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class DataError(Exception):
    """A data file is missing, partial or corrupt; the message says which and what to do."""


def raw_dir(data_dir: str | Path, dataset: str = "mnist") -> Path:
    """The folder under the data root ``data_dir`` that holds a dataset's IDX files."""
    if dataset not in FOLDERS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {sorted(FOLDERS)}")
    return Path(data_dir) / FOLDERS[dataset] / "raw"


def parse_idx(buf: bytes) -> np.ndarray:
    """Decode a whole uint8 IDX file (2 zero bytes, type code 0x08, ndim, ndim big-endian
    uint32 sizes, then the payload) into an array of the header's shape."""
    if len(buf) < 4 or buf[:3] != b"\x00\x00\x08":
        raise ValueError("not a uint8 IDX file (bad magic number)")
    header = 4 + 4 * buf[3]
    shape = tuple(int(d) for d in np.frombuffer(buf[4:header], dtype=">u4"))
    if len(buf) != header + int(np.prod(shape)):
        raise ValueError(f"header says {header + int(np.prod(shape))} bytes, file has {len(buf)}")
    return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path: Path, magic: int, count: int, md5: str | None = None) -> np.ndarray:
    """Read one IDX file and check it is the one expected: ``magic`` 2051 for images (N, 28,
    28), 2049 for labels (N,), ``count`` items N, and the ``md5`` given (None: unchecked)."""
    buf = path.read_bytes()
    try:
        arr = parse_idx(buf)
    except ValueError as e:
        raise DataError(f"{path}: {e}; delete it and fetch the data again") from None
    want = (count, 28, 28) if magic == 2051 else (count,)
    if int.from_bytes(buf[:4], "big") != magic or arr.shape != want:
        raise DataError(f"{path}: shape {arr.shape}, expected {want}; fetch the data again")
    if md5 is not None and hashlib.md5(buf).hexdigest() != md5:
        raise DataError(f"{path}: MD5 differs from the official file; fetch the data again")
    if magic == 2049 and arr.size and int(arr.max()) > 9:
        at = int(np.argmax(arr > 9))
        raise DataError(f"{path}: label {int(arr[at])} at index {at} is not a digit 0-9")
    return arr


def load_data(data_dir: str | Path | None, dataset: str = "mnist") -> Arrays:
    """Load ``(x_train, y_train), (x_test, y_test)`` as uint8, like ``keras.datasets.mnist``:
    images (N, 28, 28) and labels (N,), 60,000 train and 10,000 test, from the IDX files in
    ``<data_dir>/<Folder>/raw``. When none of the four is there (or ``data_dir`` is None), the
    tutorial's ``keras.datasets.<dataset>.load_data()`` is called instead; when only some are
    there, that is an error, not a fallback."""
    folder = raw_dir(data_dir if data_dir is not None else ".", dataset)
    paths = [folder / name for name, _, _ in FILES]
    present = [p.is_file() for p in paths]
    if data_dir is None or not any(present):
        return _keras_load_data(dataset, folder if data_dir is not None else None)
    if not all(present):
        missing = ", ".join(p.name for p, ok in zip(paths, present, strict=True) if not ok)
        raise DataError(f"{folder}: missing {missing}; fetch the data again or empty the folder")
    md5s = MD5S.get(dataset, {})
    x_train, y_train, x_test, y_test = (
        read_idx(path, magic, count, md5s.get(name))
        for path, (name, magic, count) in zip(paths, FILES, strict=True)
    )
    return (x_train, y_train), (x_test, y_test)


def _keras_load_data(dataset: str, looked_in: Path | None) -> Arrays:
    """The tutorial's own loader; it downloads to ``~/.keras/datasets`` on first use."""
    import keras  # here, so that reading IDX files needs no keras import

    where = f"no IDX files in {looked_in}; " if looked_in else ""
    print(f"{where}using keras.datasets.{dataset}.load_data()")
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    before = _dirs(home)
    try:
        return getattr(keras.datasets, dataset).load_data()
    except Exception as e:  # download errors come in many types (URLError, OSError, ...)
        _remove_new_empty_dirs(home, before)  # a failed download leaves no folders behind
        raise DataError(
            f"{where}keras.datasets.{dataset}.load_data() failed ({type(e).__name__}: {e}); "
            "pass --data.data_dir with the IDX files (`lightning-mnist-data fetch` writes them)"
        ) from None


def _dirs(home: Path) -> set[Path]:
    """``home`` and the folders two levels under it (Keras keeps datasets/<name>/)."""
    found = [home, *home.glob("*"), *home.glob("*/*")] if home.is_dir() else []
    return {d for d in found if d.is_dir()}


def _remove_new_empty_dirs(home: Path, before: set[Path]) -> None:
    """Remove the empty folders under (and including) ``home`` that were not in ``before``."""
    for d in sorted(_dirs(home) - before, key=lambda d: len(d.parts), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
