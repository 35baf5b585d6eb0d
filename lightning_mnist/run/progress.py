"""The progress bar of a run: epochs counted from 1 of max_epochs (as in results.json, the
checkpoint names and Keras's ``Epoch 1/100``), without the logger version (``v_num``, the run
folder's name). Where stdout is not a terminal (a log file, nohup, CI), a bar would only be
drawn at the end, so one line per epoch is printed instead."""

import sys
import time
from importlib.util import find_spec

from lightning.pytorch.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar

from lightning_mnist.run.history import HISTORY_KEYS


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
        return f"{_epoch(self.trainer):{len(self.validation_description)}}"


class RunTQDMProgressBar(_RunMetrics, TQDMProgressBar):
    """Lightning's tqdm bar (its default without rich), epochs from 1."""

    def on_train_epoch_start(self, trainer, *_) -> None:
        super().on_train_epoch_start(trainer, *_)
        self.train_progress_bar.set_description(_epoch(trainer))


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
        # The bar's values persist from epoch to epoch: the run's epoch means show only when this
        # epoch measured them (none for training cut by max_time, no val_ without validation).
        measured = getattr(pl_module, "epoch_metrics", None)
        items = [
            (k, v)
            for k, v in self.get_metrics(trainer, pl_module).items()
            if measured is None or k not in HISTORY_KEYS or k in measured
        ]
        metrics = sorted(items, key=lambda item: item[0].startswith("val_"))  # val_ last
        values = ", ".join(f"{k} {v:.4f}" for k, v in metrics if isinstance(v, float))
        seconds = time.perf_counter() - self.started
        values += " " if values else ""  # an epoch cut before its means shows its time only
        print(f"{_epoch(trainer)}: {values}({seconds:.1f} s)", flush=True)


def with_run_bar(trainer: dict, terminal: bool | None = None) -> list | None:
    """The Trainer's callbacks plus the run's bar (epoch lines where stdout, or ``terminal`` if
    given, is no terminal); None where the bar is off or the user brings their own."""
    given = trainer.get("callbacks") or []
    given = given if isinstance(given, list) else [given]
    own_bar = any(isinstance(c, ProgressBar) for c in given)
    if trainer.get("enable_progress_bar") is False or own_bar:
        return None
    if not (sys.stdout.isatty() if terminal is None else terminal):
        return [*given, EpochLines()]
    return [*given, RunRichProgressBar() if find_spec("rich") else RunTQDMProgressBar()]
