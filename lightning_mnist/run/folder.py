"""The run folder: one per command, never overwritten, safe to kill at any moment.

- ``RunLogger``: a CSVLogger that appends to ``metrics.csv`` when a run resumes in its
  own folder (Lightning's deletes the file). This is the project's one shim on a Lightning
  internal (``ExperimentWriter._check_log_dir_exists``);
  ``tests/test_lightning_native.py`` fails loudly if Lightning renames it.
- ``RunConfig``: ``config.yaml`` in the run folder, whatever loggers are chosen.
- ``RunCheckpoint``: ModelCheckpoint whose saved paths follow the run folder when it moves.
- ``clean_for_resume``, ``RunLock``: a resumed run starts from a clean folder, one writer at a
  time.
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
import socket
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lightning_mnist.atomic import write_atomic

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
    """Serialise in memory, then write a temp file, fsync and rename (``write_atomic``).

    ``save_seconds`` adds up the time spent saving, the checkpoint part of a run's time.
    """

    save_seconds = 0.0

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        t0 = time.perf_counter()
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomic(Path(path), buffer.getbuffer())
        self.save_seconds += time.perf_counter() - t0


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


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose restored state follows a moved or copied run folder.

    A checkpoint stores absolute paths (its folder, the best and last files). When the run
    folder has moved since, those paths name the old place; they are rebased onto this
    callback's folder, so a resume tests the best checkpoint of this folder, not another's.
    Best checkpoints that the state does not list (left by a kill between writing a new best
    and deleting the old one) are removed, so the folder holds ``save_top_k`` of them.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and Path(old) != Path(self.dirpath):
            state_dict = self._rebased(state_dict, Path(old), Path(self.dirpath))
        super().load_state_dict(state_dict)
        if self.dirpath and Path(self.dirpath).is_dir():
            keep = {Path(p).name for p in self.best_k_models} | {"last.ckpt", "interrupted.ckpt"}
            keep.add(Path(self.best_model_path).name if self.best_model_path else "")
            for stale in Path(self.dirpath).glob("*.ckpt"):
                if stale.name not in keep and not stale.name.startswith("hpc_ckpt"):
                    stale.unlink()

    @staticmethod
    def _rebased(state: dict[str, Any], old: Path, new: Path) -> dict[str, Any]:
        def move(path: str) -> str:
            return str(new / Path(path).name) if path and Path(path).parent == old else path

        state = dict(state, dirpath=str(new))
        for key in ("best_model_path", "last_model_path", "kth_best_model_path"):
            if key in state:
                state[key] = move(state[key])
        if "best_k_models" in state:
            state["best_k_models"] = {move(k): v for k, v in state["best_k_models"].items()}
        return state


def clean_for_resume(run_dir: Path, epoch: int) -> None:
    """Before resuming ``run_dir`` after its ``epoch`` (0-based) finished: remove temp files an
    interrupted write left, and the metrics.csv rows of the epoch that did not finish."""
    for tmp in (run_dir / "checkpoints").glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        return
    with metrics.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "epoch" not in rows[0]:
        return
    col = rows[0].index("epoch")
    kept = [rows[0]] + [r for r in rows[1:] if r[col] == "" or int(float(r[col])) <= epoch]
    if len(kept) != len(rows):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(kept)
        write_atomic(metrics, buffer.getvalue().encode())


class RunLock:
    """One writer per run folder: ``.version_N.lock`` beside it holds the writer's PID and host
    (beside, not inside, so that a new run's folder does not exist before its first write).

    A lock whose process is gone (killed) is taken over; one whose process is alive on this
    host is refused with one line naming it.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir.parent / f".{run_dir.name}.lock"
        self.held = False
        self.created_parent = False

    def acquire(self) -> str | None:
        """Take the lock; return None, or the one-line reason it is held by another process."""
        self.created_parent = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = f"{os.getpid()} {socket.gethostname()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = self.path.read_text().split() if self.path.exists() else []
                if other and _alive(other):
                    return (
                        f"run folder {self.run_dir} is being written by process {other[0]}"
                        f" on {other[1] if len(other) > 1 else 'this host'}; wait for it or "
                        "choose another --trainer.default_root_dir"
                    )
                self.path.unlink(missing_ok=True)  # a stale lock: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            self.held = True
            return None
        return f"cannot take the lock {self.path}"

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _alive(owner: list[str]) -> bool:
    pid, host = int(owner[0]), owner[1] if len(owner) > 1 else socket.gethostname()
    if host != socket.gethostname():
        return True  # another machine's process: cannot check, so assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
