"""``mnist-compare``: the report from saved files (fast), and the real comparison, short form.

The short form runs both frameworks for 3 epochs with one seed through the real command
(``main([...])`` drives it here; Keras and Lightning run as child processes).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lightning_mnist import compare
from lightning_mnist.bench import render_markdown as bench_markdown
from lightning_mnist.bench import train_flops_per_sample
from lightning_mnist.compare import main
from lightning_mnist.report import HEADER, epoch_stats

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_results(framework: str, seed: int, test_accuracy: float, epochs: int = 4) -> dict:
    """A results.json dict in the shared schema, with made-up but plausible numbers."""
    val_loss = [0.20 - 0.03 * e for e in range(epochs)]
    val_loss[-1] = val_loss[-2] + 0.01  # best epoch = epochs - 1
    return {
        "framework": framework,
        "dataset": "mnist",
        "seed": seed,
        "epochs_run": epochs,
        "best_epoch": epochs - 1,
        "history": {
            "loss": [0.5 - 0.05 * e for e in range(epochs)],
            "accuracy": [0.85 + 0.02 * e for e in range(epochs)],
            "val_loss": val_loss,
            "val_accuracy": [0.94 + 0.01 * e for e in range(epochs)],
        },
        "epoch_seconds": [9.0] + [3.0 + 0.1 * e for e in range(epochs - 1)],
        "fit_seconds": 20.0,
        "test_loss": 0.06,
        "test_accuracy": test_accuracy,
        "test_samples": 10000,
        "params": 173738,
        "best_model": "best_model.h5",
        "device": "cpu (fake)",
        "versions": {"python": "3.x"},
    }


def write_fake_runs(out: Path, runs: list[dict]) -> None:
    """Lay out run folders as mnist-compare does: Keras's flat, Lightning's under version_0."""
    for r in runs:
        sub = f"{r['framework']}-seed{r['seed']}"
        folder = out / "runs" / sub / ("version_0" if r["framework"] == "lightning" else "")
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(r))


def test_report_only_builds_report_from_saved_results(tmp_path, capsys):
    out = tmp_path / "cmp"
    write_fake_runs(out, [fake_results("keras", 0, 0.9800), fake_results("lightning", 0, 0.9812)])
    assert main(["--report-only", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [(r["framework"], r["seed"]) for r in report["rows"]] == [("keras", 0), ("lightning", 0)]
    row = report["rows"][0]
    # val metrics are the best epoch's (3 of 4), s/epoch the median after the first epoch.
    assert row["best_epoch"] == 3 and row["val_accuracy"] == pytest.approx(0.96)
    assert row["s_per_epoch"] == pytest.approx(3.1)
    assert report["summary"]["test_accuracy_diff_pp"] == pytest.approx(0.12)
    md = (out / "report.md").read_text()
    assert HEADER.splitlines()[0] in md
    assert "| Keras | 0 | 4 | 3 | 96.00% |" in md and "| Lightning | 0 |" in md
    assert "+0.12 percentage points" in md
    for name in ("compare_accuracy.png", "compare_loss.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    assert "Lightning - Keras +0.12 pp" in capsys.readouterr().out


def test_report_mean_and_sample_std_over_seeds(tmp_path):
    accs = {0: 0.980, 1: 0.982, 2: 0.984}
    runs = [fake_results(fw, s, a) for s, a in accs.items() for fw in ("keras", "lightning")]
    write_fake_runs(tmp_path, runs)
    assert main(["--report-only", "--out", str(tmp_path)]) == 0
    per = json.loads((tmp_path / "report.json").read_text())["summary"]["frameworks"]
    assert per["keras"]["runs"] == 3
    assert per["keras"]["test_accuracy"]["mean"] == pytest.approx(0.982)
    assert per["keras"]["test_accuracy"]["std"] == pytest.approx(0.002)  # n - 1
    assert "98.20 ± 0.20%" in (tmp_path / "report.md").read_text()


def test_runs_keras_then_lightning_per_seed(tmp_path, monkeypatch):
    calls = []

    def fake_run(framework):
        def run(run_dir, data_dir, seed, epochs, patience, quiet, config=None, extra=()):
            calls.append((framework, seed, epochs, patience))
            write_fake_runs(run_dir.parents[1], [fake_results(framework, seed, 0.98)])
            return fake_results(framework, seed, 0.98)

        return run

    monkeypatch.setattr(compare, "check_data", lambda data_dir, create=False: None)
    monkeypatch.setattr(compare, "run_keras", fake_run("keras"))
    monkeypatch.setattr(compare, "run_lightning", fake_run("lightning"))
    out = tmp_path / "new" / "cmp"
    args = ["--seeds-list", "3", "1", "--epochs", "7", "--patience", "4", "--out", str(out)]
    assert main(args) == 0
    assert calls == [(fw, s, 7, 4) for s in (1, 3) for fw in ("keras", "lightning")]
    assert json.loads((out / "settings.json").read_text())["seeds"] == [1, 3]
    assert len(json.loads((out / "report.json").read_text())["rows"]) == 4


def test_existing_out_is_refused_and_left_untouched(tmp_path, capsys):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["--out", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists" in err and "cmp-2" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_resume_keeps_finished_runs_and_checks_settings(tmp_path, capsys):
    out = tmp_path / "cmp"
    write_fake_runs(out, [fake_results("keras", 0, 0.98), fake_results("lightning", 0, 0.981)])
    settings = {"seeds": [0], "epochs": 3, "patience": 2, "frameworks": ["keras", "lightning"]}
    settings["dataset"] = "mnist"
    (out / "settings.json").write_text(json.dumps({**settings, "command": "first"}))
    args = ["--resume", "--out", str(out), "--seeds", "1", "--patience", "2"]
    # Every run is finished, so nothing trains (and no data dir is needed).
    assert main([*args, "--epochs", "3", "--data-dir", str(tmp_path / "none")]) == 0
    assert capsys.readouterr().out.count("already finished") == 2
    assert "Command: `first`" in (out / "report.md").read_text()  # the settings it started with
    assert main([*args, "--epochs", "5"]) == 2
    assert "was started with epochs=3" in capsys.readouterr().err


def test_report_only_needs_runs(tmp_path, capsys):
    assert main(["--report-only", "--out", str(tmp_path / "none")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["--report-only", "--out", str(tmp_path / "empty")]) == 2
    assert "run mnist-compare first" in capsys.readouterr().err
    (tmp_path / "empty" / "runs" / "x").mkdir(parents=True)
    (tmp_path / "empty" / "runs" / "x" / "results.json").write_text("{truncated")
    assert main(["--report-only", "--out", str(tmp_path / "empty")]) == 2
    assert "is not a readable results.json" in capsys.readouterr().err


def test_epoch_stats_skip_the_first_epoch():
    assert epoch_stats([10.0, 3.0, 2.0, 4.0]) == {
        "median": 3.0,
        "min": 2.0,
        "max": 4.0,
        "epochs_timed": 3,
    }
    assert epoch_stats([5.0])["median"] == 5.0
    assert math.isnan(epoch_stats([])["median"])


def test_bench_floor_and_table():
    # About 1.8 MFLOP per training sample, about 87 GFLOP per 48,000-image epoch.
    assert train_flops_per_sample() == pytest.approx(1.8e6, rel=0.02)
    assert 48_000 * train_flops_per_sample() == pytest.approx(87e9, rel=0.01)
    stats = {"median": 2.0, "min": 1.9, "max": 2.2, "samples_per_s": 24_000, "floor_share": 0.3}
    report = {
        "epochs": 5,
        "train_samples": 48_000,
        "val_samples": 12_000,
        "train_flops_per_sample": train_flops_per_sample(),
        "val_flops_per_sample": 736_128,
        "epoch_train_gflop": 87.3,
        "probe": {"device": "cpu", "size": 2048, "gflops": 100.0},
        "epoch_floor_s": 0.873,
        "frameworks": {"keras": {**stats, "median": 3.0}, "lightning": stats, "torch": stats},
        "ratio_lightning_keras": 2 / 3,
        "lightning_overhead_pct": 0.0,
        "machine": {
            "cpu_count": 2,
            "processor": "x",
            "loadavg_before": [0.1],
            "loadavg_after": [0.2],
        },
        "command": "python -m lightning_mnist.bench",
    }
    md = bench_markdown(report)
    assert "| Lightning, stock ops | 2.000 | 1.900 | 2.200 | 24,000 | 0.67 | 30.0% |" in md
    assert "Lightning stock / Keras 0.67" in md and "stock +0.0%" in md
    assert "Lightning fused / Keras –" in md  # rows not run show a dash, not a number


@pytest.mark.keras
@pytest.mark.real_data
@pytest.mark.slow
def test_compare_short_form(data_dir, tmp_path, capsys):
    """The short form run in CI: 3 epochs each, one seed; both >= 96% and within 1 point."""
    out = tmp_path / "cmp"
    args = ["--seeds", "1", "--epochs", "3", "--data-dir", str(data_dir), "--out", str(out)]
    assert main([*args, "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    acc = {r["framework"]: r["test_accuracy"] for r in report["rows"]}
    print(f"short comparison: {acc}, {report['summary']['test_accuracy_diff_pp']:+.2f} pp")
    assert set(acc) == {"keras", "lightning"}
    assert all(r["epochs_run"] <= 3 and r["test_loss"] > 0 for r in report["rows"])
    # After 3 epochs both reach 96%, and seed-to-seed noise of a 3-epoch run stays
    # well inside 1 point (the tutorial's 5 Keras seeds spread 0.09 points at convergence).
    assert min(acc.values()) >= 0.96
    assert abs(acc["lightning"] - acc["keras"]) <= 0.01
    md = (out / "report.md").read_text()
    assert HEADER.splitlines()[0] in md and "| Keras | 0 |" in md and "| Lightning | 0 |" in md
    for name in ("report.json", "settings.json", "compare_accuracy.png", "compare_loss.png"):
        assert (out / name).is_file()
    assert (out / "runs" / "keras-seed0" / "best_model.h5").is_file()
    # Nothing is overwritten: the same --out is refused, and --report-only rebuilds the same table.
    assert main(args) == 2
    assert main(["--report-only", "--out", str(out)]) == 0
    assert (out / "report.md").read_text() == md


def test_keras_runs_without_keras_installed_say_what_to_install(tmp_path, monkeypatch, capsys):
    real = compare.importlib.util.find_spec
    monkeypatch.setattr(
        compare.importlib.util, "find_spec", lambda name: None if name == "keras" else real(name)
    )
    assert main(["--out", str(tmp_path / "cmp"), "--seeds", "1", "--epochs", "1"]) == 2
    assert "lightning-mnist[keras]" in capsys.readouterr().err
    assert not (tmp_path / "cmp").exists()
