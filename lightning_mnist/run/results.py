"""A run's history (Keras meaning), which ``run/record.py`` writes into results.json."""

import time
from typing import Any

from lightning.pytorch.callbacks import Callback

from lightning_mnist.run.history import HISTORY_KEYS


class HistoryRecorder(Callback):
    """Per-epoch history, epoch wall times and the validation part of each, kept in checkpoints.

    The logger records the same values (the system's ``epoch_metrics``), but results.json and
    the plots need them with any logger or none, and after a resume from a moved checkpoint.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
        self.epoch_seconds: list[float] = []
        self.val_seconds: list[float] = []
        self._t0 = self._val_t0 = self._val = 0.0
        # Fit seconds before a resume (from the checkpoint), and this process's fit start
        # (after its data loaded: timing.data is this process's).
        self.prior_seconds = 0.0
        self._fit_t0: float | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            self._fit_t0 = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()
        self._val = 0.0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_t0 = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        # Not in on_train_epoch_end: ModelCheckpoint saves last.ckpt in this hook, after this
        # callback's, so it holds the epoch. A mid-epoch validation (--trainer.val_check_interval)
        # does not close it: the system sets the epoch's training means after its last step.
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
        for k in HISTORY_KEYS:
            self.history[k].append(pl_module.epoch_metrics.get(k, float("nan")))

    def state_dict(self) -> dict[str, Any]:
        now = time.perf_counter() - self._fit_t0 if self._fit_t0 is not None else 0.0
        return {
            "history": self.history,
            "epoch_seconds": self.epoch_seconds,
            "val_seconds": self.val_seconds,
            "fit_seconds": self.prior_seconds + now,  # over every process of the run
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = {k: list(v) for k, v in state_dict["history"].items()}
        self.epoch_seconds = list(state_dict["epoch_seconds"])
        self.val_seconds = list(state_dict["val_seconds"])
        self.prior_seconds = float(state_dict.get("fit_seconds") or 0.0)
