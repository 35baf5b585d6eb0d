"""The per-step probe of ``mnist-bench``: what the project's bookkeeping costs a training step.

A network too small to matter (one Linear layer, batch 64, one thread) trains on the same batches
in a plain PyTorch loop, a minimal LightningModule (the loss only) and the project's
``MNISTClassifier`` with that layer swapped in; the last two differ by the project's own cost.
They run in turns (ABC ABC ...); each figure is the median step time after a warm-up.
"""

import itertools
import logging
import statistics
import tempfile
import time
import warnings

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from lightning_mnist.data.batches import TensorBatches
from lightning_mnist.quiet import quiet_upstream
from lightning_mnist.system import MNISTClassifier

VARIANTS = ("plain_loop", "minimal_module", "project_system")
WARMUP = 50  # steps not timed: allocator, autograd and optimizer state warm up


def tiny_network() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))


def batches(steps: int, batch: int = 64) -> TensorBatches:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(steps * batch, 1, 28, 28, generator=g)
    return TensorBatches(x, torch.randint(0, 10, (steps * batch,), generator=g), batch)


def adam(params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-7)


def plain_loop(data: TensorBatches) -> list[float]:
    """Step start times of a bare loop: forward, loss, backward, Adam."""
    model = tiny_network()
    opt, stamps = adam(model.parameters()), []
    for x, y in data:
        stamps.append(time.perf_counter())
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    stamps.append(time.perf_counter())
    return stamps


class MinimalModule(L.LightningModule):
    """The least a LightningModule does: the loss and the optimizer."""

    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_network()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.model(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.parameters())


class StepClock(L.Callback):
    """The time each training step starts, and when the last one ends."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self.stamps.append(time.perf_counter())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.stamps.append(time.perf_counter())


def lightning_loop(module: L.LightningModule, data: TensorBatches) -> list[float]:
    """Step start times of ``Trainer.fit`` on CPU, with a CSV logger as a run has."""
    clock = StepClock()
    with tempfile.TemporaryDirectory() as logs:
        trainer = L.Trainer(
            accelerator="cpu", devices=1, max_epochs=1, logger=CSVLogger(logs), callbacks=[clock],
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0, limit_val_batches=0,
        )  # fmt: skip
        trainer.fit(module, train_dataloaders=data)
    return clock.stamps


def run_variant(name: str, data: TensorBatches) -> float:
    """Median milliseconds per step of one variant, after the warm-up steps."""
    if name == "plain_loop":
        stamps = plain_loop(data)
    elif name == "minimal_module":
        stamps = lightning_loop(MinimalModule(), data)
    else:
        system = MNISTClassifier(channels_last=False)
        system.model = tiny_network()  # its epoch sums, logging and hooks around the same layer
        stamps = lightning_loop(system, data)
    steps = [b - a for a, b in itertools.pairwise(stamps[WARMUP:])]
    return 1000 * statistics.median(steps)


def probe(steps: int = 600, repeats: int = 3) -> dict[str, object]:
    """Each variant's ms/step over ``repeats`` interleaved turns, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    quiet_upstream()
    lightning_log = logging.getLogger("lightning.pytorch")
    level, lightning_log.level = lightning_log.level, logging.WARNING  # no per-fit INFO lines
    runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
    try:
        with warnings.catch_warnings():
            # The system's validation_step has no data here, on purpose: training steps only.
            warnings.filterwarnings("ignore", message=".*validation_step.*val_dataloader")
            data = batches(steps)
            for _ in range(repeats):
                for v in VARIANTS:
                    runs[v].append(run_variant(v, data))
    finally:
        torch.set_num_threads(threads)
        lightning_log.setLevel(level)
    med = {v: statistics.median(r) for v, r in runs.items()}
    return {
        "steps": steps,
        "batch": 64,
        "threads": 1,
        "warmup": WARMUP,
        "ms_per_step": runs,
        "median_ms": med,
        "system_over_minimal_ms": med["project_system"] - med["minimal_module"],
        "minimal_over_plain_ms": med["minimal_module"] - med["plain_loop"],
    }
