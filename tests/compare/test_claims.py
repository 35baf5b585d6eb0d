"""What docs/comparing.md and docs/speed.md promise of ``mnist-compare`` and ``mnist-bench``
as commands, with the child runs faked: the defaults, the GPU check before any run, and the
benchmark's turns."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lightning_mnist.compare import bench, runners
from lightning_mnist.compare import cli as compare
from lightning_mnist.compare.cli import main
from lightning_mnist.compare.runners import CompareError

from .fakes import fake_runners


def test_defaults_are_five_seeds_with_the_tutorials_settings(tmp_path, monkeypatch):
    calls = fake_runners(monkeypatch)
    _keras_installed(monkeypatch)
    out = tmp_path / "cmp"
    assert main(["--out", str(out)]) == 0
    got = [(c["framework"], c["seed"]) for c in calls]
    assert got == [(fw, s) for s in range(5) for fw in ("keras", "lightning")]
    assert {(c["epochs"], c["patience"]) for c in calls} == {(100, 2)}
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["preset"], settings["epochs"], settings["patience"]) == ("tutorial", 100, 2)


def _keras_installed(monkeypatch) -> None:
    """Let the Keras check pass where TensorFlow is not installed (the runs here are fakes)."""
    real = compare.importlib.util.find_spec
    monkeypatch.setattr(
        compare.importlib.util,
        "find_spec",
        lambda name, *a: real(name, *a) or (name == "keras" or None),
    )


def _tensorflow_probe(monkeypatch, returncode: int) -> list[list[str]]:
    """Torch sees a GPU; the TensorFlow probe child exits with ``returncode``. Returns the
    probe commands run."""
    probes: list[list[str]] = []

    def probe(cmd, **kwargs):
        probes.append(cmd)
        return subprocess.CompletedProcess(cmd, returncode)

    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr(runners.subprocess, "run", probe)
    return probes


def test_gpu_comparison_without_a_tensorflow_gpu_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runners, "check_data", lambda data_dir, dataset, create=False: None)
    _keras_installed(monkeypatch)
    probes = _tensorflow_probe(monkeypatch, returncode=1)
    out = tmp_path / "cmp"
    assert main(["--trainer.accelerator", "gpu", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "TensorFlow sees no GPU" in err
    # The message names the options as the command spells them.
    assert "--trainer.accelerator gpu" in err and "--frameworks [lightning]" in err
    assert len(probes) == 1 and "list_physical_devices('GPU')" in probes[0][-1]
    assert not out.exists()


def test_gpu_check_passes_only_when_each_framework_sees_a_gpu(monkeypatch):
    probes = _tensorflow_probe(monkeypatch, returncode=0)
    assert runners.check_gpu({"keras", "lightning"}) is None
    assert len(probes) == 1
    assert runners.check_gpu({"lightning"}) is None and len(probes) == 1  # no Keras, no probe
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(CompareError, match=r"^--trainer\.accelerator gpu: torch sees no GPU"):
        runners.check_gpu({"lightning"})


def _fake_children(monkeypatch) -> list[tuple[list[str], Path]]:
    """Replace every child process with one that writes a finished run's results.json where
    its runner looks; returns each child's command and run folder, in order."""
    children: list[tuple[list[str], Path]] = []

    def fake_stream(cmd, prefix, log, quiet=False, accelerator="cpu"):
        children.append((cmd, log.parent))
        folder = log.parent / ("version_0" if "lightning_mnist.cli" in cmd else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps({"epoch_seconds": [3.0, 2.0, 2.0]}))
        return []

    monkeypatch.setattr(runners, "check_data", lambda data_dir, create=False: None)
    monkeypatch.setattr(runners, "stream", fake_stream)
    monkeypatch.setattr(bench.plain_loop, "probe_flops", lambda device, size, seconds: 1e11)
    return children


def test_bench_rows_run_in_turns_with_early_stopping_off(tmp_path, monkeypatch):
    children = _fake_children(monkeypatch)
    out = tmp_path / "bench"
    argv = ["--trainer.max_epochs", "3", "--repeats", "2", "--step_probe_steps", "0"]
    assert bench.main([*argv, "--out", str(out), "--quiet", "true"]) == 0
    turns = [(run.parent.name, run.name) for _, run in children]
    assert turns == [(row, f"turn{t}") for t in (1, 2) for row in bench.ROWS]  # A B C … A B C …
    keras_and_lightning = [cmd for cmd, run in children if not run.parent.name.startswith("torch")]
    assert len(keras_and_lightning) == 8
    for cmd in keras_and_lightning:
        # Patience equal to the epochs: EarlyStopping can never stop a row early.
        assert cmd[cmd.index("--early_stopping.patience") + 1] == "3"
        assert cmd[cmd.index("--trainer.max_epochs") + 1] == "3"
    report = json.loads((out / "bench.json").read_text())
    assert list(report["frameworks"]) == list(bench.ROWS)
    assert all(len(r["turn_medians"]) == 2 for r in report["frameworks"].values())
