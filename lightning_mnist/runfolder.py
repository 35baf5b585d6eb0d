"""The run folder: one per command, never overwritten, safe to kill at any moment.

- ``RunLogger``: a CSVLogger that appends to ``metrics.csv`` when a run resumes in its
  own folder (Lightning's deletes the file).
- ``AtomicCheckpointIO``: checkpoints are written to a temp file, fsynced, then renamed,
  so a kill during a write leaves the previous ``last.ckpt``/best checkpoint intact.
- ``SaveOnInterrupt``: Ctrl-C and SIGTERM save ``checkpoints/interrupted.ckpt``.
- ``find_last``: resolves ``--ckpt_path last`` to the newest run's ``last.ckpt``.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lightning_mnist.idx import write_atomic

VERSION = re.compile(r"version_(\d+)$")


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        # Keep the rows of the epochs before a resume; later rows are appended.
        if self._fs.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = list(next(csv.reader(f), []))


class RunLogger(CSVLogger):
    """CSVLogger whose ``metrics.csv`` survives a resume in the same run folder."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class RunConfig(SaveConfigCallback):
    """Save ``config.yaml``; a resumed run adds ``config.resumed-N.yaml`` beside it."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        log_dir = trainer.log_dir
        if log_dir and (Path(log_dir) / self.config_filename).exists():  # a resumed run
            n = 1
            while (Path(log_dir) / f"config.resumed-{n}.yaml").exists():
                n += 1
            self.config_filename = f"config.resumed-{n}.yaml"
        super().setup(trainer, pl_module, stage)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Serialise in memory, then write a temp file, fsync and rename (``write_atomic``)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomic(Path(path), buffer.getbuffer())


class SaveOnInterrupt(Callback):
    """Save ``checkpoints/interrupted.ckpt`` when fit stops on Ctrl-C or SIGTERM.

    The exact resume point stays ``last.ckpt`` (the last finished epoch): a mid-epoch
    state cannot be replayed exactly, so this file is for inspection or a manual restart.
    """

    def __init__(self) -> None:
        self.path: Path | None = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt | SIGTERMException):
            return
        ckpt = trainer.checkpoint_callback
        folder = Path(ckpt.dirpath) if ckpt and ckpt.dirpath else Path(trainer.log_dir)
        self.path = folder / "interrupted.ckpt"
        trainer.save_checkpoint(self.path)
        if trainer.is_global_zero:
            last = folder / "last.ckpt"
            hint = (
                f"; resume from the last finished epoch with --ckpt_path {last}"
                if last.is_file()
                else ""
            )
            print(f"\nInterrupted at epoch {trainer.current_epoch}: saved {self.path}{hint}")


def versions(root: str | Path) -> list[tuple[int, Path]]:
    """``(N, path)`` of every ``version_N`` folder under ``root``, oldest first."""
    root = Path(root)
    found = [(int(m.group(1)), p) for p in root.glob("version_*") if (m := VERSION.search(p.name))]
    return sorted(found)


def find_last(root: str | Path) -> tuple[int, Path] | None:
    """The newest run under ``root`` that has ``checkpoints/last.ckpt``: ``(version, ckpt)``."""
    for version, path in reversed(versions(root)):
        ckpt = path / "checkpoints" / "last.ckpt"
        if ckpt.is_file():
            return version, ckpt
    return None
