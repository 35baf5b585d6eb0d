"""What both sides share, from NumPy alone: the batch order, the dropout masks, the data.

Each is a pure function of (seed, epoch, step), so either side (or a rerun) computes it
without the other. The product's own shuffle (``lightning_mnist.data.batches.epoch_order``)
uses torch's generator, which the Keras side must not import; hence NumPy here.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from lightning_mnist.data.verify import load_arrays

BATCH = 256  # the tutorial's batch size
TRAIN_ROWS = 48_000  # validation_split=0.2 holds out the last 12,000 rows (docs/parity.md #1)
RATE = 0.5  # the tutorial's Dropout(0.5)
HIDDEN = 32  # units at the dropout point (fc1's output)


class Mnist(NamedTuple):
    """MNIST as the tutorial prepares it: float32 pixels / 255, (N, 28, 28); int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_mnist(data_dir: str | Path) -> Mnist:
    """The verified IDX files, preprocessed once for both frameworks (``astype('float32') /
    255``), with the training rows cut to the 48,000 Keras trains on."""
    x_train, y_train, x_test, y_test = load_arrays(data_dir)
    as_float = lambda x: x.astype(np.float32) / np.float32(255)  # noqa: E731
    return Mnist(
        as_float(x_train[:TRAIN_ROWS]),
        y_train[:TRAIN_ROWS].astype(np.int64),
        as_float(x_test),
        y_test.astype(np.int64),
    )


def epoch_batches(seed: int, epoch: int, rows: int = TRAIN_ROWS) -> list[np.ndarray]:
    """The epoch's batches of row indices: a permutation from (seed, epoch), cut into batches
    of 256 with the partial last one kept (188 batches, the last of 128; docs/parity.md #9)."""
    order = np.random.default_rng([seed, epoch]).permutation(rows)
    return [order[i : i + BATCH] for i in range(0, rows, BATCH)]


def keep_scale(seed: int, epoch: int, step: int, rows: int) -> np.ndarray:
    """The step's dropout mask, already scaled as inverted dropout scales it: 1 / (1 - rate)
    where a unit is kept, 0 where dropped; float32, (rows, 32).

    Keras (``tf.nn.dropout``) keeps a unit where its uniform draw is >= rate and multiplies
    the kept ones by 1 / (1 - rate); torch's ``F.dropout`` multiplies by a Bernoulli mask
    divided by (1 - p). With rate 0.5 the factor is 2, exact in float32, so applying
    ``h * keep_scale`` is bit for bit what either dropout does with this mask."""
    draws = np.random.default_rng([seed, epoch, step]).random((rows, HIDDEN))
    return (draws >= RATE).astype(np.float32) / np.float32(1 - RATE)
