"""Helpers shared by the tests: the real data dir, tiny IDX files, CLI arguments."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from lightning_mnist.fetch import prepare
from lightning_mnist.files import DATA_DIR_ENV, DEFAULT_DATA_DIR
from lightning_mnist.idx import DataError, encode_idx, get_spec

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
