"""Resuming a run exactly: the decisions a checkpoint holds are kept, interrupts are saved.

- ``KeepStopDecision``: a run that early stopping had ended stays ended when it is resumed
  (Lightning restores EarlyStopping's counters, not its decision), so a resume after a kill
  in the final test or the record trains no extra epoch.
- ``SaveOnInterrupt``: Ctrl-C and SIGTERM save ``checkpoints/interrupted.ckpt``.
"""

from __future__ import annotations

import signal
from pathlib import Path

from lightning.pytorch.callbacks import Callback, EarlyStopping
from lightning.pytorch.utilities.exceptions import SIGTERMException


class KeepStopDecision(Callback):
    """On a resume, stop before training when a restored EarlyStopping had already decided."""

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 0:
            return  # a fresh run: only a restored state can have decided
        for callback in trainer.callbacks:
            if isinstance(callback, EarlyStopping) and callback.wait_count >= callback.patience:
                trainer.should_stop = True


class SaveOnInterrupt(Callback):
    """Save ``checkpoints/interrupted.ckpt`` when fit stops on Ctrl-C or SIGTERM.

    The exact resume point stays ``last.ckpt`` (the last finished epoch): a mid-epoch
    state cannot be replayed exactly, so this file is for inspection or a manual restart.
    """

    # The shell's exit status for the signal that stopped the last fit (130: Ctrl-C, 143:
    # SIGTERM), for the CLI to return: Lightning itself exits with 1 after an interrupt.
    exit_code: int | None = None

    def __init__(self) -> None:
        self.path: Path | None = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt | SIGTERMException):
            return
        signum = signal.SIGINT if isinstance(exception, KeyboardInterrupt) else signal.SIGTERM
        SaveOnInterrupt.exit_code = 128 + signum
        ckpt = trainer.checkpoint_callback
        if not (ckpt and ckpt.dirpath):
            return  # checkpointing is off: nothing to save into
        folder = Path(ckpt.dirpath)
        self.path = folder / "interrupted.ckpt"
        trainer.save_checkpoint(self.path, weights_only=False)  # the whole state
        if trainer.is_global_zero:
            last = folder / "last.ckpt"
            hint = (
                f"; resume from the last finished epoch with --ckpt_path {last}"
                if last.is_file()
                else ""
            )
            epoch = trainer.current_epoch + 1  # 1-based, as results.json and the plots count
            print(f"\nInterrupted in epoch {epoch}: saved {self.path}{hint}")
