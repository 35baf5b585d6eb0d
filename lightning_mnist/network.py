"""The one place a network is built from its hyper-parameters: the system, export, the parity
tests and the benchmark all call :func:`build_network`.

``model.py`` holds the stock PyTorch networks; the opt-in fused operator (``ops/``) is swapped
in here when asked for, never woven into them.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from lightning_mnist.errors import ConfigError
from lightning_mnist.model import ImprovedCNN, TutorialCNN
from lightning_mnist.ops import convpool
from lightning_mnist.ops.build import OpUnavailable

Arch = Literal["tutorial", "improved"]
ConvPool = Literal["native", "fused", "auto"]


def build_network(
    arch: Arch = "tutorial",
    filters: int = 32,
    hidden: int = 32,
    dropout: float = 0.5,
    num_classes: int = 10,
    keras_init: bool = True,
    convs: tuple[int, int, int] = (1, 1, 1),
    conv_pool: ConvPool = "native",
) -> nn.Module:
    """The network the arguments describe (see ``MNISTClassifier`` for their meaning)."""
    try:
        return _build(arch, filters, hidden, dropout, num_classes, keras_init, convs, conv_pool)
    except RuntimeError as e:  # sizes beyond the machine's memory: the user's to change
        if "allocate" not in str(e):
            raise
        raise ConfigError(
            "the network does not fit in memory: lower --model.filters or --model.hidden"
        ) from None


def _build(arch, filters, hidden, dropout, num_classes, keras_init, convs, conv_pool) -> nn.Module:
    if conv_pool not in ("auto", "fused", "native"):
        raise ConfigError(f"conv_pool must be auto, fused or native, got {conv_pool!r}")
    if arch == "improved":
        if conv_pool != "native":
            raise ConfigError("model.conv_pool fused/auto is for the tutorial network only")
        channels = (filters, 2 * filters, 4 * filters)
        return ImprovedCNN(channels, hidden, dropout, num_classes, keras_init, tuple(convs))
    if tuple(convs) != (1, 1, 1):
        raise ConfigError("model.convs is for the improved network (model.arch improved)")
    cls = _fused_class(conv_pool)
    return cls(filters, hidden, dropout, num_classes, keras_init)


def _fused_class(conv_pool: ConvPool) -> type[TutorialCNN]:
    """``FusedTutorialCNN`` when asked for and buildable; ``auto`` falls back with a warning."""
    if conv_pool == "fused":
        try:
            convpool.load()
        except OpUnavailable as e:
            raise ConfigError(f"conv_pool fused: {e}") from None
        return convpool.FusedTutorialCNN
    if conv_pool == "auto" and convpool.available():
        return convpool.FusedTutorialCNN
    return TutorialCNN


def conv_path(model: nn.Module, device: torch.device | str = "cpu") -> str:
    """Which conv+pool path ``model`` runs on ``device``: ``fused`` or ``native``."""
    fused = isinstance(model, convpool.FusedTutorialCNN)
    return "fused" if fused and torch.device(device).type == "cpu" else "native"
