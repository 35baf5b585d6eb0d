"""Verification on load: tiny IDX fixtures, each corruption, the real files, and ``verify``."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from lightning_mnist.atomic import write_atomic
from lightning_mnist.data import catalogue
from lightning_mnist.data.catalogue import (
    IMAGES_MAGIC,
    MNIST,
    DataError,
    DatasetSpec,
    IdxFile,
    get_spec,
    make_spec,
)
from lightning_mnist.data.cli import main
from lightning_mnist.data.sources import encode_idx
from lightning_mnist.data.verify import check_files, load_arrays, md5_hex, read_idx, record_md5s


def tiny_arrays(n_train: int = 12, n_test: int = 5, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train, dtype=np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test, dtype=np.uint8),
    )


def write_tiny(data_dir: Path, name: str = "mnist", folder: str = "MNIST", pin: bool = True):
    """Tiny files in torchvision's layout; returns (spec, arrays). ``pin``: spec holds MD5s."""
    arrays = tiny_arrays()
    blobs = [encode_idx(a) for a in arrays]
    md5s = tuple(md5_hex(b) for b in blobs) if pin else (None,) * 4
    spec = make_spec(name, folder, len(arrays[0]), len(arrays[2]), md5s=md5s)
    for f, blob in zip(spec.files, blobs, strict=True):
        write_atomic(spec.raw_dir(data_dir) / f.name, blob)
    return spec, arrays


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[DatasetSpec, tuple[np.ndarray, ...]]:
    return write_tiny(tmp_path)


def test_tiny_roundtrip(tmp_path, tiny):
    spec, arrays = tiny
    loaded = load_arrays(tmp_path, spec)
    for a, b in zip(arrays, loaded, strict=True):
        np.testing.assert_array_equal(a, b)
        assert b.dtype == np.uint8 and b.flags.writeable
    assert all(c.ok and c.md5_source == "official" for c in check_files(tmp_path, spec))


def test_idx_written_then_read_by_torchvision(tmp_path):
    """encode_idx's bytes read back through torchvision's reader, and the MD5 read_idx reports
    (rebuilt from what the reader found) is the MD5 of the file's bytes."""
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x"
    path.write_bytes(encode_idx(a))
    f = IdxFile("x", IMAGES_MAGIC, 2, rows=3, cols=4)
    arr, md5 = read_idx(path, f, num_classes=10)
    np.testing.assert_array_equal(arr, a)
    assert md5 == md5_hex(path.read_bytes())
    path.write_bytes(b"\x00\x00\x09\x03" + encode_idx(a)[4:])  # int8, not uint8
    with pytest.raises(ValueError, match="magic number: expected 2051, found 2307"):
        read_idx(path, f, num_classes=10)


def test_specs_come_from_torchvision():
    from torchvision.datasets import MNIST as TV
    from torchvision.datasets import FashionMNIST as TVF

    for spec, tv in ((MNIST, TV), (get_spec("fashion_mnist"), TVF)):
        assert spec.mirrors == tuple(tv.mirrors) and spec.folder == tv.__name__
        assert {(f"{f.name}.gz", f.gz_md5) for f in spec.files} == set(map(tuple, tv.resources))


def test_get_spec_names():
    assert get_spec("mnist") is MNIST
    assert get_spec("Fashion-MNIST").folder == "FashionMNIST"
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        get_spec("cifar")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1])


def _wrong_magic(path: Path) -> None:  # 2051 (images) -> 2049 (labels)
    data = bytearray(path.read_bytes())
    data[3] = 1
    path.write_bytes(bytes(data))


def _bad_label(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8 + 3] = 10
    path.write_bytes(bytes(data))


# (file index in spec.files, corruption, what the message must say)
CORRUPTIONS = {
    "truncated": (0, _truncate, "size: expected"),
    "flipped-train-images": (0, lambda p: flip_byte(p, 16 + 500), "md5: expected"),
    "flipped-train-labels": (1, lambda p: flip_byte(p, 8 + 2), "md5: expected"),
    "flipped-test-images": (2, lambda p: flip_byte(p, 16 + 7), "md5: expected"),
    "flipped-test-labels": (3, lambda p: flip_byte(p, 8), "md5: expected"),
    "wrong-magic": (2, _wrong_magic, "magic number: expected 2051, found 2049"),
    "label-10": (1, _bad_label, "labels: expected 0..9, found 10 at index 3"),
    "missing": (3, Path.unlink, "missing. Run `lightning-mnist-data fetch --data.data_dir"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corruption_is_one_line_naming_the_file(tmp_path, tiny, case):
    spec, _ = tiny
    index, corrupt, expected = CORRUPTIONS[case]
    path = spec.raw_dir(tmp_path) / spec.files[index].name
    corrupt(path)
    with pytest.raises(DataError) as err:
        load_arrays(tmp_path, spec)
    message = str(err.value)
    assert str(path) in message and expected in message and "\n" not in message
    assert "lightning-mnist-data fetch --data.data_dir" in message


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_cli_verify_fails_with_one_line(tmp_path, tiny, case, monkeypatch, capsys):
    spec, _ = tiny
    monkeypatch.setitem(catalogue.DATASETS, "mnist", spec)  # the CLI looks names up there
    assert main(["verify", "--data.data_dir", str(tmp_path)]) == 0
    index, corrupt, _ = CORRUPTIONS[case]
    corrupt(spec.raw_dir(tmp_path) / spec.files[index].name)
    capsys.readouterr()
    assert main(["verify", "--data.data_dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: ") and spec.files[index].name in err
    assert "FAIL" in out or "missing" in out


def test_fashion_layout_and_recorded_md5(tmp_path):
    spec, arrays = write_tiny(tmp_path, "fashion_mnist", "FashionMNIST", pin=False)
    assert (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()
    np.testing.assert_array_equal(load_arrays(tmp_path, spec)[2], arrays[2])
    assert {c.md5_source for c in check_files(tmp_path, spec)} == {"none"}
    # With no MD5 known, a flipped pixel passes; once `prepare` has recorded one, it is caught.
    raw = spec.raw_dir(tmp_path)
    record_md5s(raw, {f.name: md5_hex((raw / f.name).read_bytes()) for f in spec.files})
    assert {c.md5_source for c in check_files(tmp_path, spec)} == {"recorded"}
    flip_byte(raw / spec.train_images.name, 100)
    with pytest.raises(DataError, match="recorded in MD5SUMS at fetch") as err:
        load_arrays(tmp_path, spec)
    assert "--data.dataset fashion_mnist" in str(err.value)


def test_write_atomic_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "raw" / "file"

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, b"x" * 100)
    assert list(target.parent.iterdir()) == []


def test_spec_sizes_match_official_files():
    assert [f.size for f in MNIST.files] == [47040016, 60008, 7840016, 10008]
    tiny_spec = dataclasses.replace(MNIST, name="tiny")
    assert get_spec(tiny_spec) is tiny_spec


@pytest.mark.real_data
def test_real_files_verify(data_dir):
    # The data_dir fixture fails (never skips) when the files cannot be had.
    start = time.perf_counter()
    checks = check_files(data_dir)
    seconds = time.perf_counter() - start
    assert all(c.ok and c.md5_source == "official" for c in checks), [c.error for c in checks]
    # Reported, not asserted: wall-clock time belongs to benchmarks, not unit tests.
    print(f"verified the 4 real MNIST files (read + checks + MD5) in {seconds:.3f} s")
    x_train, y_train, x_test, y_test = load_arrays(data_dir)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist()[:2] == [5923, 6742]


@pytest.mark.real_data
def test_real_flipped_byte_stops_with_one_line(tmp_path, capsys, data_dir):
    raw = MNIST.raw_dir(tmp_path)
    shutil.copytree(MNIST.raw_dir(data_dir), raw)
    os.chmod(raw, 0o755)
    for f in raw.iterdir():
        os.chmod(f, 0o644)
    flip_byte(raw / "t10k-images-idx3-ubyte", 16 + 12345)
    assert main(["verify", "--data.data_dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "t10k-images-idx3-ubyte: md5: expected 2646ac6" in err
