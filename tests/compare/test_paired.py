"""``mnist-compare --paired``: the options that reach each framework's run, and the paired
report (differences, interval, McNemar per seed, TOST, seeds needed) from saved runs."""

from __future__ import annotations

import json

import pytest

from lightning_mnist.compare.cli import main
from lightning_mnist.compare.plots import PAIRED_PLOT
from lightning_mnist.compare.stats import paired_interval, seeds_needed, tost

from .fakes import (
    PNG_MAGIC,
    fake_results,
    fake_runners,
    three_seeds_with_predictions,
    write_fake_runs,
)


def _strict(text: str) -> dict:
    """Parse JSON, refusing NaN and Infinity (Python's json accepts them by default)."""

    def refuse(name: str) -> None:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_paired_options_reach_both_frameworks(tmp_path, monkeypatch):
    calls = fake_runners(monkeypatch)
    out = tmp_path / "cmp"
    assert main(["--paired", "true", "--seeds", "2", "--out", str(out)]) == 0
    keras = [c["extra"] for c in calls if c["framework"] == "keras"]
    lightning = {c["seed"]: c["extra"] for c in calls if c["framework"] == "lightning"}
    assert (
        keras
        == [("--preset", "tutorial", "--shuffle", "seeded", "--save_initial_weights", "true")] * 2
    )
    # Each seed's Lightning run starts from that seed's Keras run's initial weights.
    for seed in (0, 1):
        start = out / "runs" / f"keras-seed{seed}" / "initial.weights.h5"
        assert lightning[seed] == ("--init_weights", str(start))
    assert json.loads((out / "settings.json").read_text())["paired"] is True


def test_unpaired_stays_the_default(tmp_path, monkeypatch):
    calls = fake_runners(monkeypatch)
    assert main(["--seeds", "1", "--out", str(tmp_path / "cmp")]) == 0
    assert [c["extra"] for c in calls] == [("--preset", "tutorial"), ()]
    assert json.loads((tmp_path / "cmp" / "settings.json").read_text())["paired"] is False


@pytest.mark.parametrize(
    "args",
    [["--frameworks", "[lightning]"], ["--preset", "improved"]],
)
def test_paired_needs_both_frameworks_and_the_tutorial(tmp_path, capsys, args):
    assert main(["--paired", "true", "--out", str(tmp_path / "cmp"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "--paired needs both frameworks and the tutorial preset" in err and "\n" not in err
    assert not (tmp_path / "cmp").exists()


@pytest.fixture
def paired_folder(tmp_path):
    """Three seeds of both frameworks, with predictions, marked as a paired comparison."""
    write_fake_runs(tmp_path, three_seeds_with_predictions())
    settings = {"seeds": [0, 1, 2], "target_accuracy": 0.96, "paired": True}
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    return tmp_path


def test_paired_report_from_saved_runs(paired_folder):
    assert main(["--report_only", "true", "--out", str(paired_folder)]) == 0
    report = _strict((paired_folder / "report.json").read_text())
    p = report["paired"]
    # Keras 98.0, 98.2, 98.1 and Lightning 98.3, 98.1, 98.5 (fakes.py): differences in pp.
    assert [s["diff"] for s in p["seeds"]] == pytest.approx([0.3, -0.1, 0.4])
    w = paired_interval([98.0, 98.2, 98.1], [98.3, 98.1, 98.5])
    assert (p["interval"]["low"], p["interval"]["high"]) == pytest.approx((w["low"], w["high"]))
    assert p["tost"] == pytest.approx(tost(w["diff"], w["se"], w["df"], 0.2))
    assert p["tost"]["equivalent"] is False
    assert p["seeds_needed"] == seeds_needed(w["sd"] ** 2, 0.2, paired=True)
    # McNemar per seed: only image 5 differs, which Keras gets right and Lightning wrong.
    assert [(m["seed"], m["only_a_right"], m["only_b_right"]) for m in p["mcnemar"]] == [
        (0, 1, 0),
        (1, 1, 0),
        (2, 1, 0),
    ]
    assert p["mcnemar"][0]["p_exact"] == pytest.approx(1.0)  # 1 of 1 discordant: 2 * 1/2
    md = (paired_folder / "report.md").read_text()
    assert "### Paired runs: same start, same batch order" in md
    assert "Equivalence within ±0.2 pp: not shown equivalent" in md
    assert "| 0 | 98.00% | 98.30% | +0.30 pp | 1 | 0 | 1.000 | 1.000 |" in md
    assert f"{p['seeds_needed']} seed pairs" in md
    assert (paired_folder / PAIRED_PLOT).read_bytes()[:8] == PNG_MAGIC
    assert f"![paired]({PAIRED_PLOT})" in md


def test_margin_reaches_the_report(paired_folder):
    assert main(["--report_only", "true", "--out", str(paired_folder), "--margin_pp", "1"]) == 0
    report = _strict((paired_folder / "report.json").read_text())
    assert report["paired"]["tost"]["margin"] == 1.0
    assert report["paired"]["tost"]["equivalent"] is True  # 90% CI within ±1 pp
    assert report["accuracy_interval"]["margin"] == 1.0
    assert "Equivalence within ±1 pp: equivalent" in (paired_folder / "report.md").read_text()


def test_unpaired_report_gains_seeds_needed_and_no_paired_section(tmp_path):
    write_fake_runs(tmp_path, three_seeds_with_predictions())
    assert main(["--report_only", "true", "--out", str(tmp_path)]) == 0
    report = _strict((tmp_path / "report.json").read_text())
    assert report["paired"] is None
    ci = report["accuracy_interval"]
    # Keras sd 0.1 pp, Lightning sd 0.2 pp: the variances add.
    assert ci["seeds_needed"] == seeds_needed(0.1**2 + 0.2**2, 0.2, paired=False)
    md = (tmp_path / "report.md").read_text()
    assert f"{ci['seeds_needed']} runs per framework" in md and "### Paired" not in md
    assert not (tmp_path / PAIRED_PLOT).exists()


def test_report_json_is_strict_without_spread(tmp_path):
    # Equal accuracies within each framework: Welch's df is infinite, written as null.
    runs = [fake_results(fw, s, 0.98) for s in range(2) for fw in ("keras", "lightning")]
    write_fake_runs(tmp_path, runs)
    assert main(["--report_only", "true", "--out", str(tmp_path)]) == 0
    report = _strict((tmp_path / "report.json").read_text())
    assert report["accuracy_interval"]["df"] is None
