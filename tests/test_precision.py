"""Every precision Lightning's Trainer offers either trains, tests and records a run, or is
refused in one line, through the real command line."""

from __future__ import annotations

import json
import math
import typing

import pytest
from helpers import cli_args
from lightning.pytorch import Trainer

from lightning_mnist.cli import main


def _literals(hint) -> list:
    if typing.get_origin(hint) is typing.Literal:
        return list(typing.get_args(hint))
    return [v for arg in typing.get_args(hint) for v in _literals(arg)]


# Lightning's own list, so a precision it adds is tried too; duplicates as strings dropped.
PRECISIONS = list(
    dict.fromkeys(str(p) for p in _literals(typing.get_type_hints(Trainer.__init__)["precision"]))
)
# These must train on a CPU; the others may be refused (a package or a GPU they need).
ON_CPU = {"32", "32-true", "64", "64-true", "bf16", "bf16-true", "bf16-mixed", "16", "16-mixed"}
SHORT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3"]
SHORT += ["--trainer.limit_val_batches", "2", "--trainer.limit_test_batches", "2"]


@pytest.mark.real_data
@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_works_or_is_refused_in_one_line(precision, data_dir, tmp_path, capsys):
    argv = ["fit", *cli_args(data_dir, tmp_path, *SHORT, "--trainer.precision", precision)]
    code = main(argv)
    out, err = capsys.readouterr()
    if precision in ON_CPU or code == 0:
        assert code == 0, err[-3000:]
        results = json.loads((tmp_path / "version_0" / "results.json").read_text())
        assert math.isfinite(results["test_accuracy"]) and results["precision"]
    else:
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err + out, err[-3000:]
        assert "precision" in lines[0] or "non-finite" in lines[0], lines[0]
