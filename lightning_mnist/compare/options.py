"""``mnist-compare``'s nested options (``--trainer.max_epochs``, ``--early_stopping.patience``,
``--data.data_dir`` ...: the names ``lightning-mnist fit`` gives them) and the resolved plan."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jsonargparse.typing import NonNegativeInt, PositiveInt

from lightning_mnist.data.catalogue import default_data_dir


@dataclass(frozen=True)
class Trainer:
    """The Trainer options of both frameworks.

    Args:
        max_epochs: Max epochs; null: the preset's.
        accelerator: Where both frameworks train; gpu needs one both TensorFlow and torch see.
    """

    max_epochs: PositiveInt | None = None
    accelerator: Literal["cpu", "gpu"] = "cpu"


@dataclass(frozen=True)
class EarlyStopping:
    """EarlyStopping on val_loss in both frameworks.

    Args:
        patience: Epochs without improvement; null: the preset's.
    """

    patience: NonNegativeInt | None = None


@dataclass(frozen=True)
class Data:
    """The images both frameworks train on.

    Args:
        data_dir: Holds MNIST/raw, fetched (verified) if missing; null: $MNIST_DATA_DIR, else data.
        dataset: MNIST or Fashion-MNIST.
    """

    data_dir: str | None = None
    dataset: Literal["mnist", "fashion_mnist"] = "mnist"


@dataclass(frozen=True)
class Plan:
    """What one comparison runs, with the preset's facts filled in."""

    out: Path
    seeds: list[int]
    frameworks: list[str]
    preset: str
    epochs: int
    patience: int
    data: Data
    accelerator: str
    target_accuracy: float
    config: str
    lightning_args: str
    resume: bool
    report_only: bool
    quiet: bool
    command: str
    paired: bool = False
    margin_pp: float = 0.2

    @property
    def data_dir(self) -> str:
        return self.data.data_dir or default_data_dir()
