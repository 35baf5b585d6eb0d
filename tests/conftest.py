"""Shared fixtures: the real data dir (fails loudly when missing) and tiny IDX files."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest

# TensorFlow >= 2.20 loads its LLVM globally; importing triton (which torch and lightning
# pull in lazily) after it segfaults. Import triton first, whatever subset of tests runs.
with contextlib.suppress(ImportError):
    import triton  # noqa: F401

from lightning_mnist.idx import encode_idx  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = str(REPO / "configs" / "tutorial.yaml")


def cli_args(data_dir: Path, root: Path, *extra: str, presets: tuple[str, ...] = ()) -> list[str]:
    """Options for the real CLI on the tutorial preset: given data, a run root, no fetch and
    no progress bar. Extra presets follow tutorial.yaml; ``extra`` comes last and wins."""
    configs = [arg for p in presets for arg in ("--config", p)]
    return [
        "--config",
        TUTORIAL,
        *configs,
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


def real_data_dir() -> Path:
    """MNIST_DATA_DIR, else ``../shared/data`` beside the repo."""
    return Path(os.environ.get("MNIST_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real MNIST files; a test that needs them FAILS (never skips) without them."""
    path = real_data_dir()
    raw = path / "MNIST" / "raw"
    if not (raw / "train-images-idx3-ubyte").is_file():
        pytest.fail(f"real MNIST not found in {raw}; set MNIST_DATA_DIR (tests never download)")
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


@pytest.fixture
def tiny_idx_dir(tmp_path: Path) -> Path:
    return write_tiny_idx(tmp_path / "tiny")
