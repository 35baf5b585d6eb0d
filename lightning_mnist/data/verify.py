"""Verify a dataset's four IDX files on every load (size, magic, dims, labels, MD5) and load
them as NumPy arrays. The MD5 of MNIST's 55 MB costs 0.11 s, so it is not cached: a cache keyed
on size and mtime would miss bit rot and in-place edits, the very failures it is for."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

from lightning_mnist.atomic import write_atomic
from lightning_mnist.data.catalogue import LABELS_MAGIC, DataError, DatasetSpec, IdxFile, get_spec

RECORD_NAME = "MD5SUMS"  # in the raw dir, `md5sum -c` format; written by `prepare` only


@dataclass(frozen=True)
class FileCheck:
    """What checking one file found."""

    name: str
    path: Path
    size: int | None  # bytes on disk; None when it cannot be stat'ed
    md5: str | None  # None when the file was not read that far
    md5_source: str  # the MD5 it was held to: "official", "recorded" (in MD5SUMS) or "none"
    error: str | None  # one line saying what is wrong and what to do; None when it is good
    missing: bool = False  # ``prepare`` fetches only missing files

    @property
    def ok(self) -> bool:
        return self.error is None


def md5_hex(data: bytes | bytearray | memoryview) -> str:
    """MD5 of ``data`` as hex (an integrity check, not security)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def fetch_command(data_dir: str | Path, spec: DatasetSpec) -> str:
    """The command that (re-)fetches ``spec`` into ``data_dir``, for error messages."""
    cmd = f"lightning-mnist-data fetch --data.data_dir {data_dir}"
    return cmd if spec.name == "mnist" else f"{cmd} --data.dataset {spec.name}"


def read_recorded_md5s(raw_dir: Path) -> dict[str, str]:
    """MD5s that ``prepare`` recorded in ``<raw_dir>/MD5SUMS`` (empty when there is none)."""
    try:
        text = (raw_dir / RECORD_NAME).read_text(encoding="ascii", errors="replace")
    except OSError:
        return {}
    rows = [line.split() for line in text.splitlines()]
    return {r[1].lstrip("*"): r[0].lower() for r in rows if len(r) == 2 and len(r[0]) == 32}


def record_md5s(raw_dir: Path, md5s: dict[str, str]) -> None:
    """Add ``md5s`` (file name -> MD5) to ``<raw_dir>/MD5SUMS``, atomically."""
    merged = {**read_recorded_md5s(raw_dir), **md5s}
    text = "".join(f"{md5}  {name}\n" for name, md5 in sorted(merged.items()))
    write_atomic(raw_dir / RECORD_NAME, text.encode("ascii"))


def read_idx(
    path: Path, f: IdxFile, num_classes: int, md5: str | None = None, note: str = ""
) -> tuple[np.ndarray, str]:
    """Check one file against ``f`` (labels below ``num_classes``, ``md5`` unless None) and
    return its array and MD5; ValueError ``"<what>: expected <x>{note}, found <y>"`` on the first
    problem, OSError when it cannot be read."""
    size = path.stat().st_size
    if size != f.size:  # before reading, so a wrong huge file costs nothing
        raise ValueError(f"size: expected {f.size} bytes, found {size}")
    with path.open("rb") as fh:
        magic = int.from_bytes(fh.read(4), "big")
    if magic != f.magic:
        raise ValueError(f"magic number: expected {f.magic}, found {magic}")
    try:
        arr = read_sn3_pascalvincent_tensor(str(path), strict=True).numpy()
    except (AssertionError, KeyError, RuntimeError, ValueError) as e:  # changed since the stat
        what = f"not an IDX file of {f.shape} uint8 values ({e or type(e).__name__})"
        raise ValueError(what) from None
    if arr.dtype != np.uint8 or arr.shape != f.shape:
        raise ValueError(f"header dims: expected {f.shape}, found {arr.shape}")
    if f.magic == LABELS_MAGIC and arr.size and int(arr.max()) >= num_classes:
        at = int(np.argmax(arr >= num_classes))
        raise ValueError(f"labels: expected 0..{num_classes - 1}, found {arr[at]} at index {at}")
    # The header is what the reader found (type uint8, these dims), so this is the file's MD5.
    digest = hashlib.md5(usedforsecurity=False)
    digest.update(bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes())
    digest.update(np.ascontiguousarray(arr).data)
    if md5 is not None and digest.hexdigest() != md5:
        raise ValueError(f"md5: expected {md5}{note}, found {digest.hexdigest()}")
    return arr, digest.hexdigest()


def _check_one(
    data_dir: str | Path, spec: DatasetSpec, f: IdxFile, recorded: dict[str, str]
) -> tuple[np.ndarray | None, FileCheck]:
    path = spec.raw_dir(data_dir) / f.name
    md5 = f.md5 or recorded.get(f.name)
    md5_source = "official" if f.md5 else "recorded" if md5 else "none"
    fix = f"Delete it and run `{fetch_command(data_dir, spec)}`"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        error = f"{path}: missing. Run `{fetch_command(data_dir, spec)}`"
        return None, FileCheck(f.name, path, None, None, md5_source, error, missing=True)
    except OSError as e:  # e.g. a parent is a file, or no permission on the dir
        error = f"{path}: cannot read it ({e.strerror}). Check --data.data_dir"
        return None, FileCheck(f.name, path, None, None, md5_source, error)
    note = "" if f.md5 else f" (recorded in {RECORD_NAME} at fetch)"
    try:
        arr, found = read_idx(path, f, spec.num_classes, md5, note)
        return arr, FileCheck(f.name, path, size, found, md5_source, None)
    except ValueError as e:
        error = f"{path}: {e}. {fix}"
    except OSError as e:
        error = f"{path}: cannot read it ({e.strerror}). Fix its permissions, or {fix}"
    return None, FileCheck(f.name, path, size, None, md5_source, error)


def check_files(data_dir: str | Path, dataset: str | DatasetSpec = "mnist") -> list[FileCheck]:
    """Check all four files of ``dataset`` in ``data_dir``; never raises for a bad file."""
    spec = get_spec(dataset)
    recorded = read_recorded_md5s(spec.raw_dir(data_dir))
    return [_check_one(data_dir, spec, f, recorded)[1] for f in spec.files]


def load_arrays(
    data_dir: str | Path, dataset: str | DatasetSpec = "mnist"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` of ``dataset`` in ``data_dir`` as uint8 arrays,
    each file verified first; a bad or missing one raises ``DataError`` naming it and the fix."""
    spec = get_spec(dataset)
    recorded = read_recorded_md5s(spec.raw_dir(data_dir))
    arrays = []
    for f in spec.files:
        arr, check = _check_one(data_dir, spec, f, recorded)
        if check.error is not None:
            raise DataError(check.error)
        arrays.append(arr)
    return tuple(arrays)
