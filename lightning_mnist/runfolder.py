"""The run folder: one per command, never overwritten, safe to kill at any moment.

- ``RunLogger``: a CSVLogger that appends to ``metrics.csv`` when a run resumes in its
  own folder (Lightning's deletes the file). This is the project's one shim on a Lightning
  internal (``ExperimentWriter._check_log_dir_exists``); ``tests/test_cli.py`` fails loudly
  if Lightning renames it.
- ``RunConfig``: ``config.yaml`` in the run folder, whatever loggers are chosen.
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
import shutil
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
    """CSVLogger whose ``metrics.csv`` survives a resume in the same run folder.

    Args:
        save_dir: The run root; None is filled in by the CLI with ``trainer.default_root_dir``.
        name: Sub-folder under ``save_dir`` ("" puts ``version_N`` right under it).
        version: The run folder's number; None is filled in by the CLI (next free, the run
            being resumed, or the SLURM job id).
        flush_logs_every_n_steps: How often rows are written to disk.
    """

    def __init__(
        self,
        save_dir: str | None = None,
        name: str = "",
        version: int | str | None = None,
        flush_logs_every_n_steps: int = 100,
    ) -> None:
        super().__init__(
            save_dir or "runs",
            name=name,
            version=version,
            flush_logs_every_n_steps=flush_logs_every_n_steps,
        )

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class RunConfig(SaveConfigCallback):
    """Save ``config.yaml`` in the run folder; a resumed run adds ``config.resumed-N.yaml``.

    Args:
        run_dir: The run folder (the CLI passes it through ``save_config_kwargs``).
    """

    def __init__(
        self, *args: Any, run_dir: str | None = None, config_as_given: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.run_dir = run_dir
        if config_as_given is not None:
            self.config = config_as_given

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # A run that fails before it wrote anything (bad data found in setup, ...) leaves no
        # empty run folder behind.
        folder = Path(self.run_dir) if self.run_dir else None
        empty = (
            folder is not None
            and folder.is_dir()
            and not any(p.is_file() for p in folder.rglob("*"))
        )
        if trainer.is_global_zero and empty:
            shutil.rmtree(folder, ignore_errors=True)

    def save_config(self, trainer, pl_module, stage: str) -> None:
        if self.run_dir is None:
            return
        folder = Path(self.run_dir)
        name = self.config_filename
        if (folder / name).exists():  # a resumed run
            n = 1
            while (folder / f"config.resumed-{n}.yaml").exists():
                n += 1
            name = f"config.resumed-{n}.yaml"
        folder.mkdir(parents=True, exist_ok=True)
        self.parser.save(self.config, folder / name, skip_none=False, multifile=self.multifile)


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
        if not (ckpt and ckpt.dirpath):
            return  # checkpointing is off: nothing to save into
        folder = Path(ckpt.dirpath)
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
