"""A run's checkpoints: written whole (``AtomicCheckpointIO``), restored as untrusted data
(``RunCheckpoint``)."""

import io
import re
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lightning_mnist.atomic import write_atomic
from lightning_mnist.errors import folder_removed

FIELD = re.compile(r"\{([^}:]+)(?::([^}]*))?\}")


def inside(folder: Path, path: str | Path) -> Path | None:
    """``folder/<name of path>`` when that is a regular file directly inside ``folder``
    (symlinks and ``..`` resolved), else None."""
    name = Path(path).name
    candidate = folder / name
    found = name not in ("", ".", "..") and candidate.is_file()
    return candidate if found and candidate.resolve().parent == folder.resolve() else None


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that treats a restored state as untrusted data.

    Lightning would delete the files a restored state names, so each stored path is kept only
    as a file of this callback's own folder (a moved run folder still finds its best), any other
    is dropped with a line saying so; best files the state does not list are removed.

    Args:
        filename: The best checkpoints' names; null: ``best-EPOCH-VALUE``, epochs from 1 and
            the monitored value (val_loss in the presets).
        auto_insert_metric_name: Whether Lightning puts ``name=`` before each value.
        **kwargs: ModelCheckpoint's other arguments (monitor, mode, save_top_k, save_last).
    """

    def __init__(
        self,
        filename: str | None = None,
        auto_insert_metric_name: bool = False,
        **kwargs: Any,
    ) -> None:
        if filename is None:  # named by what it monitors (Lightning writes 0 for a missing one)
            monitor = kwargs.get("monitor")
            named = monitor and "/" not in monitor  # a "/" would make a folder
            filename = "best-{epoch:02d}" + (f"-{{{monitor}:.4f}}" if named else "")
        super().__init__(
            filename=filename, auto_insert_metric_name=auto_insert_metric_name, **kwargs
        )
        self._run_dir: Path | None = None

    def format_checkpoint_name(self, metrics: dict, filename=None, ver=None, prefix=None) -> str:
        # Epochs count from 1 in the file names, as in results.json, the plots and Keras.
        if "epoch" in metrics:
            metrics = dict(metrics, epoch=metrics["epoch"] + 1)
        return super().format_checkpoint_name(metrics, filename, ver, prefix)

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # The run folder: if it goes away, saving stops the run instead of recreating part of it.
        above = Path(self.dirpath).parent if self.dirpath else None
        self._run_dir = above if above is not None and above.is_dir() else None

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        if self._run_dir is not None and not self._run_dir.is_dir():
            raise folder_removed(self._run_dir)
        super()._save_checkpoint(trainer, filepath)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._save_last_every_time(trainer, at_train_epoch_end=True)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        self._save_last_every_time(trainer, at_train_epoch_end=False)

    def _save_last_every_time(self, trainer, at_train_epoch_end: bool) -> None:
        """``last.ckpt`` holds the latest epoch: Lightning 2.6 writes it only with a new best, so
        after an epoch that did not improve, a resume would take an older one."""
        if not self.save_last or self._should_skip_saving_checkpoint(trainer):
            return  # off, not fitting, or already saved at this step
        if self._should_save_on_train_epoch_end(trainer) == at_train_epoch_end:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not self.dirpath:
            return super().load_state_dict(state_dict)
        folder = Path(self.dirpath)
        super().load_state_dict(self._checked(dict(state_dict), folder))
        # Own best files the state does not list (a kill between saving a new best and deleting
        # the old); never a user's files.
        listed = {Path(p).name for p in [*self.best_k_models, self.best_model_path] if p}
        pattern = self._own_name()
        for path in folder.iterdir() if folder.is_dir() else ():
            own = pattern.fullmatch(path.name) and path.name not in listed
            if own and path.is_file() and not path.is_symlink():
                path.unlink()

    @staticmethod
    def _checked(state: dict[str, Any], folder: Path) -> dict[str, Any]:
        saved = Path(str(state.get("dirpath") or ""))

        def keep(path: Any) -> str:
            found = inside(folder, path) if isinstance(path, str | Path) and path else None
            if path and found is None and Path(str(path)).parent != saved:
                print(f"checkpoint state: ignoring {str(path)[:200]!r} (not a file of {folder})")
            return str(found) if found else ""

        for key in ("best_model_path", "last_model_path", "kth_best_model_path"):
            state[key] = keep(state.get(key, ""))
        best_k = state.get("best_k_models")
        best_k = best_k if isinstance(best_k, dict) else {}
        state["best_k_models"] = {p: v for k, v in best_k.items() if (p := keep(k))}
        if not state["best_model_path"]:  # no best file here: the next epoch saves one
            state.update(best_model_score=None, best_k_models={}, kth_best_model_path="")
        return dict(state, dirpath=str(folder))

    def _own_name(self) -> re.Pattern:
        """The names of this callback's best checkpoints."""
        template = self.filename or "{epoch}-{step}"
        parts, end = [], 0
        for m in FIELD.finditer(template):
            parts.append(re.escape(template[end : m.start()]))
            name = re.escape(m.group(1)) + "=" if self.auto_insert_metric_name else ""
            digits = (m.group(2) or "").endswith("d")
            parts.append(name + (r"\d+" if digits else r"[-+0-9.eEnaif]+"))
            end = m.end()
        parts.append(re.escape(template[end:]))
        return re.compile("".join(parts) + rf"(-v\d+)?{re.escape(self.FILE_EXTENSION)}")

    def _remove_checkpoint(self, trainer, filepath: str) -> None:
        # Only a file directly inside this callback's folder, whatever a restored state said.
        folder = Path(self.dirpath).resolve() if self.dirpath else None
        if Path(filepath).is_file() and Path(filepath).resolve().parent == folder:
            super()._remove_checkpoint(trainer, filepath)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Serialise in memory, then ``write_atomic`` (temp file, fsync, rename), adding up the time
    in ``save_seconds``. Removing deletes one file, never a folder as Lightning's own would."""

    save_seconds = 0.0

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        t0 = time.perf_counter()
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomic(Path(path), buffer.getbuffer())
        self.save_seconds += time.perf_counter() - t0

    def remove_checkpoint(self, path) -> None:
        path = Path(path)
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            print(f"not removing {path}: a checkpoint is a file, this is not")
