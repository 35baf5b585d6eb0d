"""The seeded batch order (``--shuffle seeded``): each epoch's order of the training rows is a
pure function of (seed, epoch), NumPy's ``default_rng([seed, epoch]).permutation(n)``.

``lightning_mnist.data.batches.epoch_order`` computes the same order; each side has its own
copy, so neither imports the other (keras_reference never imports torch). mnist-compare
--paired uses it so that a seed's two runs see the same batches; a test compares the arrays.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffle order of ``n`` rows in the 0-based ``epoch`` of a run seeded ``seed``."""
    # The modulo matches the port, whose shuffle seed is torch.initial_seed() % 2**31.
    return np.random.default_rng([seed % 2**31, epoch]).permutation(n)


def seeded_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(x[idx], y[idx])`` batches, epoch after epoch without end, each epoch in
    :func:`epoch_order` and ending with its partial batch, as Keras's own ``fit`` keeps it."""
    for epoch in itertools.count():
        order = epoch_order(len(x), seed, epoch)
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]


def seeded_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> tuple:
    """A ``tf.data.Dataset`` of :func:`seeded_batches` for ``fit``, and the steps per epoch.

    Why tf.data: Keras sizes a Python generator's batches from its first two, so the partial
    last batch would be refused; here the batch dimension is declared open. The dataset's
    length is unknown, so with ``steps_per_epoch`` Keras keeps one iterator for the whole fit
    and no batch is skipped or repeated at an epoch boundary.
    """
    import tensorflow as tf  # only this option needs it; the tutorial's path does not

    spec = tuple(tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype)) for a in (x, y))
    dataset = tf.data.Dataset.from_generator(
        lambda: seeded_batches(x, y, batch_size, seed), output_signature=spec
    )
    return dataset, math.ceil(len(x) / batch_size)
