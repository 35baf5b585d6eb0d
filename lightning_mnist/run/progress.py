"""The progress bar of a run: epochs counted from 1 of max_epochs (as in results.json, the
checkpoint names and Keras's ``Epoch 1/100``), and no logger version (``v_num``), which is
the run folder's name and not a measurement."""

from __future__ import annotations

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


def run_progress_bar() -> ProgressBar:
    """The bar Lightning would pick by default, with the run's epoch numbers."""
    return RunRichProgressBar() if find_spec("rich") else RunTQDMProgressBar()
