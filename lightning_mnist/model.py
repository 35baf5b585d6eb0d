"""The tutorial's CNN, layer for layer against the Keras ``Sequential`` of docs/tutorial.md (each
layer's comment names its Keras twin), and the improved preset's: plain ``nn.Module``s, no
Lightning. ``forward`` returns logits: the final softmax lives in the loss (cross-entropy) and in
``predict`` only (docs/parity.md #6)."""

from collections import OrderedDict

import torch
from torch import nn

from lightning_mnist.errors import ConfigError

IMAGE_SIZE, KERNEL, POOL = 28, 3, 2


def _check(hidden: int, num_classes: int, dropout: float) -> None:
    if hidden <= 0 or num_classes <= 0:
        raise ConfigError(f"hidden and num_classes must be positive, got {hidden}, {num_classes}")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")


def keras_init_(model: nn.Module) -> None:
    """Keras defaults: ``glorot_uniform`` kernels, ``zeros`` biases (docs/parity.md #4)."""
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class TutorialCNN(nn.Module):
    """Conv(3x3, ReLU) -> MaxPool(2x2) -> Flatten -> Dense(ReLU) -> Dropout -> Dense (logits).

    Args:
        filters: Convolution filters.
        hidden: Units of the hidden dense layer.
        dropout: Dropout rate before the last layer, in [0, 1).
        num_classes: Output classes.
        keras_init: Glorot-uniform kernels and zero biases, as Keras does (docs/parity.md #4).
    """

    def __init__(
        self,
        filters: int = 32,
        hidden: int = 32,
        dropout: float = 0.5,
        num_classes: int = 10,
        keras_init: bool = True,
    ) -> None:
        super().__init__()
        if filters <= 0:
            raise ConfigError(f"filters must be positive, got {filters}")
        _check(hidden, num_classes, dropout)
        pooled = (IMAGE_SIZE - KERNEL + 1) // POOL  # 26 // 2 = 13
        # Conv2D(32, 3x3, relu): (N, 1, 28, 28) -> (N, 32, 26, 26)
        self.conv = nn.Conv2d(1, filters, KERNEL)
        # MaxPooling2D(2x2): (N, 32, 26, 26) -> (N, 32, 13, 13)
        self.pool = nn.MaxPool2d(POOL)
        # Flatten in Keras's NHWC order (docs/parity.md #5), then
        # Dense(32, relu): (N, 13 * 13 * 32) -> (N, 32)
        self.fc1 = nn.Linear(pooled * pooled * filters, hidden)
        # Dropout(0.5)
        self.dropout = nn.Dropout(dropout)
        # Dense(10): (N, 32) -> (N, 10), logits
        self.fc2 = nn.Linear(hidden, num_classes)
        if keras_init:
            keras_init_(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Conv, ReLU, MaxPool and the NHWC flatten: (N, 1, 28, 28) -> (N, 13 * 13 * 32)."""
        # ReLU after pooling: the same values (they commute), a quarter of the ReLU work.
        x = torch.relu(self.pool(self.conv(x)))
        # NHWC flatten: free (a view) when x is channels_last, as the system keeps it.
        return x.permute(0, 2, 3, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(torch.relu(self.fc1(self.features(x)))))


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters, as Keras ``count_params()`` reports."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# torch's BatchNorm defaults, used on both sides (docs/parity.md #13): torch's momentum is the
# weight of the new batch, Keras's that of the old average (Keras: momentum=0.9, epsilon=1e-5).
BN_EPS, BN_MOMENTUM = 1e-5, 0.1


class ImprovedCNN(nn.Module):
    """The improved preset's network in stock ops; its Keras twin, with the same layer names,
    is ``keras_reference.improved.build_improved_model``. Three blocks of ``convs[i]`` x
    (Conv(3x3, same padding, no bias) -> BatchNorm -> ReLU), named ``conv1``, ``bn1``, ``relu1``,
    then ``conv1b``, ..., each then MaxPool(2x2): (N, 1, 28, 28) -> (N, 32, 14, 14) ->
    (N, 64, 7, 7) -> (N, 128, 3, 3); then the NHWC flatten -> Dense(128, ReLU) -> Dropout ->
    Dense (logits).

    Args:
        channels: Filters of the three conv blocks.
        convs: Conv layers in each block, 1 or 2 (the preset: 1, 2, 2).
        hidden, dropout, num_classes, keras_init: As for TutorialCNN; batch norm starts at
            scale 1, shift 0 on both sides.
    """

    def __init__(
        self,
        channels: tuple[int, int, int] = (32, 64, 128),
        hidden: int = 128,
        dropout: float = 0.4,
        num_classes: int = 10,
        keras_init: bool = True,
        convs: tuple[int, int, int] = (1, 1, 1),
    ) -> None:
        super().__init__()
        if len(channels) != 3 or min(channels) <= 0:
            raise ConfigError(f"channels gives three positive filter counts, got {channels}")
        if len(convs) != 3 or not set(convs) <= {1, 2}:
            raise ConfigError(f"convs gives 1 or 2 conv layers for each of 3 blocks, got {convs}")
        _check(hidden, num_classes, dropout)
        blocks, c_in, size = [], 1, IMAGE_SIZE
        for i, (c_out, n) in enumerate(zip(channels, convs, strict=True), start=1):
            for suffix in ("", "b")[:n]:
                blocks += [
                    (f"conv{i}{suffix}", nn.Conv2d(c_in, c_out, KERNEL, padding=1, bias=False)),
                    (f"bn{i}{suffix}", nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)),
                    (f"relu{i}{suffix}", nn.ReLU()),
                ]
                c_in = c_out
            blocks.append((f"pool{i}", nn.MaxPool2d(POOL)))
            size //= POOL
        self.features = nn.Sequential(OrderedDict(blocks))
        self.fc1 = nn.Linear(size * size * c_in, hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)
        if keras_init:
            keras_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).permute(0, 2, 3, 1).flatten(1)  # NHWC flatten, as Keras
        return self.fc2(self.dropout(torch.relu(self.fc1(x))))
