"""The report's analyses of saved runs, one function per section: each takes the runs
(results.json dicts, with ``predictions`` and ``process`` added by the loader; ``tested``: those
with predictions) and returns plain JSON-ready values."""

import itertools
import math
import statistics
from typing import Any

import numpy as np

from lightning_mnist.compare import stats

DEFAULT_MARGIN_PP = 0.2  # the equivalence margin, in percentage points of test accuracy
# The phases of a run's process, in order, and what each covers.
PHASES = {
    "startup": "start-up (interpreter, imports, model)",
    "data": "data loading",
    "train": "training",
    "validation": "validation",
    "checkpoint": "checkpoint saving",
    "fit_other": "other fit work (sanity check, callbacks)",
    "test": "test",
    "after": "after the test (predictions, latency, plots)",
}


def by_framework(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each framework's runs, the frameworks in the order they first appear."""
    found: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        found.setdefault(r["framework"], []).append(r)
    return found


def _pairs(tested: list[dict[str, Any]]) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(seed, labels, Keras's predictions, Lightning's) for each seed that has both."""
    seeds: dict[int, dict[str, Any]] = {}
    for r in tested:
        seeds.setdefault(int(r["seed"]), {})[r["framework"]] = r["predictions"]
    both = [(s, p) for s, p in sorted(seeds.items()) if {"keras", "lightning"} <= p.keys()]
    return [(s, p["keras"][0], p["keras"][1], p["lightning"][1]) for s, p in both]


def _test_accuracy_pp(rows: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    """Each framework's test accuracy in percent, by seed."""
    return {
        fw: {int(r["seed"]): 100 * r["test_accuracy"] for r in rows if r["framework"] == fw}
        for fw in ("keras", "lightning")
    }


def accuracy_interval(
    rows: list[dict[str, Any]], level: float = 0.95, margin: float = DEFAULT_MARGIN_PP
) -> dict[str, Any] | None:
    """Lightning − Keras mean test accuracy in pp with Welch's interval, its sentence, and the
    seeds an equivalence test at ``±margin`` pp would need; None below 2 seeds a framework."""
    acc = {fw: list(by_seed.values()) for fw, by_seed in _test_accuracy_pp(rows).items()}
    if min(len(v) for v in acc.values()) < 2:
        return None
    w = stats.welch_interval(acc["keras"], acc["lightning"], level)
    variance = statistics.variance(acc["keras"]) + statistics.variance(acc["lightning"])
    needed = stats.seeds_needed(variance, margin, paired=False)
    n = f"Welch, {len(acc['keras'])} + {len(acc['lightning'])} seeds"
    span = (
        f"{w['diff']:+.2f} pp, {100 * level:.0f}% CI [{w['low']:+.2f}, {w['high']:+.2f}] pp ({n})"
    )
    if w["low"] <= 0.0 <= w["high"]:
        text = (
            f"No detectable difference: Lightning − Keras = {span}. The interval includes 0, so "
            f"these seeds cannot tell the frameworks apart; a true difference larger than "
            f"{max(abs(w['low']), abs(w['high'])):.2f} pp either way is unlikely."
        )
    else:
        side = "higher" if w["diff"] > 0 else "lower"
        text = f"Lightning's mean test accuracy is {side} than Keras's: {span}. The interval "
        text += "excludes 0."
    found = {**w, "level": level, "text": text, "margin": margin, "seeds_needed": needed}
    return {**found, "seeds_needed_text": _needed_text(needed, margin, "runs per framework")}


def _needed_text(needed: int | None, margin: float, unit: str) -> str:
    if needed is None:
        return f"No practical number of seeds shows equivalence within ±{margin:g} pp."
    return (
        f"Seeds needed to show equivalence within ±{margin:g} pp (two one-sided t tests at 5%, "
        f"power 80% if the true difference is 0, at the observed spread): {needed} {unit}."
    )


def paired_section(
    rows: list[dict[str, Any]], tested: list[dict[str, Any]], margin: float = DEFAULT_MARGIN_PP,
    level: float = 0.95,
) -> dict[str, Any] | None:  # fmt: skip
    """For paired runs (same start, same batches): per seed the test accuracies and their
    difference, the paired t interval, McNemar's test, the equivalence test (TOST) at
    ``±margin`` pp and the seeds it needs; None with fewer than 2 paired seeds."""
    acc = _test_accuracy_pp(rows)
    seeds = sorted(acc["keras"].keys() & acc["lightning"].keys())
    if len(seeds) < 2:
        return None
    keras, lightning = [acc["keras"][s] for s in seeds], [acc["lightning"][s] for s in seeds]
    w = stats.paired_interval(keras, lightning, level)
    needed = stats.seeds_needed(w["sd"] ** 2, margin, paired=True)
    return {
        "seeds": [
            {"seed": s, "keras": k, "lightning": lt, "diff": lt - k}
            for s, k, lt in zip(seeds, keras, lightning, strict=True)
        ],
        "interval": {**w, "level": level},
        "mcnemar": [{"seed": s, **stats.mcnemar(y, k, lt)} for s, y, k, lt in _pairs(tested)],
        "tost": stats.tost(w["diff"], w["se"], w["df"], margin),
        "seeds_needed": needed,
        "seeds_needed_text": _needed_text(needed, margin, "seed pairs"),
    }


def agreement_rows(tested: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per seed with both frameworks' predictions: how often their best models agree."""
    rows = []
    for seed, labels, keras, lightning in _pairs(tested):
        a = stats.agreement(labels, keras, lightning)
        rows.append(
            {
                "seed": seed,
                "images": a["images"],
                "same_prediction": a["same_prediction"],
                "share": a["same_prediction"] / a["images"],
                "both_wrong": a["both_wrong"],
                "both_wrong_same_class": a["both_wrong_same_class"],
                "keras_only_wrong": a["only_a_wrong"],
                "lightning_only_wrong": a["only_b_wrong"],
            }
        )
    return rows


def seed_baseline(tested: list[dict[str, Any]]) -> dict[str, Any]:
    """Each framework's agreement with itself across consecutive seeds: the yardstick for the
    cross-framework agreement, since reseeding alone changes predictions."""
    found: dict[str, Any] = {}
    for fw, mine in by_framework(tested).items():
        pairs = itertools.pairwise(r["predictions"] for r in mine)
        shares = [stats.agreement(y, a, b)["same_prediction"] / y.size for (y, a), (_, b) in pairs]
        if shares:
            found[fw] = {"pairs": len(shares), "share_mean": statistics.fmean(shares)}
    return found


def per_class(tested: list[dict[str, Any]], classes: int = 10) -> dict[str, Any]:
    """Per framework: the confusion matrix summed over seeds and each class's accuracy."""
    found: dict[str, Any] = {}
    for fw, mine in by_framework(tested).items():
        mats = [stats.confusion_matrix(*r["predictions"], classes) for r in mine]
        accs = np.stack([stats.per_class_accuracy(m) for m in mats])
        std = accs.std(axis=0, ddof=1) if len(mats) > 1 else accs[0] * 0
        found[fw] = {
            "seeds": len(mats),
            "confusion": np.sum(mats, axis=0).tolist(),
            "class_accuracy_mean": accs.mean(axis=0).tolist(),
            "class_accuracy_std": std.tolist(),
        }
    return found


def breakdown(run: dict[str, Any]) -> dict[str, float] | None:
    """Where one run's process time went, in seconds (:data:`PHASES`); None without timing.
    ``startup`` runs from the launch to the data loading, ``after`` from the test to the exit."""
    timing, process = run.get("timing"), run.get("process")
    if not timing:
        return None
    parts = {k: float(timing[k]) for k in PHASES if timing.get(k) is not None}  # null: unmeasured
    if process and timing.get("data_started_at"):
        parts["startup"] = float(timing["data_started_at"]) - float(process["launched_at"])
        inside = sum(v for v in parts.values() if math.isfinite(v))
        parts["after"] = float(process["process_seconds"]) - inside
    return {k: parts[k] for k in PHASES if k in parts}


def time_section(runs: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """Per framework: time to ``target`` validation accuracy per seed, the first seed's
    breakdown, inference latency (median over seeds) and peak memory (max over seeds)."""
    found: dict[str, Any] = {}
    for fw, mine in by_framework(runs).items():
        reach = [
            stats.time_to_target(r["history"]["val_accuracy"], r["epoch_seconds"], target)
            for r in mine
        ]
        reached = [x["seconds"] for x in reach if x]
        latency = [r["inference_ms"] for r in mine if r.get("inference_ms")]
        rss = [r["peak_rss_mb"] for r in mine if r.get("peak_rss_mb")]
        found[fw] = {
            "target": target,
            "to_target": [
                {"seed": int(r["seed"]), **(x or {})} for r, x in zip(mine, reach, strict=True)
            ],
            "to_target_reached": len(reached),
            "to_target_mean_s": statistics.fmean(reached) if reached else None,
            "breakdown_seed": int(mine[0]["seed"]),
            "breakdown": breakdown(mine[0]),
            "inference_ms": {
                b: statistics.median(x[b] for x in latency) for b in (latency[0] if latency else {})
            },
            "peak_rss_mb": max(rss) if rss else None,
        }
    return found


def environment_section(runs: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    """Each framework's recorded environment (its first run) and the load averages."""
    keys = ("cpu_count", "loadavg_start", "loadavg_end", "accelerator")
    found: dict[str, Any] = {"frameworks": {}} | {k: settings[k] for k in keys if k in settings}
    for fw, (run, *_) in by_framework(runs).items():
        env = {"device": run.get("device"), "versions": run.get("versions", {})}
        found["frameworks"][fw] = env | run.get("environment", {})
    return found
