"""The datasets, what their four IDX files must be, and where they lie. torchvision supplies
the layout, the mirrors and the MD5s of the ``.gz`` files; we add MNIST's uncompressed MD5s."""

import math
import os
from dataclasses import dataclass
from pathlib import Path

from torchvision.datasets import MNIST as TorchvisionMNIST
from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

from lightning_mnist.errors import UserError

IMAGES_MAGIC = 2051  # 0x00000803: uint8, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: uint8, 1 dimension
DATA_DIR_ENV = "MNIST_DATA_DIR"
DEFAULT_DATA_DIR = "data"


class DataError(UserError, ValueError):
    """A data file or dataset name is wrong; the one-line message says which and what to do."""


def default_data_dir() -> str:
    """The data dir every command uses unless told otherwise: ``$MNIST_DATA_DIR``, else ``data``."""
    return os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR


@dataclass(frozen=True)
class IdxFile:
    """One of a dataset's four files as it must be on disk: a big-endian header (two zero
    bytes, a type code, the number of dimensions, a uint32 per dimension), then uint8 data."""

    name: str  # inside the raw dir, e.g. ``train-images-idx3-ubyte``
    magic: int  # IMAGES_MAGIC or LABELS_MAGIC
    count: int  # images or labels
    md5: str | None = None  # of the uncompressed file; None where no official one is known
    gz_md5: str | None = None  # of the ``<name>.gz`` the mirrors serve (checked at download)
    rows: int = 28  # images only
    cols: int = 28

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.count, self.rows, self.cols) if self.magic == IMAGES_MAGIC else (self.count,)

    @property
    def size(self) -> int:
        return 4 + 4 * len(self.shape) + math.prod(self.shape)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset in torchvision's layout, ``<data_dir>/<folder>/raw/<file>``; tests pass tiny
    ones (:func:`make_spec`) instead of switching verification off."""

    name: str  # the ``dataset`` argument users pass, e.g. ``"mnist"``
    folder: str  # torchvision's folder name, e.g. ``"MNIST"``
    train_images: IdxFile
    train_labels: IdxFile
    test_images: IdxFile
    test_labels: IdxFile
    num_classes: int = 10  # labels must lie in 0 .. num_classes - 1
    mirrors: tuple[str, ...] = ()  # base URLs serving ``<file>.gz`` (torchvision's)

    @property
    def files(self) -> tuple[IdxFile, ...]:
        return (self.train_images, self.train_labels, self.test_images, self.test_labels)

    def raw_dir(self, data_dir: str | Path) -> Path:
        return Path(data_dir) / self.folder / "raw"


_NONE4: tuple[str | None, ...] = (None, None, None, None)
FILE_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte")
FILE_NAMES += ("t10k-labels-idx1-ubyte",)


def make_spec(
    name: str,
    folder: str,
    n_train: int = 60000,
    n_test: int = 10000,
    md5s: tuple[str | None, ...] = _NONE4,
    gz_md5s: tuple[str | None, ...] = _NONE4,
    mirrors: tuple[str, ...] = (),
    num_classes: int = 10,
) -> DatasetSpec:
    """A spec with MNIST's file names; ``md5s`` and ``gz_md5s`` in their order (None: none)."""
    magics = (IMAGES_MAGIC, LABELS_MAGIC, IMAGES_MAGIC, LABELS_MAGIC)
    fields = zip(FILE_NAMES, magics, (n_train, n_train, n_test, n_test), md5s, gz_md5s, strict=True)
    files = [IdxFile(*args) for args in fields]
    return DatasetSpec(name, folder, *files, num_classes=num_classes, mirrors=mirrors)


def from_torchvision(
    name: str, dataset: type[TorchvisionMNIST], md5s: tuple[str | None, ...] = _NONE4
) -> DatasetSpec:
    """The spec of a torchvision MNIST-like class: its folder, mirrors and ``.gz`` MD5s."""
    gz = {file.removesuffix(".gz"): md5 for file, md5 in dataset.resources}
    gz_md5s, mirrors = tuple(gz[file] for file in FILE_NAMES), tuple(dataset.mirrors)
    return make_spec(name, dataset.__name__, md5s=md5s, gz_md5s=gz_md5s, mirrors=mirrors)


# The official uncompressed MNIST files (docs/parity.md, "MNIST bytes"): checked on every load.
MNIST_MD5S = ("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624")
MNIST_MD5S += ("2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637")
MNIST = from_torchvision("mnist", TorchvisionMNIST, md5s=MNIST_MD5S)
# Zalando publishes MD5s of the .gz files only. So each .gz is checked at download, and the MD5
# of what it unpacks to is recorded in <raw>/MD5SUMS and checked on every load after that.
FASHION_MNIST = from_torchvision("fashion_mnist", TorchvisionFashionMNIST)
DATASETS: dict[str, DatasetSpec] = {s.name: s for s in (MNIST, FASHION_MNIST)}


def get_spec(dataset: str | DatasetSpec) -> DatasetSpec:
    """The spec for a name in ``DATASETS`` (``-`` and ``_`` are the same); a spec passes through."""
    if isinstance(dataset, DatasetSpec):
        return dataset
    try:
        return DATASETS[dataset.lower().replace("-", "_")]
    except KeyError:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}") from None
