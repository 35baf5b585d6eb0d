"""A run's history (Keras meaning) and the strict-JSON writer of its record, results.json
(schema shared with keras_reference; ``run/record.py`` fills it)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from lightning_mnist.atomic import write_atomic

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


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


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Strict JSON (a value that was not measured, or is not finite, is ``null``), atomically."""
    path = Path(path)
    write_atomic(path, (json.dumps(strict(data), indent=2, allow_nan=False) + "\n").encode())
    return path


def strict(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None, which JSON writes as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value
