"""results.json: the record of a run, in the schema shared with keras_reference."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from lightning_mnist.atomic import write_atomic

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


def versions() -> dict[str, str]:
    import lightning
    import numpy
    import torch
    import torchmetrics

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "torchmetrics": torchmetrics.__version__,
        "numpy": numpy.__version__,
    }


def describe_device(trainer: L.Trainer) -> str:
    import torch

    dev = trainer.strategy.root_device
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    return f"{dev.type} x{trainer.world_size} ({name}, {torch.get_num_threads()} threads)"


class HistoryRecorder(Callback):
    """Per-epoch history (Keras meaning), epoch wall times and the validation part of each.

    Its state travels in checkpoints, so a resumed run keeps the history of the
    epochs it did before the interruption.

    Why it keeps its own copy of the epoch values that the logger also records: results.json,
    the plots and the comparison need them with any logger (TensorBoard, several, or
    ``--trainer.logger false``), and a logger's files are not part of the checkpoint, so a
    resume from a moved or copied checkpoint would lose them. The values are the system's
    ``epoch_metrics``, the same floats it logs, so the two copies cannot disagree.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
        self.epoch_seconds: list[float] = []
        self.val_seconds: list[float] = []
        self._t0 = self._val_t0 = 0.0
        self._val = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()
        self._val = 0.0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_t0 = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        # Recorded here, not in on_train_epoch_end, because ModelCheckpoint saves
        # last.ckpt in on_validation_end (Lightning runs it after the other callbacks),
        # so the checkpoint holds the history of the epoch it closes.
        if not trainer.sanity_checking:
            self._val = time.perf_counter() - self._val_t0
            self._record(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._record(trainer, pl_module)  # epochs without validation

    def _record(self, trainer, pl_module) -> None:
        if len(self.epoch_seconds) > trainer.current_epoch:
            return  # this epoch is already recorded
        # The time covers train + val, like Keras's per-epoch time.
        self.epoch_seconds.append(time.perf_counter() - self._t0)
        self.val_seconds.append(self._val)
        metrics = pl_module.epoch_metrics
        for k in HISTORY_KEYS:
            self.history[k].append(metrics.get(k, float("nan")))

    def snapshot(self) -> HistoryRecorder:
        """A copy that later checkpoint restores cannot change."""
        copy = HistoryRecorder()
        copy.load_state_dict(self.state_dict())
        return copy

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "epoch_seconds": self.epoch_seconds,
            "val_seconds": self.val_seconds,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {k: list(v) for k, v in state_dict["history"].items()}
        self.epoch_seconds = list(state_dict["epoch_seconds"])
        self.val_seconds = list(state_dict["val_seconds"])


def build_results(
    recorder: HistoryRecorder,
    trainer: L.Trainer,
    test: dict[str, float],
    seed: int,
    dataset: str,
    params: int,
    best_model: str,
    fit_seconds: float,
    best_epoch: int | None = None,
    conv_path: str = "native",
    tune_malloc: bool = False,
) -> dict[str, Any]:
    """The results.json record; ``best_epoch`` (1-based) is the tested checkpoint's epoch,
    else the epoch of the lowest val_loss; ``conv_path`` is the conv+pool path that ran
    (``native``: PyTorch's ops, ``fused``: the opt-in operator) and ``tune_malloc`` whether
    the opt-in allocator setting was on."""
    val_loss = recorder.history["val_loss"]
    if best_epoch is None:
        best_epoch = 1 + min(range(len(val_loss)), key=val_loss.__getitem__) if val_loss else 0
    return {
        "framework": "lightning",
        "dataset": dataset,
        "seed": seed,
        "epochs_run": len(val_loss),
        "best_epoch": best_epoch,
        "history": recorder.history,
        "epoch_seconds": recorder.epoch_seconds,
        "fit_seconds": fit_seconds,
        "test_loss": test["test_loss"],
        "test_accuracy": test["test_accuracy"],
        "test_samples": int(test["test_samples"]),
        "params": params,
        "conv_path": conv_path,
        "tune_malloc": tune_malloc,
        "best_model": best_model,
        "device": describe_device(trainer),
        "versions": versions(),
    }


def run_timing(
    recorder: HistoryRecorder, fit_seconds: float, test_seconds: float, datamodule, checkpoint_io
) -> dict[str, Any]:
    """Where a run's time went, in seconds: data loading, training, validation, checkpoint
    saving, the rest of ``fit`` (sanity check, callbacks, logging) and the test.

    ``data_started_at`` is the wall clock when loading began; the comparison subtracts its
    own launch time from it to get the start-up (interpreter, imports, CLI, model).
    """
    nan = float("nan")
    epochs = sum(recorder.epoch_seconds)
    val = sum(recorder.val_seconds)
    data = getattr(datamodule, "load_seconds", None)
    ckpt = getattr(checkpoint_io, "save_seconds", None)  # AtomicCheckpointIO counts it
    known = epochs + (data or 0.0) + (ckpt or 0.0)
    return {
        "data_started_at": getattr(datamodule, "load_started_at", None),
        "data": nan if data is None else data,
        "train": epochs - val,
        "validation": val,
        "checkpoint": nan if ckpt is None else ckpt,
        "fit_other": fit_seconds - known,
        "test": test_seconds,
    }


def measure_best_model(pl_module, datamodule, run_dir: Path) -> dict[str, Any]:
    """Predict the test set with the tested weights (``test_predictions.csv``), time
    inference at batch 1 and 256, and record peak memory and the environment."""
    from lightning_mnist.run.measure import (
        PREDICTIONS_CSV,
        environment,
        latency_ms,
        peak_rss_mb,
        predict_classes,
        write_predictions,
    )

    x, y = datamodule.tensors["test"]
    device = pl_module.device
    x, y = x.to(device), y.to(device)
    write_predictions(run_dir / PREDICTIONS_CSV, y.cpu().numpy(), predict_classes(pl_module, x))
    return {
        "test_predictions": PREDICTIONS_CSV,
        "inference_ms": latency_ms(pl_module, x),
        "peak_rss_mb": peak_rss_mb(),
        "environment": environment(device),
    }


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path = Path(path)
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())
    return path
