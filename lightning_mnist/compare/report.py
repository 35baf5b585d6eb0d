"""The comparison report: the runs' saved files -> the report dict -> report.json, report.md
and the pictures (``markdown.py``, ``plots.py``).

Everything here reads saved files and never trains, so a report can be rebuilt at any time
(``mnist-compare --report_only``). A report folder holds ``runs/<framework>-seed<S>/...`` with
one results.json per run (the schema shared by lightning_mnist and keras_reference), its
``test_predictions.csv`` and the ``process.json`` that mnist-compare writes beside each run.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from lightning_mnist.atomic import json_text
from lightning_mnist.compare import sections
from lightning_mnist.compare.sections import DEFAULT_MARGIN_PP
from lightning_mnist.data.catalogue import DATA_DIR_ENV
from lightning_mnist.errors import UserError

REPORT_JSON, REPORT_MD, SETTINGS_JSON = "report.json", "report.md", "settings.json"
PROCESS_JSON = "process.json"  # written by mnist-compare beside each run: launch and exit
FRAMEWORK_ORDER = ("keras", "lightning")
NAMES = {"keras": "Keras", "lightning": "Lightning"}
DEFAULT_TARGET = {"mnist": 0.98, "fashion_mnist": 0.90}  # validation accuracy to time
ROW_KEYS = ("epochs_run", "best_epoch", "val_accuracy", "val_loss", "test_accuracy")
ROW_KEYS += ("test_loss", "s_per_epoch", "fit_seconds")


class ReportError(UserError):
    """No runs to report, or a results.json that cannot be read; the message is one line."""


def epoch_stats(epoch_seconds: list[float]) -> dict[str, float]:
    """Median, min and max seconds per epoch (training plus validation) over the epochs after
    the first, which also pays one-off costs (TF graph tracing, allocator warm-up)."""
    secs = list(epoch_seconds[1:] if len(epoch_seconds) > 1 else epoch_seconds)
    if not secs:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "epochs_timed": 0}
    return {
        "median": statistics.median(secs),
        "min": min(secs),
        "max": max(secs),
        "epochs_timed": len(secs),
    }


def load_runs(out_dir: Path) -> list[dict[str, Any]]:
    """Every finished run under ``<out_dir>/runs``, newest per (framework, seed), sorted."""
    newest: dict[tuple[str, int], tuple[float, dict[str, Any]]] = {}
    for path in (out_dir / "runs").rglob("results.json"):
        try:
            results = json.loads(path.read_text())
            key = (results["framework"], int(results["seed"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ReportError(f"{path} is not a readable results.json ({e!r}); move it away") from e
        results["path"] = str(path.relative_to(out_dir))
        if results.get("data_dir") and results["data_dir"] == os.environ.get(DATA_DIR_ENV):
            results["data_dir"] = f"${DATA_DIR_ENV}"  # as settings.json names it: no machine path
        results["predictions"] = _predictions(path.parent, results)
        results["process"] = _process(path.parent)
        mtime = path.stat().st_mtime
        # An interrupted-then-resumed run can leave an older finished copy; the newest wins.
        if key not in newest or mtime > newest[key][0]:
            newest[key] = (mtime, results)
    if not newest:
        raise ReportError(f"no runs/**/results.json under {out_dir}; run mnist-compare first")
    return sorted((r for _, r in newest.values()), key=lambda r: (int(r["seed"]), _rank(r)))


def _predictions(folder: Path, results: dict[str, Any]) -> tuple | None:
    """(labels, predicted) from the run's test_predictions.csv, or None for a run without."""
    name = results.get("test_predictions")
    if not name:
        return None
    path = folder / name
    try:
        rows = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    except (OSError, ValueError) as e:
        raise ReportError(
            f"{path} is not a readable label,predicted CSV ({e}); move it away"
        ) from e
    if rows.shape[1] != 2 or len(rows) != int(results.get("test_samples", len(rows))):
        raise ReportError(f"{path} does not hold one label,predicted row per test image")
    return rows[:, 0], rows[:, 1]


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file the comparison wrote; a damaged one is a ReportError naming it."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ReportError(f"{path} cannot be read ({type(e).__name__}); move it away") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} does not hold a JSON object; move it away")
    return data


def _process(folder: Path) -> dict[str, Any] | None:
    """The process.json of a run: in its folder (Keras) or the one above (Lightning)."""
    for path in (folder / PROCESS_JSON, folder.parent / PROCESS_JSON):
        if path.is_file():
            return read_json(path)
    return None


def _rank(results: dict[str, Any]) -> int:
    fw = results["framework"]
    return FRAMEWORK_ORDER.index(fw) if fw in FRAMEWORK_ORDER else len(FRAMEWORK_ORDER)


def run_row(results: dict[str, Any]) -> dict[str, Any]:
    """One table row: val metrics at the best epoch (the tested checkpoint), test metrics."""
    best, hist = int(results["best_epoch"]), results["history"]
    return {
        "framework": results["framework"],
        "seed": int(results["seed"]),
        "epochs_run": int(results["epochs_run"]),
        "best_epoch": best,
        "val_accuracy": float(hist["val_accuracy"][best - 1]),
        "val_loss": float(hist["val_loss"][best - 1]),
        "test_accuracy": float(results["test_accuracy"]),
        "test_loss": float(results["test_loss"]),
        "s_per_epoch": epoch_stats(results["epoch_seconds"])["median"],
        "fit_seconds": float(results["fit_seconds"]),
        "path": results.get("path", ""),
    }


def _mean_std(values: list[float]) -> dict[str, float | None]:
    # Sample standard deviation (n - 1), as seed-to-seed spread is usually reported.
    std = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "std": std}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std per framework, and Lightning - Keras differences of the means."""
    per = {}
    for fw in dict.fromkeys(r["framework"] for r in sorted(rows, key=_rank)):
        mine = [r for r in rows if r["framework"] == fw]
        per[fw] = {"runs": len(mine), **{k: _mean_std([r[k] for r in mine]) for k in ROW_KEYS}}
    summary: dict[str, Any] = {
        "frameworks": per,
        "test_accuracy_diff_pp": None,
        "speed_ratio": None,
    }
    if {"keras", "lightning"} <= per.keys():
        k, lt = per["keras"], per["lightning"]
        diff = lt["test_accuracy"]["mean"] - k["test_accuracy"]["mean"]
        summary["test_accuracy_diff_pp"] = 100 * diff
        summary["speed_ratio"] = lt["s_per_epoch"]["mean"] / k["s_per_epoch"]["mean"]
    return summary


def build_report(
    out_dir: Path, settings: dict[str, Any] | None = None, margin: float = DEFAULT_MARGIN_PP
) -> dict[str, Any]:
    """Read the runs under ``out_dir`` and return the report.json dict; ``settings`` (what the
    comparison ran with) None reads the settings.json mnist-compare writes before its first run.
    ``margin``: the equivalence margin in percentage points; ``paired`` is filled when the
    settings say the runs were paired (``mnist-compare --paired``).
    """
    if settings is None and (out_dir / SETTINGS_JSON).exists():
        settings = read_json(out_dir / SETTINGS_JSON)
    settings = settings or {}
    runs = load_runs(out_dir)
    labels = [r["predictions"][0] for r in runs if r["predictions"] is not None]
    if any(not np.array_equal(labels[0], other) for other in labels[1:]):
        raise ReportError(f"the runs under {out_dir} were tested on different images")
    rows = [run_row(r) for r in runs]
    target = settings.get("target_accuracy") or DEFAULT_TARGET.get(runs[0].get("dataset"), 0.98)
    return {
        "settings": settings,
        "rows": rows,
        "summary": summarise(rows),
        "accuracy_interval": sections.accuracy_interval(rows, margin=margin),
        "paired": sections.paired_section(rows, runs, margin) if settings.get("paired") else None,
        "agreement": sections.agreement_rows(runs),
        "agreement_within": sections.seed_baseline(runs),
        "per_class": sections.per_class(runs),
        "time": sections.time_section(runs, target),
        "environment": sections.environment_section(runs, settings),
        "runs": runs,
    }


def report_json(report: dict[str, Any]) -> str:
    """report.json's text, strict JSON (a NaN or infinite number is written as null): the
    report without the per-image predictions (each run's CSV keeps them; the report keeps the
    numbers drawn from them)."""
    runs = [{k: v for k, v in r.items() if k != "predictions"} for r in report["runs"]]
    return json_text({**report, "runs": runs})
