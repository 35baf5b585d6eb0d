"""``RunLogger``, the project's one shim on a Lightning internal
(``ExperimentWriter._check_log_dir_exists``); tests/test_lightning_native.py fails if it goes."""

import csv
import os

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from lightning_mnist.run.folder import DEFAULT_ROOT


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        # Keep the rows of the epochs before a resume (Lightning's deletes the file).
        if self._fs.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = list(next(csv.reader(f), []))


class RunLogger(CSVLogger):
    """CSVLogger whose ``metrics.csv`` survives a resume in the same run folder.

    Args:
        save_dir: The run root; None is filled in by the CLI with ``trainer.default_root_dir``.
        name: Sub-folder under ``save_dir`` ("" puts ``version_N`` right under it).
        version: The run folder's number; None: the CLI's (next free, resumed, or SLURM job id).
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
            save_dir or DEFAULT_ROOT,
            name,
            version,
            flush_logs_every_n_steps=flush_logs_every_n_steps,
        )

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
