"""``mnist-compare``'s report from saved runs (``--report_only``): the tables, the sections,
the pictures and the refusals; and the benchmark's table. Nothing trains."""

from __future__ import annotations

import json
import math

import pytest

from lightning_mnist.atomic import json_text
from lightning_mnist.compare import bench
from lightning_mnist.compare.bench import row_result
from lightning_mnist.compare.bench_table import render_markdown as bench_markdown
from lightning_mnist.compare.cli import main
from lightning_mnist.compare.md_table import md_table
from lightning_mnist.compare.plain_loop import train_flops_per_sample
from lightning_mnist.compare.plots import PLOTS
from lightning_mnist.compare.report import epoch_stats
from lightning_mnist.compare.stats import welch_interval

from .fakes import (
    LABELS,
    PNG_MAGIC,
    TABLE_HEAD,
    fake_results,
    three_seeds_with_predictions,
    write_fake_runs,
)


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


def test_report_only_needs_runs(tmp_path, capsys):
    assert main(["--report_only", "true", "--out", str(tmp_path / "none")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["--report_only", "true", "--out", str(tmp_path / "empty")]) == 2
    assert "run mnist-compare first" in capsys.readouterr().err
    (tmp_path / "empty" / "runs" / "x").mkdir(parents=True)
    (tmp_path / "empty" / "runs" / "x" / "results.json").write_text("{truncated")
    assert main(["--report_only", "true", "--out", str(tmp_path / "empty")]) == 2
    assert "is not a readable results.json" in capsys.readouterr().err
    # A Lightning run with validation off (limit_val_batches 0) records no best epoch.
    unvalidated = fake_results("lightning", 0, 0.98) | {"best_epoch": None}
    (tmp_path / "empty" / "runs" / "x" / "results.json").write_text(json.dumps(unvalidated))
    assert main(["--report_only", "true", "--out", str(tmp_path / "empty")]) == 2
    assert "has no validated epoch" in capsys.readouterr().err


def test_epoch_stats_skip_the_first_epoch():
    assert epoch_stats([10.0, 3.0, 2.0, 4.0]) == {
        "median": 3.0,
        "min": 2.0,
        "max": 4.0,
        "epochs_timed": 3,
    }
    assert epoch_stats([5.0])["median"] == 5.0
    assert math.isnan(epoch_stats([])["median"])


@pytest.fixture
def every_section(tmp_path):
    """A report folder with three seeds of both frameworks, predictions and timings."""
    write_fake_runs(tmp_path, three_seeds_with_predictions())
    settings = {"seeds": [0, 1, 2], "target_accuracy": 0.96}
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    assert main(["--report_only", "true", "--out", str(tmp_path)]) == 0
    return tmp_path


def test_report_sections_from_saved_runs(every_section):
    report = json.loads((every_section / "report.json").read_text())

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
    # report.json holds no per-image arrays.
    assert all("predictions" not in r for r in report["runs"])


def test_report_md_has_every_section_in_order_and_rebuilds_the_same(every_section):
    md = (every_section / "report.md").read_text()
    heads = ["## 1. Accuracy", "## 2. Agreement", "## 3. Per class", "## 4. Time"]
    heads.append("## 5. Environment")
    assert [md.index(h) for h in heads] == sorted(md.index(h) for h in heads)
    assert "| 0 | 19 / 20 | 95.00% | 1 (1) | 0 | 1 |" in md
    assert "CPU Fake CPU" in md and "| start-up (interpreter, imports, model) | 4.0 | 4.0 |" in md
    for name in PLOTS.values():
        assert (every_section / name).read_bytes()[:8] == PNG_MAGIC and f"({name})" in md
    assert main(["--report_only", "true", "--out", str(every_section)]) == 0
    assert (every_section / "report.md").read_text() == md


def test_report_refuses_runs_tested_on_different_images(tmp_path, capsys):
    runs = three_seeds_with_predictions()[:2]
    runs[1]["_predicted"] = LABELS[:10]  # 10 images instead of 20
    runs[1]["test_samples"] = 10
    write_fake_runs(tmp_path, runs)
    assert main(["--report_only", "true", "--out", str(tmp_path)]) == 2
    assert "tested on different images" in capsys.readouterr().err


def test_bench_floor_and_table():
    # About 1.8 MFLOP per training sample, about 87 GFLOP per 48,000-image epoch.
    assert train_flops_per_sample() == pytest.approx(1.8e6, rel=0.02)
    assert 48_000 * train_flops_per_sample() == pytest.approx(87e9, rel=0.01)
    floor = 0.6
    # Two turns of 3 epochs each: a turn's figure is the median of its epochs after the first.
    lightning = row_result([[9.0, 2.0, 2.2], [9.0, 1.8, 2.0]], floor)
    keras = row_result([[9.0, 3.0, 3.0], [9.0, 3.2, 3.2]], floor)
    assert lightning["turn_medians"] == pytest.approx([2.1, 1.9])
    assert (lightning["median"], lightning["min"], lightning["max"]) == pytest.approx(
        (2.0, 1.9, 2.1)
    )
    assert lightning["samples_per_s"] == pytest.approx(24_000)
    results = {"keras": keras, "lightning": lightning}
    report = {
        "epochs": 3,
        "repeats": 2,
        "tune_malloc": True,
        "train_samples": 48_000,
        "val_samples": 12_000,
        "train_flops_per_sample": train_flops_per_sample(),
        "val_flops_per_sample": 736_128,
        "epoch_train_gflop": 87.3,
        "probe": {"device": "cpu", "size": 2048, "gflops": 100.0},
        "epoch_floor_s": floor,
        "frameworks": results,
        "ratios": bench._ratios(results),
        "step_probe": {
            "steps": 600, "batch": 64, "threads": 1, "warmup": 50,
            "ms_per_step": {"plain_loop": [0.5, 0.6], "minimal_module": [1.0, 1.1],
                            "project_system": [1.2, 1.1]},
            "median_ms": {"plain_loop": 0.55, "minimal_module": 1.05, "project_system": 1.15},
            "system_over_minimal_ms": 0.1, "minimal_over_plain_ms": 0.5,
        },
        "machine": {"cpu_count": 2, "processor": "x", "loadavg_before": [0.1],
                    "loadavg_after": [0.2]},
        "command": "mnist-bench",
    }  # fmt: skip
    md = bench_markdown(report)
    assert (
        "| Lightning, tutorial preset (stock ops) | 2.000 | 1.900 | 2.100 | 24,000 | 0.65 | 30.0% |"
        in md
    )
    assert "Lightning / Keras 0.65" in md
    assert "Lightning fast-cpu / Keras –" in md  # rows not run show a dash, not a number
    assert "| the project's MNISTClassifier | 1.150 | 1.200, 1.100 |" in md
    assert "+0.100 ms a step over the minimal LightningModule" in md
    json_text(report)  # strict JSON: raises on NaN


def test_a_one_framework_report_numbers_its_sections_and_names_only_it(tmp_path):
    runs = [r for r in three_seeds_with_predictions() if r["framework"] == "lightning"]
    write_fake_runs(tmp_path, runs)
    assert main(["--report_only", "true", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    heads = [line for line in md.splitlines() if line.startswith("## ")]
    assert [h.split(".")[0] for h in heads] == [f"## {i}" for i in range(1, len(heads) + 1)]
    assert md.splitlines()[0].startswith("# Lightning: ") and "Keras vs" not in md
    assert not any("Agreement" in h for h in heads)
    assert "| class | Lightning (n=3) |\n|---:|---:|\n" in md  # rule as wide as the head


def test_a_table_row_of_another_width_is_refused():
    assert md_table(("a", "b"), [(1, 2)], all_right=True) == "| a | b |\n|---:|---:|\n| 1 | 2 |\n"
    with pytest.raises(ValueError, match="2 cells"):
        md_table(("a", "b"), [(1, 2, 3)])


def test_curves_of_one_epoch_runs_show_their_points(monkeypatch, tmp_path):
    from lightning_mnist.compare import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path, **_: figures.append(fig) or path)
    runs = [fake_results("lightning", s, 0.98, epochs=2) for s in (0, 1)]
    for r in runs:  # one epoch each, the tested one
        r.update(epochs_run=1, best_epoch=1, history={k: v[:1] for k, v in r["history"].items()})
    plots.plot_curves(runs, "accuracy", tmp_path / "a.png")
    fig = figures[0]
    assert fig._suptitle.get_text().startswith("model accuracy: Lightning (2 seeds)")
    for ax in fig.axes:
        left, right = ax.get_xlim()
        assert left < 1 < right and right - left >= 1  # the epoch sits inside, with room
        assert [t for t in ax.get_xticks() if left <= t <= right] == [1.0]
        mean = [line for line in ax.lines if line.get_linewidth() == 2]
        assert mean and mean[0].get_marker() == "o"  # one point: drawn as a dot


def test_the_report_names_the_data_folder_by_its_variable(tmp_path, monkeypatch):
    """A run that read $MNIST_DATA_DIR is recorded in report.json as ``$MNIST_DATA_DIR``, as
    settings.json names it, so a committed report holds no machine's path; another folder is
    kept as the run recorded it."""
    data = str(tmp_path / "mnist-here")
    monkeypatch.setenv("MNIST_DATA_DIR", data)
    out = tmp_path / "cmp"
    runs = [fake_results("keras", 0, 0.98), fake_results("lightning", 0, 0.98)]
    runs[0]["data_dir"], runs[1]["data_dir"] = data, "/elsewhere"
    write_fake_runs(out, runs)
    assert main(["--report_only", "true", "--out", str(out)]) == 0
    recorded = [r["data_dir"] for r in json.loads((out / "report.json").read_text())["runs"]]
    assert recorded == ["$MNIST_DATA_DIR", "/elsewhere"]
    assert data not in (out / "report.json").read_text()


@pytest.mark.parametrize("frameworks", [1, 2])
def test_the_time_legend_sits_below_the_axis_label(frameworks, monkeypatch, tmp_path):
    from lightning_mnist.compare import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path, **_: figures.append(fig) or path)
    phases = dict.fromkeys(("startup", "data", "train", "validation", "test", "after"), 2.0)
    time = {fw: {"breakdown": phases, "breakdown_seed": 0} for fw in ("keras", "lightning")}
    plots.plot_time(dict(list(time.items())[:frameworks]), tmp_path / "t.png")
    fig = figures[0]
    fig.canvas.draw()  # lays the figure out
    legend = (fig.legends or [fig.axes[0].get_legend()])[0].get_window_extent()
    assert legend.y1 <= fig.axes[0].xaxis.label.get_window_extent().y0
