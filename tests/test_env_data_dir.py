"""``$MNIST_DATA_DIR`` is the data dir of every command when ``--data.data_dir`` is not given
(README "Quick start"): here ``lightning-mnist-data``, ``mnist-bench`` and
``python -m keras_reference``, each with its work patched out (no training, no TensorFlow);
tests/test_standalone.py covers the CLI's data module and ``mnist-compare``."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from lightning_mnist.compare import bench
from lightning_mnist.data import cli as data_cli


@pytest.fixture
def env_dir(tiny_idx_dir, tmp_path, monkeypatch) -> Path:
    """``$MNIST_DATA_DIR`` names the tiny files; the working directory has no data/, so the
    fallback would find nothing there."""
    monkeypatch.setenv("MNIST_DATA_DIR", str(tiny_idx_dir))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tiny_idx_dir


def test_data_command_verifies_the_files_the_variable_names(env_dir, capsys):
    # The tiny files are not MNIST's size, so verify fails, naming them: they were read.
    assert data_cli.main(["verify"]) == 1
    out, err = capsys.readouterr()
    raw = env_dir / "MNIST" / "raw"
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        row = next(line for line in out.splitlines() if line.startswith(name))
        assert str((raw / name).stat().st_size) in row.split()
    assert "missing" not in out and str(raw / "train-images-idx3-ubyte") in err


def test_bench_trains_on_the_files_the_variable_names(env_dir, tmp_path, monkeypatch):
    checked, runs = [], []
    monkeypatch.setattr(
        bench.runners, "check_data", lambda data_dir, create=False: checked.append(data_dir)
    )
    monkeypatch.setattr(bench, "bench", lambda run, rows, *probes: runs.append(run) or {})
    monkeypatch.setattr(bench, "render_markdown", lambda report: "")
    assert bench.main(["--out", str(tmp_path / "bench"), "--frameworks", "[torch]"]) == 0
    assert checked == [str(env_dir)] and runs[0].data_dir == str(env_dir)


def test_keras_reference_reads_the_files_the_variable_names(env_dir, tmp_path, monkeypatch):
    """Its own lookup (it never imports lightning_mnist's data code); the modules that would
    load TensorFlow are stand-ins here."""
    from keras_reference.__main__ import main

    got = {}
    tutorial = types.ModuleType("keras_reference.tutorial")
    tutorial.run_tutorial = lambda **kw: got.update(kw) or {"seed": 0}
    results = types.ModuleType("keras_reference.results")
    results.check_out_dir = Path
    results.write_results = lambda out, record: out / "results.json"
    monkeypatch.setitem(sys.modules, "keras_reference.tutorial", tutorial)
    monkeypatch.setitem(sys.modules, "keras_reference.results", results)
    out = str(tmp_path / "run")
    assert main(["--out", out, "--tune_malloc", "false"]) == 0
    assert got["data_dir"] == str(env_dir)
    assert main(["--out", out, "--tune_malloc", "false", "--data.data_dir", "given"]) == 0
    assert got["data_dir"] == "given"  # the option still wins
