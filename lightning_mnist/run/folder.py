"""The run folders under a root, ``<root>/version_N``, and what a run leaves in its own."""

import csv
import io
import re
import shutil
from itertools import count
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import SaveConfigCallback

from lightning_mnist.atomic import write_atomic
from lightning_mnist.errors import UserError

DEFAULT_ROOT = "runs"
VERSION = re.compile(r"version_(\d+)$")


class RunConfig(SaveConfigCallback):
    """Save the config as given (``config_as_given``, before the CLI filled in the run's paths)
    as ``config.yaml`` in ``run_dir``; a resumed run adds ``config.resumed-N.yaml``."""

    def __init__(
        self, *args: Any, run_dir: str | None = None, config_as_given: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.run_dir = run_dir
        if config_as_given is not None:
            self.config = config_as_given

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # A run that fails before it wrote anything (bad data, ...) leaves no empty folder.
        folder = Path(self.run_dir) if self.run_dir else None
        empty = folder is not None and folder.is_dir()
        if trainer.is_global_zero and empty and not any(p.is_file() for p in folder.rglob("*")):
            shutil.rmtree(folder, ignore_errors=True)

    def save_config(self, trainer, pl_module, stage: str) -> None:
        if self.run_dir is None:
            return
        folder, name = Path(self.run_dir), self.config_filename
        resumed = (f"config.resumed-{n}.yaml" for n in count(1))
        while (folder / name).exists():
            name = next(resumed)
        folder.mkdir(parents=True, exist_ok=True)
        self.parser.save(self.config, folder / name, skip_none=False, multifile=self.multifile)


def versions(root: str | Path) -> list[tuple[int, Path]]:
    """``(N, path)`` of every ``version_N`` folder under ``root``, oldest first."""
    found = [(int(m[1]), p) for p in Path(root).glob("version_*") if (m := VERSION.search(p.name))]
    return sorted(found)


def find_last(root: Path) -> tuple[int, Path]:
    """``(version, checkpoints/last.ckpt)`` of the newest run under ``root`` that has one."""
    for version, path in reversed(versions(root)):
        if (ckpt := path / "checkpoints" / "last.ckpt").is_file():
            return version, ckpt
    raise no_run(root, "last", "no run with checkpoints/last.ckpt")


def no_run(root: Path, ckpt: str, missing: str) -> UserError:
    """``--ckpt_path last/best`` found nothing under ``root``: the one line, naming the folders
    below it that hold runs (each preset's config trains into its own, e.g. runs/tutorial)."""
    below = sorted(
        {str(p.parent) for p in Path(root).glob("*/version_*") if VERSION.search(p.name)}
    )
    line = f"--ckpt_path {ckpt}: {missing} under {root}"
    if not below:
        return UserError(line)
    return UserError(
        f"{line}; runs are under {', '.join(below)}: pass the --config that trained them or "
        f"--trainer.default_root_dir {below[0]}"
    )


def clean_for_resume(run_dir: Path, epoch: int) -> None:
    """Before resuming ``run_dir`` after its ``epoch`` (0-based) finished: remove temp files an
    interrupted write left, and the metrics.csv rows of the epoch that did not finish."""
    for tmp in [*run_dir.glob(".*.tmp"), *(run_dir / "checkpoints").glob(".*.tmp")]:
        tmp.unlink(missing_ok=True)  # the atomic writer's temp files: results, plots, checkpoints
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
