"""``mnist-compare`` without training: the report from saved runs, the run order, options,
and the folder policy. Fake runs are laid out as mnist-compare lays out real ones."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from lightning_mnist.compare import cli as compare
from lightning_mnist.compare import runners
from lightning_mnist.compare.bench import render_markdown as bench_markdown
from lightning_mnist.compare.cli import main
from lightning_mnist.compare.plain_loop import train_flops_per_sample
from lightning_mnist.compare.plots import PLOTS
from lightning_mnist.compare.report import epoch_stats
from lightning_mnist.compare.stats import welch_interval

TABLE_HEAD = "| framework | seed | epochs run | best epoch | val acc | val loss | test acc |"
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


LABELS = np.arange(20) % 10


def fake_measured(results: dict, predicted: np.ndarray, launched_at: float = 1000.0) -> dict:
    """The fields a finished run adds besides accuracy: predictions, timing, latency, memory."""
    results = dict(results, test_samples=len(predicted), test_predictions="test_predictions.csv")
    results["_predicted"] = predicted
    results["timing"] = {
        "data_started_at": launched_at + 4.0,  # 4 s of start-up
        "data": 1.0,
        "train": 10.0,
        "validation": 2.0,
        "checkpoint": 0.5,
        "fit_other": 0.5,
        "test": 1.0,
    }
    results["_process"] = {"launched_at": launched_at, "process_seconds": 21.0}  # 2 s after
    results["inference_ms"] = {"1": 0.5, "256": 6.0}
    results["peak_rss_mb"] = 900.0
    results["environment"] = {
        "cpu_model": "Fake CPU",
        "logical_cpus": 2,
        "threads": {"intra_op": 2},
    }
    return results


def write_fake_runs(out: Path, runs: list[dict]) -> None:
    """Lay out run folders as mnist-compare does: Keras's flat, Lightning's under version_0,
    process.json in the seed folder, test_predictions.csv beside results.json."""
    for r in runs:
        r = dict(r)
        seed_dir = out / "runs" / f"{r['framework']}-seed{r['seed']}"
        folder = seed_dir / ("version_0" if r["framework"] == "lightning" else "")
        folder.mkdir(parents=True)
        predicted, process = r.pop("_predicted", None), r.pop("_process", None)
        if predicted is not None:
            rows = np.stack([LABELS[: len(predicted)], predicted], axis=1)
            np.savetxt(
                folder / "test_predictions.csv",
                rows,
                fmt="%d",
                delimiter=",",
                header="label,predicted",
                comments="",
            )
        if process is not None:
            (seed_dir / "process.json").write_text(json.dumps(process))
        (folder / "results.json").write_text(json.dumps(r))


def test_report_only_builds_report_from_saved_results(tmp_path, capsys):
    out = tmp_path / "cmp"
    write_fake_runs(out, [fake_results("keras", 0, 0.9800), fake_results("lightning", 0, 0.9812)])
    assert main(["--report_only", "true", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [(r["framework"], r["seed"]) for r in report["rows"]] == [("keras", 0), ("lightning", 0)]
    row = report["rows"][0]
    # val metrics are the best epoch's (3 of 4), s/epoch the median after the first epoch.
    assert row["best_epoch"] == 3 and row["val_accuracy"] == pytest.approx(0.96)
    assert row["s_per_epoch"] == pytest.approx(3.1)
    assert report["summary"]["test_accuracy_diff_pp"] == pytest.approx(0.12)
    md = (out / "report.md").read_text()
    assert TABLE_HEAD in md
    assert "| Keras | 0 | 4 | 3 | 96.00% |" in md and "| Lightning | 0 |" in md
    assert "+0.12 percentage points" in md
    for name in ("compare_accuracy.png", "compare_loss.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    assert "Lightning - Keras +0.12 pp" in capsys.readouterr().out


def test_report_mean_and_sample_std_over_seeds(tmp_path):
    accs = {0: 0.980, 1: 0.982, 2: 0.984}
    runs = [fake_results(fw, s, a) for s, a in accs.items() for fw in ("keras", "lightning")]
    write_fake_runs(tmp_path, runs)
    assert main(["--report_only", "true", "--out", str(tmp_path)]) == 0
    per = json.loads((tmp_path / "report.json").read_text())["summary"]["frameworks"]
    assert per["keras"]["runs"] == 3
    assert per["keras"]["test_accuracy"]["mean"] == pytest.approx(0.982)
    assert per["keras"]["test_accuracy"]["std"] == pytest.approx(0.002)  # n - 1
    assert "98.20 ± 0.20%" in (tmp_path / "report.md").read_text()


def test_runs_keras_then_lightning_per_seed(tmp_path, monkeypatch):
    calls, places = [], []

    def fake_run(framework):
        def run(run_dir, data_dir, seed, epochs, patience, quiet, config=None, extra=(), **where):
            calls.append((framework, seed, epochs, patience))
            places.append(where)
            write_fake_runs(run_dir.parents[1], [fake_results(framework, seed, 0.98)])
            return fake_results(framework, seed, 0.98)

        return run

    monkeypatch.setattr(runners, "check_data", lambda data_dir, dataset, create=False: None)
    monkeypatch.setattr(runners, "run_keras", fake_run("keras"))
    monkeypatch.setattr(runners, "run_lightning", fake_run("lightning"))
    out = tmp_path / "new" / "cmp"
    args = [
        "--seeds_list",
        "[3,1]",
        "--trainer.max_epochs",
        "7",
        "--early_stopping.patience",
        "4",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert calls == [(fw, s, 7, 4) for s in (1, 3) for fw in ("keras", "lightning")]
    assert places == [{"dataset": "mnist", "accelerator": "cpu"}] * 4
    settings = json.loads((out / "settings.json").read_text())
    assert settings["seeds"] == [1, 3] and settings["target_accuracy"] == 0.98
    assert "loadavg_end" in settings
    assert len(json.loads((out / "report.json").read_text())["rows"]) == 4


def test_existing_out_is_refused_and_left_untouched(tmp_path, capsys):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["--out", str(out), "--trainer.max_epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists" in err and "cmp-2" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_resume_keeps_finished_runs_and_checks_settings(tmp_path, capsys):
    out = tmp_path / "cmp"
    write_fake_runs(out, [fake_results("keras", 0, 0.98), fake_results("lightning", 0, 0.981)])
    settings = {"seeds": [0], "epochs": 3, "patience": 2, "frameworks": ["keras", "lightning"]}
    settings["dataset"] = "mnist"
    (out / "settings.json").write_text(json.dumps({**settings, "command": "first"}))
    args = ["--resume", "true", "--out", str(out), "--seeds", "1", "--early_stopping.patience", "2"]
    # Every run is finished, so nothing trains (and no data dir is needed).
    assert (
        main([*args, "--trainer.max_epochs", "3", "--data.data_dir", str(tmp_path / "none")]) == 0
    )
    assert capsys.readouterr().out.count("already finished") == 2
    assert "Command: `first`" in (out / "report.md").read_text()  # the settings it started with
    assert main([*args, "--trainer.max_epochs", "5"]) == 2
    assert "was started with epochs=3" in capsys.readouterr().err


def test_report_only_needs_runs(tmp_path, capsys):
    assert main(["--report_only", "true", "--out", str(tmp_path / "none")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["--report_only", "true", "--out", str(tmp_path / "empty")]) == 2
    assert "run mnist-compare first" in capsys.readouterr().err
    (tmp_path / "empty" / "runs" / "x").mkdir(parents=True)
    (tmp_path / "empty" / "runs" / "x" / "results.json").write_text("{truncated")
    assert main(["--report_only", "true", "--out", str(tmp_path / "empty")]) == 2
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
        "command": "mnist-bench",
    }
    md = bench_markdown(report)
    assert "| Lightning, stock ops | 2.000 | 1.900 | 2.200 | 24,000 | 0.67 | 30.0% |" in md
    assert "Lightning stock / Keras 0.67" in md and "stock +0.0%" in md
    assert "Lightning fused / Keras –" in md  # rows not run show a dash, not a number


def test_keras_runs_without_keras_installed_say_what_to_install(tmp_path, monkeypatch, capsys):
    real = compare.importlib.util.find_spec
    monkeypatch.setattr(
        compare.importlib.util, "find_spec", lambda name: None if name == "keras" else real(name)
    )
    assert main(["--out", str(tmp_path / "cmp"), "--seeds", "1", "--trainer.max_epochs", "1"]) == 2
    assert "lightning-mnist[keras]" in capsys.readouterr().err
    assert not (tmp_path / "cmp").exists()


def three_seeds_with_predictions() -> list[dict]:
    """Keras misreads image 0 as a 1 in every seed; Lightning does too, and image 5 as a 6."""
    keras_pred, lightning_pred = LABELS.copy(), LABELS.copy()
    keras_pred[0] = lightning_pred[0] = 1
    lightning_pred[5] = 6
    accs = {"keras": (0.980, 0.982, 0.981), "lightning": (0.983, 0.981, 0.985)}
    preds = {"keras": keras_pred, "lightning": lightning_pred}
    return [
        fake_measured(fake_results(fw, s, accs[fw][s]), preds[fw], launched_at=1000.0 + s)
        for s in range(3)
        for fw in ("keras", "lightning")
    ]


def test_report_has_every_section_from_saved_runs(tmp_path):
    write_fake_runs(tmp_path, three_seeds_with_predictions())
    (tmp_path / "settings.json").write_text(
        json.dumps({"seeds": [0, 1, 2], "target_accuracy": 0.96})
    )
    assert main(["--report_only", "true", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())

    # 1. The interval is Welch's on the accuracies in percentage points.
    w = welch_interval([98.0, 98.2, 98.1], [98.3, 98.1, 98.5])
    ci = report["accuracy_interval"]
    assert (ci["diff"], ci["low"], ci["high"]) == pytest.approx((w["diff"], w["low"], w["high"]))
    assert ci["diff"] == pytest.approx(0.2) and ci["low"] < 0 < ci["high"]
    assert ci["text"].startswith("No detectable difference")

    # 2. Agreement per seed, counted by hand from the predictions above.
    assert [a["seed"] for a in report["agreement"]] == [0, 1, 2]
    a = report["agreement"][0]
    assert (a["same_prediction"], a["images"], a["share"]) == (19, 20, 0.95)
    assert (a["both_wrong"], a["both_wrong_same_class"]) == (1, 1)
    assert (a["keras_only_wrong"], a["lightning_only_wrong"]) == (0, 1)
    assert report["agreement_within"]["keras"] == {"pairs": 2, "share_mean": 1.0}

    # 3. Confusion matrices summed over the 3 seeds; per-class accuracy.
    k, lt = report["per_class"]["keras"], report["per_class"]["lightning"]
    assert k["confusion"][0][1] == 3 and k["confusion"][0][0] == 3  # label 0: images 0 and 10
    assert lt["confusion"][5][6] == 3 and sum(map(sum, lt["confusion"])) == 60
    assert k["class_accuracy_mean"][0] == pytest.approx(0.5) and lt["class_accuracy_mean"][5] == 0.5

    # 4. Time: 96% val accuracy at epoch 3 (9 + 3.0 + 3.1 s); the breakdown of seed 0.
    t = report["time"]["keras"]
    assert t["to_target_reached"] == 3 and t["to_target_mean_s"] == pytest.approx(15.1)
    b = t["breakdown"]
    assert b["startup"] == pytest.approx(4.0) and b["after"] == pytest.approx(2.0)
    assert sum(b.values()) == pytest.approx(21.0)  # the whole process
    assert t["inference_ms"] == {"1": 0.5, "256": 6.0} and t["peak_rss_mb"] == 900.0

    # 5. The report in order, with every picture.
    md = (tmp_path / "report.md").read_text()
    heads = [
        "## 1. Accuracy",
        "## 2. Agreement",
        "## 3. Per class",
        "## 4. Time",
        "## 5. Environment",
    ]
    assert [md.index(h) for h in heads] == sorted(md.index(h) for h in heads)
    assert "| 0 | 19 / 20 | 95.00% | 1 (1) | 0 | 1 |" in md
    assert "CPU Fake CPU" in md and "| start-up (interpreter, imports, model) | 4.0 | 4.0 |" in md
    for name in PLOTS.values():
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC and f"({name})" in md
    # The report rebuilds to the same text, and report.json holds no per-image arrays.
    assert main(["--report_only", "true", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.md").read_text() == md
    assert all("predictions" not in r for r in report["runs"])


def test_report_refuses_runs_tested_on_different_images(tmp_path, capsys):
    runs = three_seeds_with_predictions()[:2]
    runs[1]["_predicted"] = LABELS[:10]  # 10 images instead of 20
    runs[1]["test_samples"] = 10
    write_fake_runs(tmp_path, runs)
    assert main(["--report_only", "true", "--out", str(tmp_path)]) == 2
    assert "tested on different images" in capsys.readouterr().err


def test_dataset_and_accelerator_reach_both_children(tmp_path, monkeypatch):
    cmds = []

    def fake_stream(cmd, prefix, log, quiet=False, accelerator="cpu"):
        cmds.append((cmd, accelerator))
        framework = "keras" if "keras_reference" in cmd else "lightning"
        write_fake_runs(log.parents[2], [fake_results(framework, 0, 0.9)])
        return []

    monkeypatch.setattr(runners, "check_data", lambda data_dir, dataset, create=False: None)
    monkeypatch.setattr(runners, "check_gpu", lambda frameworks: None)
    monkeypatch.setattr(runners, "stream", fake_stream)
    out = tmp_path / "cmp"
    args = ["--seeds", "1", "--data.dataset", "fashion_mnist", "--trainer.accelerator", "gpu"]
    assert main([*args, "--out", str(out), "--lightning_args", "--model.conv_pool fused"]) == 0
    (keras, k_acc), (lightning, l_acc) = cmds
    assert k_acc == l_acc == "gpu"
    assert keras[keras.index("--data.dataset") + 1] == "fashion_mnist"
    assert lightning[lightning.index("--data.dataset") + 1] == "fashion_mnist"
    assert lightning[lightning.index("--trainer.accelerator") + 1] == "gpu"
    assert lightning[-2:] == ["--model.conv_pool", "fused"]  # passed through, last so it wins
    callback = next(a.split("=", 1)[1] for a in lightning if a.startswith("--trainer.callbacks+="))
    module, name = callback.rsplit(".", 1)
    assert hasattr(__import__(module, fromlist=[name]), name)  # the per-epoch line exists
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["dataset"], settings["target_accuracy"]) == ("fashion_mnist", 0.90)


def test_cpu_comparison_hides_the_gpus_from_the_children(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert runners.child_env("cpu")["CUDA_VISIBLE_DEVICES"] == ""
    assert runners.child_env("gpu")["CUDA_VISIBLE_DEVICES"] == "0"


def test_gpu_comparison_without_a_gpu_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runners, "check_data", lambda data_dir, dataset, create=False: None)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    out = tmp_path / "cmp"
    args = ["--trainer.accelerator", "gpu", "--frameworks", "[lightning]", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "torch sees no GPU" in err
    assert not out.exists()


def test_stream_records_the_child_process(tmp_path):
    log = tmp_path / "run" / "run.log"
    lines = runners.stream([sys.executable, "-c", "print('hi')"], "", log, quiet=True)
    assert lines == ["hi"] and log.read_text().endswith("hi\n")
    process = json.loads((tmp_path / "run" / "process.json").read_text())
    assert process["launched_at"] > 1.6e9 and 0 < process["process_seconds"] < 60


def test_children_do_not_import_from_the_working_directory(tmp_path, monkeypatch):
    # A yaml.py in the cwd that leaves a marker when imported; presets.py imports yaml.
    (tmp_path / "yaml.py").write_text("open('imported', 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    lines = runners.stream([*runners.PYTHON, "-m", "lightning_mnist.presets"], "", tmp_path / "log")
    assert lines == [] and not (tmp_path / "imported").exists()
    # The check is real: a plain `python -m` puts the cwd first and imports it.
    runners.stream([sys.executable, "-m", "lightning_mnist.presets"], "", tmp_path / "log2")
    assert (tmp_path / "imported").exists()
