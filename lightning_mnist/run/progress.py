"""The progress bar of a run: epochs counted from 1 of max_epochs (as in results.json, the
checkpoint names and Keras's ``Epoch 1/100``), and no logger version (``v_num``), which is
the run folder's name and not a measurement. Where the output is not a terminal (a log file,
nohup, CI), a bar is only drawn at the end, so one line per epoch is printed instead."""

from __future__ import annotations

import sys
import time
from importlib.util import find_spec

from lightning.pytorch.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar


def _epoch(trainer) -> str:
    epochs = trainer.max_epochs
    return f"Epoch {trainer.current_epoch + 1}" + (f"/{epochs}" if epochs and epochs > 0 else "")


class _RunMetrics:
    def get_metrics(self, trainer, pl_module) -> dict:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)  # Lightning's documented way to hide it
        return items


class RunRichProgressBar(_RunMetrics, RichProgressBar):
    """Lightning's Rich bar (its default where rich is installed), epochs from 1."""

    def _get_train_description(self, current_epoch: int) -> str:
        # RichProgressBar's only hook for the description (0-based "Epoch 0/99" upstream).
        text = _epoch(self.trainer)
        return f"{text:{len(self.validation_description)}}"


class RunTQDMProgressBar(_RunMetrics, TQDMProgressBar):
    """Lightning's tqdm bar (its default without rich), epochs from 1."""

    def on_train_epoch_start(self, trainer, *_) -> None:
        super().on_train_epoch_start(trainer, *_)
        self.train_progress_bar.set_description(_epoch(trainer))


def _validation_last(item: tuple[str, object]) -> bool:
    return item[0].startswith("val_")


class EpochLines(_RunMetrics, ProgressBar):
    """One line per training epoch, after its validation, as Keras's ``verbose=2`` prints:
    ``Epoch 3/100: loss 0.2512, accuracy 0.9231, val_loss 0.0781, ... (5.1 s)``."""

    def __init__(self) -> None:
        super().__init__()
        self.enabled, self.started = True, 0.0

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_epoch_start(self, trainer, *_) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not (self.enabled and trainer.is_global_zero):
            return
        metrics = sorted(self.get_metrics(trainer, pl_module).items(), key=_validation_last)
        values = ", ".join(f"{k} {v:.4f}" for k, v in metrics if isinstance(v, float))
        seconds = time.perf_counter() - self.started
        print(f"{_epoch(trainer)}: {values} ({seconds:.1f} s)", flush=True)


def run_progress_bar(terminal: bool | None = None) -> ProgressBar:
    """The bar Lightning would pick by default, with the run's epoch numbers, where stdout is
    a terminal (``terminal`` None: ask it); epoch lines elsewhere."""
    if not (sys.stdout.isatty() if terminal is None else terminal):
        return EpochLines()
    return RunRichProgressBar() if find_spec("rich") else RunTQDMProgressBar()


def with_run_bar(trainer: dict, terminal: bool | None = None) -> list | None:
    """The Trainer's callbacks with the run's bar (:func:`run_progress_bar`) added; None where
    the bar is off or the user brings one of their own (the callbacks stay as given)."""
    given = trainer.get("callbacks") or []
    given = given if isinstance(given, list) else [given]
    if trainer.get("enable_progress_bar") is False or any(
        isinstance(c, ProgressBar) for c in given
    ):
        return None
    return [*given, run_progress_bar(terminal)]
