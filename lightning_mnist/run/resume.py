"""Resuming a run exactly: the decisions a checkpoint holds are kept, interrupts are saved."""

import signal
from pathlib import Path

from lightning.pytorch.callbacks import Callback, EarlyStopping
from lightning.pytorch.utilities.exceptions import SIGTERMException


class KeepStopDecision(Callback):
    """A run that early stopping ended stays ended when resumed (after a kill in the final test):
    Lightning restores EarlyStopping's counters, not its decision."""

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 0:
            return  # a fresh run: only a restored state can have decided
        for callback in trainer.callbacks:
            if isinstance(callback, EarlyStopping) and callback.wait_count >= callback.patience:
                trainer.should_stop = True


class SaveOnInterrupt(Callback):
    """Save ``checkpoints/interrupted.ckpt`` when fit stops on Ctrl-C or SIGTERM, to inspect: a
    mid-epoch state cannot be replayed exactly, so a resume starts from ``last.ckpt``."""

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
            hint = f"; resume from the last finished epoch with --ckpt_path {last}"
            hint = hint if last.is_file() else ""
            epoch = trainer.current_epoch + 1  # 1-based, as results.json and the plots count
            print(f"\nInterrupted in epoch {epoch}: saved {self.path}{hint}")
