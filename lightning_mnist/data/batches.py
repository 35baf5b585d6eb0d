"""In-memory batching: a batch is one ``index_select`` (a ``DataLoader`` would collate image by
image). Under DDP each process takes its own part of every global batch: no duplicates, no
padding."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from lightning_mnist.errors import ConfigError


def shard(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's contiguous part of ``indices``; parts differ in size by at most one."""
    return torch.tensor_split(indices, world_size)[rank]


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffle order of an epoch, a pure function of (seed, epoch), so that a resumed run
    sees exactly the batches an uninterrupted run would."""
    # NumPy's generator, not torch's: keras_reference (which never imports torch) computes the
    # same order in keras_reference/order.py, so mnist-compare --paired feeds both frameworks
    # the same batches. `seed` is already below 2**31 here (the data module's modulo).
    return torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(n))


@dataclass(eq=False)
class TensorBatches:
    """``(x[idx], y[idx])`` batches of ``batch_size`` summed over the ranks: reshuffled every
    epoch (by ``seed`` and the epoch ``epoch_fn`` returns) or in file order."""

    x: torch.Tensor
    y: torch.Tensor
    batch_size: int
    shuffle: bool = False
    seed: int = 0
    epoch_fn: Callable[[], int] = lambda: 0
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}")

    def __len__(self) -> int:
        n = len(self.x)
        if self.shuffle:  # every rank steps through every global batch
            return -(-n // self.batch_size)
        return -(-len(shard(torch.arange(n), self.rank, self.world_size)) // self.local_batch)

    @property
    def local_batch(self) -> int:
        return max(1, self.batch_size // self.world_size)

    def indices(self) -> list[torch.Tensor]:
        """This rank's index tensor per batch of the epoch: views of one tensor moved to the data's
        device once (a copy per step would synchronise a GPU's stream at every step)."""
        n, device = len(self.x), self.x.device
        if self.shuffle:
            # Training: split each global batch of the epoch's order between the ranks.
            order = epoch_order(n, self.seed, self.epoch_fn()).to(device)
            return [shard(b, self.rank, self.world_size) for b in order.split(self.batch_size)]
        # Evaluation: each rank scores its own contiguous part exactly once.
        part = shard(torch.arange(n, device=device), self.rank, self.world_size)
        return list(part.split(self.local_batch))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in self.indices():
            yield self.x.index_select(0, idx), self.y.index_select(0, idx)
