"""The run folder, ``<root>/version_N``: which one a command writes, and what it holds.

- ``RunConfig``: ``config.yaml`` in the run folder, whatever loggers are chosen.
- ``versions``, ``find_last``: the run folders under a root; ``--ckpt_path last``.
- ``clean_for_resume``: a resumed run starts from what its last finished epoch left.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import SaveConfigCallback

from lightning_mnist.atomic import write_atomic

DEFAULT_ROOT = "runs"
VERSION = re.compile(r"version_(\d+)$")


class RunConfig(SaveConfigCallback):
    """Save ``config.yaml`` in the run folder; a resumed run adds ``config.resumed-N.yaml``.

    Args:
        run_dir: The run folder (the CLI passes it through ``save_config_kwargs``).
        config_as_given: The config before the CLI filled in the run's paths.
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
        empty = folder is not None and folder.is_dir()
        if trainer.is_global_zero and empty and not any(p.is_file() for p in folder.rglob("*")):
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
