"""Parity fixtures: real MNIST as float arrays, and the two frameworks in one process.

``data_dir`` (the real files, failing when missing) comes from ``tests/conftest.py``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import NamedTuple

import numpy as np
import pytest

# TensorFlow >= 2.20 wheels load their bundled LLVM with RTLD_GLOBAL, so a later
# `import triton` (which torch does lazily, e.g. in the first torch.optim constructor) binds
# to TF's LLVM and segfaults (tensorflow/tensorflow#124205). Loading triton first is safe.
if importlib.util.find_spec("triton") is not None:
    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        raise ImportError(
            "tensorflow was imported before triton, so torch will segfault; import triton "
            "(or lightning) before tensorflow, e.g. in tests/conftest.py"
        )
    import triton  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TF's oneDNN/CUDA info lines
from helpers import require_tensorflow  # noqa: E402

require_tensorflow("parity tests need the [keras] extra")

import keras  # noqa: E402
import torch  # noqa: E402

from lightning_mnist.data.verify import load_arrays  # noqa: E402


class Mnist(NamedTuple):
    """Real MNIST as the tutorial prepares it: float32 pixels / 255, shape (N, 28, 28)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@pytest.fixture(scope="session")
def mnist(data_dir) -> Mnist:
    x_train, y_train, x_test, y_test = load_arrays(data_dir)
    # The tutorial's `astype('float32') / 255`, done once for both frameworks.
    return Mnist(
        x_train.astype(np.float32) / 255,
        y_train.astype(np.int64),
        x_test.astype(np.float32) / 255,
        y_test.astype(np.int64),
    )


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Each test starts from the same Python, NumPy, TF and torch seeds."""
    keras.utils.set_random_seed(0)
    torch.manual_seed(0)
