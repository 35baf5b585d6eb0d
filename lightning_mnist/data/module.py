"""MNISTDataModule: IDX files -> in-memory tensors -> Keras-identical split -> batches."""

import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from lightning_mnist.data.augment import random_affine
from lightning_mnist.data.batches import TensorBatches
from lightning_mnist.data.catalogue import DataError, default_data_dir, get_spec
from lightning_mnist.data.fetch import prepare
from lightning_mnist.data.images import load_images
from lightning_mnist.data.verify import load_arrays
from lightning_mnist.errors import ConfigError

POINT_AT = "point --data.data_dir at a folder holding MNIST/raw"


def keras_split(n: int, validation_split: float) -> tuple[range, range]:
    """Keras's ``validation_split``: the LAST fraction, before any shuffle (docs/parity.md #1);
    for 60,000 images and 0.2, train is rows 0..47999 and validation rows 48000..59999."""
    split_at = int(n * (1.0 - validation_split))
    return range(0, split_at), range(split_at, n)


def to_tensor(images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) / 255, as ``astype('float32') / 255``."""
    # .to(float32) makes the new tensor; from_numpy only needs a writable view to read from.
    x = torch.from_numpy(np.require(images, requirements="W")).to(torch.float32)
    x = x.div_(255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype("int64"))


class MNISTDataModule(L.LightningDataModule):
    """MNIST (or any dataset in its IDX format) held in memory, split as Keras splits.

    Args:
        data_dir: Folder holding <Dataset>/raw; None is $MNIST_DATA_DIR, else data (created).
        dataset: Which IDX dataset: ``mnist`` or ``fashion_mnist``.
        batch_size: Global batch size; under DDP each of N processes takes batch_size / N.
        validation_split: Fraction of the training files held out, from the end, as Keras does.
        fetch: When files are missing, fetch them (verified) in ``prepare_data``.
        shuffle_seed: Seed of the per-epoch shuffle order; None uses the run's seed.
        images: For ``predict``: your image files or folders, predicted instead of the test set.
        augment_rotation: Training images are rotated by up to this many degrees; 0 is off.
        augment_zoom: Training images are zoomed by a factor in 1 ± this; 0 is off.
        augment_shift: Training images are shifted by up to this share of the size; 0 is off.
    """

    def __init__(
        self,
        data_dir: str | None = None,
        dataset: str = "mnist",
        batch_size: int = 256,
        validation_split: float = 0.2,
        fetch: bool = True,
        shuffle_seed: int | None = None,
        images: list[str] | str | None = None,
        augment_rotation: float = 0.0,
        augment_zoom: float = 0.0,
        augment_shift: float = 0.0,
    ) -> None:
        super().__init__()
        if min(augment_rotation, augment_zoom, augment_shift) < 0 or augment_zoom >= 1:
            raise ConfigError("data.augment_* ranges must be >= 0, and augment_zoom below 1")
        self.augment = {"rotation": augment_rotation, "zoom": augment_zoom, "shift": augment_shift}
        if batch_size <= 0:
            raise ConfigError(f"data.batch_size must be positive, got {batch_size}")
        if not 0.0 < validation_split < 1.0:
            raise ConfigError(f"data.validation_split must be in (0, 1), got {validation_split}")
        self.save_hyperparameters()
        self.data_dir, self._default_dir = data_dir or default_data_dir(), data_dir is None
        self.dataset, self.batch_size, self.validation_split = dataset, batch_size, validation_split
        self.fetch, self.shuffle_seed = fetch, shuffle_seed
        self.images = [images] if isinstance(images, str) else images
        self.image_files: list[str] = []  # the predicted files, in the order of the batches
        self.image_failures: list[tuple[str, str]] = []  # (input, message)
        self.tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.load_started_at = self.load_seconds = None

    def prepare_data(self) -> None:
        if self.images is not None:
            return  # predicting the user's images needs no dataset files
        folder = Path(self.data_dir)
        if folder.exists() and not folder.is_dir():
            raise DataError(f"data dir {self.data_dir} is a file, not a folder; {POINT_AT}")
        if self._default_dir and self.fetch:
            folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            mkdir = f"create it (mkdir -p {self.data_dir}) to fetch MNIST into it"
            raise DataError(f"data dir {self.data_dir} does not exist; {mkdir}, or {POINT_AT}")
        # Only a missing file needs the fetch chain; setup() verifies every file on load
        # anyway, so checking them here too would read and hash 55 MB twice per run.
        spec = get_spec(self.dataset)
        if self.fetch and not all((spec.raw_dir(folder) / f.name).is_file() for f in spec.files):
            prepare(self.data_dir, self.dataset)

    def setup(self, stage: str | None = None) -> None:
        if self.images is not None and stage == "predict":
            self._setup_images()
            return
        if self.tensors:
            return
        # When loading began (wall clock) and how long it took: the data part of a run's time.
        self.load_started_at, t0 = time.time(), time.perf_counter()
        x_train, y_train, x_test, y_test = load_arrays(self.data_dir, self.dataset)
        x, y = to_tensor(x_train, y_train)
        train, val = keras_split(len(x), self.validation_split)
        if len(train) == 0 or len(val) == 0:
            raise ConfigError(
                f"data.validation_split {self.validation_split} leaves {len(train)} training and "
                f"{len(val)} validation images of {len(x)}; choose a split that keeps both"
            )
        self.check_world_size(self.trainer.world_size if self.trainer else 1, len(train))
        self.split_indices = {"train": train, "val": val}
        self.tensors = {
            "train": (x[train.start : train.stop], y[train.start : train.stop]),
            "val": (x[val.start : val.stop], y[val.start : val.stop]),
            "test": to_tensor(x_test, y_test),
        }
        self.load_seconds = time.perf_counter() - t0

    def _setup_images(self) -> None:
        files, images, self.image_failures = load_images(self.images)
        if not files:  # nothing to predict: say why, instead of an empty, silent run
            reasons = "; ".join(m for _, m in self.image_failures[:3]) or "no inputs given"
            more = len(self.image_failures) - 3
            raise DataError(f"no image could be read: {reasons}" + f" (+{more} more)" * (more > 0))
        self.image_files = [str(f) for f in files]
        # The "labels" of the user's images are their positions in image_files.
        self.tensors["images"] = (torch.from_numpy(images).unsqueeze(1), torch.arange(len(files)))

    def check_world_size(self, world: int, n_train: int | None = None) -> None:
        """Refuse a global batch that the processes cannot share (one line for the user)."""
        if self.batch_size % world:
            raise ConfigError(
                f"data.batch_size {self.batch_size} is the global batch and must divide by the "
                f"{world} processes; use a multiple of {world}"
            )
        last = n_train % self.batch_size if n_train else 0
        if 0 < last < world:
            raise ConfigError(
                f"the epoch's last batch has {last} images, fewer than the {world} processes; "
                "choose another data.batch_size"
            )

    def _batches(self, split: str, shuffle: bool = False) -> TensorBatches:
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer else torch.device("cpu")
        x, y = self.tensors[split]
        if x.device != device:  # keep the data resident on the training device
            self.tensors[split] = x, y = x.to(device), y.to(device)
        seed = self.shuffle_seed if self.shuffle_seed is not None else torch.initial_seed()
        batches = TensorBatches(x, y, self.batch_size, shuffle=shuffle, seed=int(seed) % 2**31)
        if trainer is not None:  # the order follows the trainer's epoch; each rank its share
            batches.epoch_fn = lambda: trainer.current_epoch
            batches.rank, batches.world_size = trainer.global_rank, trainer.world_size
        return batches

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # Training batches only, on their device, drawn from the global generator that the
        # system seeds each epoch (the model summary also sends a bare tensor through here).
        if self.trainer is not None and self.trainer.training and isinstance(batch, list | tuple):
            x, y = batch
            batch = (random_affine(x, **self.augment), y)
        return batch

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train", shuffle=True)

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val")

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test")

    def predict_dataloader(self) -> TensorBatches:
        return self._batches("images" if self.images is not None else "test")
