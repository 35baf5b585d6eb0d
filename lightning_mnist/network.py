"""The one place a network is built from its hyper-parameters (for the system, export, the
parity tests and the benchmark); the opt-in fused operator (``ops/``) is swapped in here."""

from functools import partial
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
    if conv_pool not in ("auto", "fused", "native"):
        raise ConfigError(f"conv_pool must be auto, fused or native, got {conv_pool!r}")
    if arch == "improved" and conv_pool != "native":
        raise ConfigError("model.conv_pool fused/auto is for the tutorial network only")
    if arch != "improved" and tuple(convs) != (1, 1, 1):
        raise ConfigError("model.convs is for the improved network (model.arch improved)")
    common = dict(hidden=hidden, dropout=dropout, num_classes=num_classes, keras_init=keras_init)
    if arch == "improved":
        channels = (filters, 2 * filters, 4 * filters)
        make = partial(ImprovedCNN, channels=channels, convs=tuple(convs), **common)
    else:
        make = partial(_tutorial_class(conv_pool), filters=filters, **common)
    try:
        return make()
    except RuntimeError as e:  # sizes beyond the machine's memory: the user's to change
        if "allocate" not in str(e):
            raise
        raise ConfigError(
            "the network does not fit in memory: lower --model.filters or --model.hidden"
        ) from None


def _tutorial_class(conv_pool: ConvPool) -> type[TutorialCNN]:
    """``FusedTutorialCNN`` when asked for and buildable; ``auto`` falls back to TutorialCNN."""
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
