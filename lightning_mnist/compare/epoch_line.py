"""The per-epoch line of a Lightning child run (``runners.run_lightning``), whose output goes to a
pipe, where a progress bar would flood."""

import time

from lightning.pytorch.callbacks import Callback


class EpochLine(Callback):
    """Prints one Keras-like line per epoch, for a Lightning run without a progress bar."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # Runs after the epoch's validation; the system keeps its epoch means as floats.
        m = getattr(pl_module, "epoch_metrics", {})
        keys = ("loss", "accuracy", "val_loss", "val_accuracy")
        parts = [f"{k} {m[k]:.4f}" for k in keys if k in m]
        secs = time.perf_counter() - self._t0
        epoch = f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        print(f"{epoch} - {secs:.1f}s - " + " - ".join(parts), flush=True)
