"""Every precision Lightning's Trainer offers either trains, tests and records a run, or is
refused in one line, through the real command line."""

from __future__ import annotations

import json
import math
import typing
import warnings
from importlib.util import find_spec

import pytest
from helpers import cli_args
from lightning.pytorch import Trainer

from lightning_mnist import checks
from lightning_mnist.cli import main
from lightning_mnist.data import catalogue
from lightning_mnist.data.catalogue import make_spec


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
# Refused where NVIDIA's package is missing, whatever else this machine has.
REFUSED_HERE = (
    {p for p in PRECISIONS if p.startswith("transformer-engine")}
    if find_spec("transformer_engine") is None
    else set()
)
SHORT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3"]
SHORT += ["--trainer.limit_val_batches", "2", "--trainer.limit_test_batches", "2"]


@pytest.mark.real_data
@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_works_or_is_refused_in_one_line(precision, data_dir, tmp_path, capsys):
    argv = ["fit", *cli_args(data_dir, tmp_path, *SHORT, "--trainer.precision", precision)]
    code = main(argv)
    out, err = capsys.readouterr()
    if precision in ON_CPU or (code == 0 and precision not in REFUSED_HERE):
        assert code == 0, err[-3000:]
        results = json.loads((tmp_path / "version_0" / "results.json").read_text())
        assert math.isfinite(results["test_accuracy"])
        assert results["precision"] in PRECISIONS, results["precision"]  # what ran
        if precision in ("16", "16-mixed"):  # Lightning runs it as bf16-mixed on a CPU
            assert results["precision"] == "bf16-mixed", results["precision"]
    else:
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err + out, err[-3000:]
        assert "precision" in lines[0] or "non-finite" in lines[0], lines[0]
        if precision in ("16", "16-true"):  # float16 weights overflowed: the fix is named
            assert "16-mixed" in lines[0], lines[0]


# The tiny IDX files as "mnist": 64 training images, batch 8.
TINY = ["--data.batch_size", "8", "--early_stopping", "null", "--trainer.max_epochs", "1"]


@pytest.fixture
def tiny_mnist(monkeypatch):
    monkeypatch.setitem(catalogue.DATASETS, "mnist", make_spec("mnist", "MNIST", 64, 32))


def test_16_mixed_runs_as_bf16_mixed_on_a_cpu_and_says_so(tiny_mnist, tiny_idx_dir, tmp_path):
    argv = ["fit", *cli_args(tiny_idx_dir, tmp_path, *TINY, "--trainer.precision", "16-mixed")]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(argv) == 0
    said = [str(w.message) for w in seen if "bf16-mixed" in str(w.message)]
    assert said and "16-mixed" in said[0], [str(w.message) for w in seen]
    results = json.loads((tmp_path / "version_0" / "results.json").read_text())
    assert results["precision"] == "bf16-mixed"


def test_16_true_overflow_stops_with_a_line_naming_16_mixed(
    tiny_mnist, tiny_idx_dir, tmp_path, capsys
):
    # A huge learning rate overflows float16 weights in the first steps, as the tutorial's
    # training does later: the epoch's loss is non-finite.
    extra = (*TINY, "--trainer.precision", "16-true", "--optimizer.lr", "1e6")
    assert main(["fit", *cli_args(tiny_idx_dir, tmp_path, *extra)]) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in out + err, err[-3000:]
    assert "non-finite" in lines[0] and "--trainer.precision 16-mixed" in lines[0], lines[0]


def test_transformer_engine_without_its_package_is_refused_before_training(
    tiny_mnist, tiny_idx_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(
        checks, "find_spec", lambda name: None if name == "transformer_engine" else find_spec(name)
    )
    extra = (*TINY, "--trainer.precision", "transformer-engine")
    assert main(["fit", *cli_args(tiny_idx_dir, tmp_path, *extra)]) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in out + err, err[-3000:]
    assert "transformer_engine" in lines[0], lines[0]
    assert "Batch:" not in out and not list(tmp_path.glob("version_*"))  # nothing trained
