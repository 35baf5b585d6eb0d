"""``mnist-compare`` for real: both frameworks in child processes, short form.

The short form runs both frameworks for 3 epochs with one seed through the real command
(``main([...])`` drives it); the report's every section and picture must come out of it.
The report logic on saved files is tested in ``tests/compare/test_report.py``.
"""

from __future__ import annotations

import json
import math

import pytest

from lightning_mnist.compare.cli import main
from lightning_mnist.compare.plots import PLOTS

TABLE_HEAD = "| framework | seed | epochs run | best epoch | val acc | val loss | test acc |"


@pytest.mark.keras
@pytest.mark.real_data
@pytest.mark.slow
def test_compare_short_form(data_dir, tmp_path, capsys):
    """The short form run in CI: 3 epochs each, one seed; both >= 96% and within 1 point."""
    out = tmp_path / "cmp"
    args = [
        "--seeds",
        "1",
        "--trainer.max_epochs",
        "3",
        "--data.data_dir",
        str(data_dir),
        "--out",
        str(out),
    ]
    assert main([*args, "--quiet", "true"]) == 0
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
    assert TABLE_HEAD in md and "| Keras | 0 |" in md and "| Lightning | 0 |" in md
    for head in ("1. Accuracy", "2. Agreement", "3. Per class", "4. Time", "5. Environment"):
        assert f"## {head}" in md
    for name in ("report.json", "settings.json", *PLOTS.values()):
        assert (out / name).is_file(), name
    assert (out / "runs" / "keras-seed0" / "best_model.h5").is_file()
    # Independently trained models agree on most images, and their errors overlap.
    (agree,) = report["agreement"]
    print(f"agreement: {agree}")
    assert agree["images"] == 10000 and agree["share"] > 0.95 and agree["both_wrong"] > 0
    errors = {fw: sum(map(sum, m["confusion"])) - sum(m["confusion"][i][i] for i in range(10))
              for fw, m in report["per_class"].items()}  # fmt: skip
    assert errors == {fw: round(10000 * (1 - a)) for fw, a in acc.items()}
    for fw, t in report["time"].items():
        b = t["breakdown"]
        # Figures that exist and are finite; how they compare is the benchmark's question.
        assert all(math.isfinite(b[k]) and b[k] > 0 for k in ("startup", "train", "after")), fw
        assert b["validation"] > 0 and t["peak_rss_mb"] > 100
        assert all(math.isfinite(v) and v > 0 for v in t["inference_ms"].values())
    assert report["environment"]["loadavg_end"] is not None
    # Nothing is overwritten: the same --out is refused, and --report_only rebuilds the same table.
    assert main(args) == 2
    assert main(["--report_only", "true", "--out", str(out)]) == 0
    assert (out / "report.md").read_text() == md
