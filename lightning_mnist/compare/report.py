"""The comparison report from saved files, never training (``mnist-compare --report_only``
rebuilds it): each ``runs/<framework>-seed<S>/`` holds a run's results.json (the schema both
frameworks share), its test_predictions.csv and the process.json mnist-compare writes."""

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
NAMES = {"keras": "Keras", "lightning": "Lightning"}
DEFAULT_TARGET = {"mnist": 0.98, "fashion_mnist": 0.90}  # validation accuracy to time
ROW_KEYS = ("epochs_run", "best_epoch", "val_accuracy", "val_loss", "test_accuracy")
ROW_KEYS += ("test_loss", "s_per_epoch", "fit_seconds")


class ReportError(UserError):
    """No runs to report, or a results.json that cannot be read; the message is one line."""


def epoch_stats(epoch_seconds: list[float]) -> dict[str, float]:
    """Median, min and max seconds per epoch (training plus validation) over the epochs after
    the first, which also pays one-off costs (TF graph tracing, allocator warm-up)."""
    secs = list(epoch_seconds[1:] or epoch_seconds)
    median, low, high = (statistics.median(secs), min(secs), max(secs)) if secs else [math.nan] * 3
    return {"median": median, "min": low, "max": high, "epochs_timed": len(secs)}


def load_runs(out_dir: Path) -> list[dict[str, Any]]:
    """Every finished run under ``<out_dir>/runs``, newest per (framework, seed), sorted."""
    newest: dict[tuple[str, int], tuple[float, dict[str, Any]]] = {}
    for path in (out_dir / "runs").rglob("results.json"):
        try:
            results = json.loads(path.read_text())
            key = (results["framework"], int(results["seed"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ReportError(f"{path} is not a readable results.json ({e!r}); move it away") from e
        if results.get("best_epoch") is None:  # the run's validation was off
            raise ReportError(f"{path} has no validated epoch; the report compares best epochs")
        results["path"] = str(path.relative_to(out_dir))
        if results.get("data_dir") and results["data_dir"] == os.environ.get(DATA_DIR_ENV):
            results["data_dir"] = f"${DATA_DIR_ENV}"  # as settings.json names it: no machine path
        results["predictions"] = _predictions(path.parent, results)
        # process.json: in the run's folder (Keras) or the one above (Lightning)
        process = [d / PROCESS_JSON for d in (path.parent, path.parent.parent)]
        results["process"] = next((read_json(p) for p in process if p.is_file()), None)
        mtime = path.stat().st_mtime
        # An interrupted-then-resumed run can leave an older finished copy; the newest wins.
        if key not in newest or mtime > newest[key][0]:
            newest[key] = (mtime, results)
    if not newest:
        raise ReportError(f"no runs/**/results.json under {out_dir}; run mnist-compare first")
    # By seed, then Keras before Lightning (the frameworks' names sort so).
    return sorted((r for _, r in newest.values()), key=lambda r: (int(r["seed"]), r["framework"]))


def _predictions(folder: Path, results: dict[str, Any]) -> tuple | None:
    """(labels, predicted) from the run's test_predictions.csv, or None for a run without."""
    if not results.get("test_predictions"):
        return None
    path = folder / results["test_predictions"]
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


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std per framework (the sample std, n - 1, as seed-to-seed spread is usually
    reported), and Lightning - Keras differences of the means."""
    per = {}
    for fw, mine in sections.by_framework(sorted(rows, key=lambda r: r["framework"])).items():
        per[fw] = {"runs": len(mine)}
        for k in ROW_KEYS:
            values = [r[k] for r in mine]
            std = statistics.stdev(values) if len(values) > 1 else None
            per[fw][k] = {"mean": statistics.fmean(values), "std": std}
    summary = {"frameworks": per, "test_accuracy_diff_pp": None, "speed_ratio": None}
    if {"keras", "lightning"} <= per.keys():
        k, lt = per["keras"], per["lightning"]
        diff = lt["test_accuracy"]["mean"] - k["test_accuracy"]["mean"]
        summary["test_accuracy_diff_pp"] = 100 * diff
        summary["speed_ratio"] = lt["s_per_epoch"]["mean"] / k["s_per_epoch"]["mean"]
    return summary


def build_report(
    out_dir: Path, settings: dict[str, Any] | None = None, margin: float = DEFAULT_MARGIN_PP
) -> dict[str, Any]:
    """The report.json dict of the runs under ``out_dir``; ``settings`` None reads the
    settings.json mnist-compare writes first. ``margin``: the equivalence margin in pp."""
    if settings is None and (out_dir / SETTINGS_JSON).exists():
        settings = read_json(out_dir / SETTINGS_JSON)
    settings = settings or {}
    runs = load_runs(out_dir)
    tested = [r for r in runs if r["predictions"] is not None]
    if any(not np.array_equal(tested[0]["predictions"][0], r["predictions"][0]) for r in tested):
        raise ReportError(f"the runs under {out_dir} were tested on different images")
    rows = [run_row(r) for r in runs]
    target = settings.get("target_accuracy") or DEFAULT_TARGET.get(runs[0].get("dataset"), 0.98)
    return {
        "settings": settings,
        "rows": rows,
        "summary": summarise(rows),
        "accuracy_interval": sections.accuracy_interval(rows, margin=margin),
        "paired": sections.paired_section(rows, tested, margin) if settings.get("paired") else None,
        "agreement": sections.agreement_rows(tested),
        "agreement_within": sections.seed_baseline(tested),
        "per_class": sections.per_class(tested),
        "time": sections.time_section(runs, target),
        "environment": sections.environment_section(runs, settings),
        "runs": runs,
    }


def report_json(report: dict[str, Any]) -> str:
    """report.json's text, strict JSON (NaN and infinities as null), without the per-image
    predictions (each run's CSV keeps them)."""
    runs = [{k: v for k, v in r.items() if k != "predictions"} for r in report["runs"]]
    return json_text({**report, "runs": runs})
