"""The comparison report: runs' results.json files -> report.json, report.md, overlay plots.

Everything here reads saved files and never trains, so a report can be rebuilt at any time
(``mnist-compare --report-only``). A report folder holds ``runs/<framework>-seed<S>/...`` with
one results.json per run (the schema shared by lightning_mnist and keras_reference).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; works without a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from lightning_mnist.idx import write_atomic  # noqa: E402

REPORT_JSON, REPORT_MD, SETTINGS_JSON = "report.json", "report.md", "settings.json"
PLOTS = {"accuracy": "compare_accuracy.png", "loss": "compare_loss.png"}
FRAMEWORK_ORDER = ("keras", "lightning")
COLOURS = {"keras": "#d00000", "lightning": "#792ee5"}  # the two projects' brand colours
NAMES = {"keras": "Keras", "lightning": "Lightning"}
ROW_KEYS = (
    "epochs_run",
    "best_epoch",
    "val_accuracy",
    "val_loss",
    "test_accuracy",
    "test_loss",
    "s_per_epoch",
    "fit_seconds",
)


class ReportError(Exception):
    """No runs to report, or a results.json that cannot be read; the message is one line."""


def epoch_stats(epoch_seconds: list[float]) -> dict[str, float]:
    """Median, min and max seconds per epoch over the epochs after the first.

    The first epoch also pays one-off costs (TF graph tracing, allocator warm-up), so it is
    left out whenever there is more than one epoch.

    Args:
        epoch_seconds: Wall seconds of each epoch (training plus validation).
    """
    secs = list(epoch_seconds[1:] if len(epoch_seconds) > 1 else epoch_seconds)
    if not secs:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "epochs_timed": 0}
    return {
        "median": statistics.median(secs),
        "min": min(secs),
        "max": max(secs),
        "epochs_timed": len(secs),
    }


def load_runs(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished run under ``<out_dir>/runs``, newest per (framework, seed), sorted.

    Args:
        out_dir: The report folder.

    Raises:
        ReportError: when no run has a results.json, or one cannot be read.
    """
    runs_dir = Path(out_dir) / "runs"
    newest: dict[tuple[str, int], tuple[float, dict[str, Any]]] = {}
    for path in runs_dir.rglob("results.json"):
        try:
            results = json.loads(path.read_text())
            key = (results["framework"], int(results["seed"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ReportError(f"{path} is not a readable results.json ({e!r}); move it away") from e
        results["path"] = str(path.relative_to(out_dir))
        mtime = path.stat().st_mtime
        # An interrupted-then-resumed run can leave an older finished copy; the newest wins.
        if key not in newest or mtime > newest[key][0]:
            newest[key] = (mtime, results)
    if not newest:
        raise ReportError(f"no runs/**/results.json under {out_dir}; run mnist-compare first")
    return sorted((r for _, r in newest.values()), key=_run_order)


def _framework_rank(results: dict[str, Any]) -> int:
    fw = results["framework"]
    return FRAMEWORK_ORDER.index(fw) if fw in FRAMEWORK_ORDER else len(FRAMEWORK_ORDER)


def _run_order(results: dict[str, Any]) -> tuple[int, int]:
    return (int(results["seed"]), _framework_rank(results))


def run_row(results: dict[str, Any]) -> dict[str, Any]:
    """One table row: val metrics at the best epoch (the tested checkpoint), test metrics.

    Args:
        results: A results.json dict.
    """
    best = int(results["best_epoch"])
    hist = results["history"]
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
    """Mean ± std per framework, and Lightning - Keras differences of the means.

    Args:
        rows: Rows from :func:`run_row`.
    """
    frameworks = list(dict.fromkeys(r["framework"] for r in sorted(rows, key=_framework_rank)))
    per = {}
    for fw in frameworks:
        mine = [r for r in rows if r["framework"] == fw]
        per[fw] = {"runs": len(mine), **{k: _mean_std([r[k] for r in mine]) for k in ROW_KEYS}}
    summary: dict[str, Any] = {
        "frameworks": per,
        "test_accuracy_diff_pp": None,
        "speed_ratio": None,
    }
    if {"keras", "lightning"} <= per.keys():
        k, lt = per["keras"], per["lightning"]
        summary["test_accuracy_diff_pp"] = 100 * (
            lt["test_accuracy"]["mean"] - k["test_accuracy"]["mean"]
        )
        summary["speed_ratio"] = lt["s_per_epoch"]["mean"] / k["s_per_epoch"]["mean"]
    return summary


def build_report(out_dir: str | Path, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read the runs under ``out_dir`` and return the report.json dict.

    Args:
        out_dir: The report folder.
        settings: What the comparison ran with (seeds, epochs, ...); None reads the folder's
            settings.json, which mnist-compare writes before its first run.
    """
    out_dir = Path(out_dir)
    if settings is None and (out_dir / SETTINGS_JSON).exists():
        settings = json.loads((out_dir / SETTINGS_JSON).read_text())
    runs = load_runs(out_dir)
    rows = [run_row(r) for r in runs]
    return {"settings": settings or {}, "rows": rows, "summary": summarise(rows), "runs": runs}


def write_report(out_dir: str | Path, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the report and write report.json, report.md and the overlay plots into ``out_dir``.

    Args:
        out_dir: The report folder (holding ``runs/``).
        settings: See :func:`build_report`.
    """
    out_dir = Path(out_dir)
    report = build_report(out_dir, settings)
    plot_overlays(report["runs"], out_dir)
    _write_text(out_dir / REPORT_JSON, json.dumps(report, indent=2) + "\n")
    _write_text(out_dir / REPORT_MD, render_markdown(report))
    return report


def _write_text(path: Path, text: str) -> None:
    write_atomic(path, text.encode())  # no half-written report if interrupted


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _cell(key: str, value: float) -> str:
    if key in ("val_accuracy", "test_accuracy"):
        return _pct(value)
    if key in ("val_loss", "test_loss"):
        return f"{value:.4f}"
    if key in ("s_per_epoch",):
        return f"{value:.2f}"
    if key == "fit_seconds":
        return f"{value:.1f}"
    return f"{value:g}"


def _mean_cell(key: str, ms: dict[str, float | None]) -> str:
    mean, std = ms["mean"], ms["std"]
    if key in ("val_accuracy", "test_accuracy"):  # both in percent
        return f"{100 * mean:.2f} ± {100 * std:.2f}%" if std is not None else _pct(mean)
    if key in ("epochs_run", "best_epoch"):
        return f"{mean:.1f} ± {std:.1f}" if std is not None else f"{mean:.1f}"
    text = _cell(key, mean)
    digits = len(text.split(".")[1]) if "." in text else 0
    return f"{text} ± {std:.{digits}f}" if std is not None else text


HEADER = (
    "| framework | seed | epochs run | best epoch | val acc | val loss | test acc | test loss "
    "| s/epoch (median) | fit s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the per-run table, mean ± std, the difference, the plots.

    Args:
        report: A dict from :func:`build_report`.
    """
    s, rows, summary = report["settings"], report["rows"], report["summary"]
    lines = ["# Keras vs Lightning: the tutorial side by side", ""]
    if s:
        lines += [
            f"Settings: at most {s.get('epochs')} epochs, "
            f"EarlyStopping(patience={s.get('patience')}) on val_loss, batch 256, "
            f"seeds {', '.join(map(str, s.get('seeds', [])))}. "
            "Each framework ran in its own process, one after the other, with every core.",
            "",
        ]
        if s.get("command"):
            lines += [f"Command: `{s['command']}`", ""]
    table = HEADER
    for r in rows:
        cells = [NAMES.get(r["framework"], r["framework"]), str(r["seed"])]
        table += "| " + " | ".join(cells + [_cell(k, r[k]) for k in ROW_KEYS]) + " |\n"
    lines += [table, "## Mean ± std over seeds", ""]
    table = HEADER.replace("| seed |", "| runs |", 1)
    for fw, per in summary["frameworks"].items():
        cells = [NAMES.get(fw, fw), str(per["runs"])]
        table += "| " + " | ".join(cells + [_mean_cell(k, per[k]) for k in ROW_KEYS]) + " |\n"
    lines.append(table)
    diff, ratio = summary["test_accuracy_diff_pp"], summary["speed_ratio"]
    if diff is not None:
        lines += [
            f"**Mean test accuracy, Lightning − Keras: {diff:+.2f} percentage points.** "
            f"Lightning/Keras seconds per epoch: {ratio:.2f}.",
            "",
        ]
    lines += [
        "val acc and val loss are those of the best epoch (lowest val_loss), whose checkpoint "
        "was tested on the 10,000 test images. s/epoch is the median over the epochs after the "
        "first; an epoch is 188 training steps on 48,000 images plus validation on 12,000. "
        "± is the sample standard deviation over seeds (n − 1).",
        "",
        f"![accuracy]({PLOTS['accuracy']})",
        f"![loss]({PLOTS['loss']})",
        "",
        "Solid lines: validation; dashed: training (running mean over the epoch, with dropout "
        "on, as Keras reports it); dots: the best epoch. Thick: the lowest seed; thin: the others.",
        "",
        "## Environment",
        "",
    ]
    for fw in summary["frameworks"]:
        run = next(r for r in report["runs"] if r["framework"] == fw)
        vers = ", ".join(f"{k} {v}" for k, v in run.get("versions", {}).items())
        lines.append(f"- {NAMES.get(fw, fw)}: {run.get('device', '?')}; {vers}{_speedups(run)}")
    if s.get("loadavg_start") is not None:
        lines.append(
            f"- Machine: {s.get('cpu_count')} cores, 1-minute load average "
            f"{s['loadavg_start']:.1f} at the start (above 0 means other work shared the cores "
            "and the timings are noisy)"
        )
    return "\n".join(lines) + "\n"


def _speedups(run: dict[str, Any]) -> str:
    """Which conv path and opt-in settings a run used, as recorded in its results.json."""
    parts = []
    if "conv_path" in run:
        parts.append(f"conv path {run['conv_path']}")
    if run.get("tune_malloc"):
        parts.append("tune_malloc on")
    if "jit_compile" in run:
        parts.append(f"jit_compile {run['jit_compile']}")
    return f"; {', '.join(parts)}" if parts else ""


def plot_overlays(runs: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """compare_accuracy.png and compare_loss.png: both frameworks' curves on one plot each.

    Like the tutorial's plot_curve (train and val per epoch), with one colour per framework.

    Args:
        runs: results.json dicts.
        out_dir: Where the PNGs go.
    """
    out_dir = Path(out_dir)
    seeds = sorted({int(r["seed"]) for r in runs})
    paths = []
    for metric, location in (("accuracy", "lower right"), ("loss", "upper right")):
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        for r in runs:
            main = int(r["seed"]) == seeds[0]
            style = {"color": COLOURS.get(r["framework"]), "lw": 1.8 if main else 0.8}
            style["alpha"] = 1.0 if main else 0.45
            hist = r["history"]
            epochs = range(1, len(hist[metric]) + 1)
            ax.plot(epochs, hist[f"val_{metric}"], ls="-", **style)
            ax.plot(epochs, hist[metric], ls="--", **style)
            best = int(r["best_epoch"])  # the tested checkpoint
            ax.plot(best, hist[f"val_{metric}"][best - 1], "o", ms=5 if main else 3, **style)
        handles = [
            Line2D([], [], color=COLOURS.get(fw), lw=2, label=NAMES.get(fw, fw))
            for fw in dict.fromkeys(r["framework"] for r in runs)
        ] + [
            Line2D([], [], color="grey", ls="-", label="val"),
            Line2D([], [], color="grey", ls="--", label="train"),
            Line2D([], [], color="grey", ls="", marker="o", label="best epoch"),
        ]
        ax.legend(handles=handles, loc=location)
        seed_text = f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
        ax.set_title(f"model {metric}: Keras vs Lightning ({seed_text})")
        ax.set_ylabel(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / PLOTS[metric]
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
