"""The report's pictures: learning curves, confusion matrices, where one run's time went, and
for paired runs the per-seed differences with their intervals and the equivalence margin."""

import io
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; works without a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: E402

from lightning_mnist.atomic import write_atomic  # noqa: E402
from lightning_mnist.compare.report import NAMES  # noqa: E402
from lightning_mnist.compare.sections import PHASES, by_framework  # noqa: E402

PLOTS = {name: f"compare_{name}.png" for name in ("accuracy", "loss", "confusion", "time")}
PAIRED_PLOT = "compare_paired.png"  # paired comparisons only
COLOURS = {"keras": "#d00000", "lightning": "#792ee5"}  # the two projects' brand colours
PALETTE = ("#bbbbbb", "#8c564b", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#7f7f7f")
PHASE_COLOURS = dict(zip(PHASES, PALETTE, strict=True))


def write_plots(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write every picture the report links into ``out_dir``; returns their paths."""
    paths = [plot_curves(report["runs"], m, out_dir / PLOTS[m]) for m in ("accuracy", "loss")]
    if report.get("per_class"):
        paths.append(plot_confusion(report["per_class"], out_dir / PLOTS["confusion"]))
    if any(t["breakdown"] for t in (report.get("time") or {}).values()):
        paths.append(plot_time(report["time"], out_dir / PLOTS["time"]))
    if report.get("paired"):
        paths.append(plot_paired(report, out_dir / PAIRED_PLOT))
    return paths


def mean_std(curves: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Per epoch, the mean and sample std (0 for one value) of the curves that reach it, up to the
    last epoch half of them reach (a mean of the seeds that ran longest would jump about)."""
    length = sorted(map(len, curves), reverse=True)[(len(curves) - 1) // 2]
    values = [[c[e] for c in curves if len(c) > e] for e in range(length)]
    mean = np.array([np.mean(v) for v in values])
    return mean, np.array([np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values])


def zoom(curves: list[list[float]], accuracy: bool) -> tuple[float, float]:
    """y limits that show where the curves differ: from the third epoch on when there are
    more than four, with a margin; accuracy never above 100%."""
    skip = 2 if max(len(c) for c in curves) > 4 else 0
    values = np.concatenate([np.asarray(c[skip:] or c, float) for c in curves])
    lo, hi = float(values.min()), float(values.max())
    pad = 0.08 * (hi - lo or abs(hi) or 1.0)
    return lo - pad, min(hi + pad, 1.0 + pad / 4) if accuracy else hi + pad


def plot_curves(runs: list[dict[str, Any]], metric: str, path: Path) -> Path:
    """Validation (left) and training (right) ``metric`` per epoch, one colour per framework."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), dpi=120)
    per, accuracy = by_framework(runs), metric == "accuracy"
    for ax, key, title in ((axes[0], f"val_{metric}", "validation"), (axes[1], metric, "training")):
        curves = [c for mine in per.values() for c in _draw_framework(ax, mine, key)]
        ax.set_ylim(*zoom(curves, accuracy))
        ax.set(title=f"{title} {metric}", xlabel="epoch")
        longest = max(len(c) for c in curves)
        ax.set_xlim(*((0.5, 1.5) if longest == 1 else (1, longest)))  # one epoch: its point
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if accuracy:
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
        ax.grid(alpha=0.3)
    legend = [
        Line2D([], [], color=COLOURS.get(fw), lw=2, label=f"{_name(fw)} mean ± std") for fw in per
    ]
    legend.append(Line2D([], [], color="grey", lw=0.7, alpha=0.5, label="single seeds"))
    legend.append(Line2D([], [], color="grey", ls="", marker="o", label="best epoch (tested)"))
    axes[0].legend(handles=legend, loc="lower right" if accuracy else "upper right", fontsize=8)
    seeds = len({int(r["seed"]) for r in runs})
    names = " vs ".join(map(_name, per))
    fig.suptitle(f"model {metric}: {names} ({seeds} seed{'s' * (seeds > 1)})")
    fig.tight_layout()
    return _save(fig, path)


def _draw_framework(ax: Any, mine: list[dict[str, Any]], key: str) -> list[list[float]]:
    """One framework's seeds (thin), mean (thick) and ± std band on ``ax``; its curves."""
    curves = [r["history"][key] for r in mine]
    colour = COLOURS.get(mine[0]["framework"])
    for c in curves:
        ax.plot(range(1, len(c) + 1), c, color=colour, lw=0.7, alpha=0.3)
    mean, std = mean_std(curves)
    x = np.arange(1, len(mean) + 1)
    ax.plot(x, mean, color=colour, lw=2, marker="o" if len(x) == 1 else None)
    ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.18, lw=0)
    if key.startswith("val_"):
        for r in mine:  # each seed's tested checkpoint
            best = int(r["best_epoch"])
            ax.plot(best, r["history"][key][best - 1], "o", color=colour, ms=4, mec="white")
    return curves


def plot_confusion(per_class: dict[str, Any], path: Path) -> Path:
    """The confusion matrices side by side: errors coloured by count (one scale), the diagonal
    grey, every non-zero count written in its cell."""
    mats = [np.asarray(p["confusion"]) for p in per_class.values()]
    off = [np.where(np.eye(len(m), dtype=bool), 0, m) for m in mats]
    vmax = max(int(o.max()) for o in off) or 1
    size = (5.2 * len(mats) + 0.8, 5.2)
    fig, axes = plt.subplots(1, len(mats), figsize=size, dpi=120, squeeze=False)
    for ax, fw, m, o in zip(axes[0], per_class, mats, off, strict=True):
        image = ax.imshow(np.ma.masked_equal(o, 0), cmap="Reds", vmin=0, vmax=vmax)
        for i in range(len(m)):
            ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, color="#dddddd"))
            for j in np.flatnonzero(m[i]):
                colour = "white" if i != j and o[i, j] > 0.6 * vmax else "black"
                font = 6.5 if i == j else 7.5
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=font, color=colour)
        ax.set_xticks(range(len(m)))
        ax.set_yticks(range(len(m)))
        ax.set(xlabel="predicted class", ylabel="true class")
        seeds = per_class[fw]["seeds"]
        ax.set_title(f"{_name(fw)}: {int(o.sum())} errors over {seeds} seed{'s' * (seeds > 1)}")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="errors (count)")
    return _save(fig, path, bbox_inches="tight")


def plot_time(time: dict[str, Any], path: Path) -> Path:
    """One stacked bar per framework: where one run's process time went."""
    fws = [fw for fw in time if time[fw]["breakdown"]]
    fig, ax = plt.subplots(figsize=(9, 1.6 + 0.8 * len(fws)), dpi=120, layout="constrained")
    for row, fw in enumerate(fws):
        left = 0.0
        for phase, value in time[fw]["breakdown"].items():
            if value is not None and np.isfinite(value) and value > 0:
                colour, label = PHASE_COLOURS[phase], phase if row == 0 else None
                ax.barh(row, value, left=left, color=colour, edgecolor="white", label=label)
                left += value
        ax.text(left, row, f" {left:.0f} s", va="center", fontsize=9)
    labels = [f"{_name(fw)} (seed {time[fw]['breakdown_seed']})" for fw in fws]
    ax.set_yticks(range(len(fws)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_xlim(0, ax.get_xlim()[1] * 1.08)
    handles = [plt.Rectangle((0, 0), 1, 1, color=PHASE_COLOURS[p]) for p in PHASES]
    names = [p.replace("_", " ") for p in PHASES]
    # Below the axis label, with room made for it by the constrained layout.
    fig.legend(handles, names, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    ax.set_title("where one run's time went")
    return _save(fig, path, bbox_inches="tight")


def plot_paired(report: dict[str, Any], path: Path) -> Path:
    """Lightning − Keras test accuracy per seed (dots), the paired 95% and TOST 90% intervals,
    Welch's unpaired 95% interval, and the equivalence margin as a band."""
    paired, welch = report["paired"], report.get("accuracy_interval")
    w, eq = paired["interval"], paired["tost"]
    rows = [(f"seed {s['seed']}", s["diff"], None) for s in paired["seeds"]]
    rows += [("paired, 95%", w["diff"], (w["low"], w["high"]))]
    rows += [(f"paired, {100 * eq['level']:.0f}% (TOST)", eq["diff"], (eq["low"], eq["high"]))]
    if welch:
        rows += [("unpaired (Welch), 95%", welch["diff"], (welch["low"], welch["high"]))]
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.4 * len(rows)), dpi=120)
    margin = eq["margin"]
    ax.axvspan(-margin, margin, color="#2ca02c", alpha=0.12)
    ax.axvline(0.0, color="#555555", linewidth=0.8)
    for y, (_, centre, span) in enumerate(rows):
        colour = COLOURS["lightning"] if span else "#555555"
        if span:
            ax.plot(span, (y, y), color=colour, linewidth=2.5, solid_capstyle="butt")
        ax.plot(centre, y, "o", color=colour, markersize=5 if span else 4)
    ax.set_yticks(range(len(rows)), [label for label, _, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel("Lightning − Keras test accuracy (percentage points)")
    ax.set_title(f"paired runs, Lightning − Keras (green: margin ±{margin:g} pp)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path, bbox_inches="tight")


def _name(fw: str) -> str:
    return NAMES.get(fw, fw)


def _save(fig: Any, path: Path, **savefig: Any) -> Path:
    """Write ``fig`` as a PNG through the atomic writer (no half picture), and close it."""
    png = io.BytesIO()
    fig.savefig(png, format="png", **savefig)
    plt.close(fig)
    write_atomic(path, png.getvalue())
    return path
