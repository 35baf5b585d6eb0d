"""A run's history (Keras meaning), which ``run/record.py`` writes into results.json (schema
shared with keras_reference)."""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch.callbacks import Callback

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
        # Seconds of fit in the processes before a resume (from the checkpoint), and when
        # this process's fit started (after its data loaded: timing.data is this process's).
        self.prior_seconds = 0.0
        self._fit_t0: float | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            self._fit_t0 = time.perf_counter()

    def fit_seconds(self) -> float:
        """Seconds of fit so far, over every process of the run (resumes included)."""
        now = time.perf_counter() - self._fit_t0 if self._fit_t0 is not None else 0.0
        return self.prior_seconds + now

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()
        self._val = 0.0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_t0 = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        # Recorded here, not in on_train_epoch_end, because ModelCheckpoint saves
        # last.ckpt in on_validation_end (Lightning runs it after the other callbacks),
        # so the checkpoint holds the history of the epoch it closes.
        # A validation partway through the epoch (--trainer.val_check_interval) does not close
        # it: the system sets the epoch's training means after its last step.
        if trainer.sanity_checking:
            return
        self._val += time.perf_counter() - self._val_t0  # every validation of the epoch
        if "loss" in pl_module.epoch_metrics:
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
        copy.prior_seconds = self.prior_seconds
        return copy

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "epoch_seconds": self.epoch_seconds,
            "val_seconds": self.val_seconds,
            "fit_seconds": self.fit_seconds(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {k: list(v) for k, v in state_dict["history"].items()}
        self.epoch_seconds = list(state_dict["epoch_seconds"])
        self.val_seconds = list(state_dict["val_seconds"])
        self.prior_seconds = float(state_dict.get("fit_seconds") or 0.0)
