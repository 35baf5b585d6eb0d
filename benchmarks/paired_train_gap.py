"""The paired comparison's training-curve gap, seed by seed, with its interval.

``python benchmarks/paired_train_gap.py REPORT.json [--epochs 3] [--out FILE.json]``

Reads the ``report.json`` of ``mnist-compare --paired`` and, for each seed that has both
frameworks, averages Lightning - Keras over the first ``--epochs`` epochs of both histories:
training accuracy and loss (running means over the epoch with dropout on, as each framework
reports them) and validation accuracy. Prints one row per seed and, over the seeds, the mean,
the sample standard deviation and the 95% paired t interval (scipy.stats). Not a test.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

KEYS = ("accuracy", "loss", "val_accuracy")  # History keys, as both frameworks write them
PERCENT = {"accuracy", "val_accuracy"}  # reported in percentage points


def seed_gaps(report: dict, epochs: int) -> dict[int, dict[str, float]]:
    """Per seed, Lightning - Keras of each key, averaged over the first ``epochs`` epochs."""
    runs = {(r["framework"], r["seed"]): r["history"] for r in report["runs"]}
    gaps = {}
    for seed in sorted({s for fw, s in runs if fw == "keras" and ("lightning", s) in runs}):
        k, lt = runs["keras", seed], runs["lightning", seed]
        n = min(epochs, len(k["accuracy"]), len(lt["accuracy"]))
        scale = {key: 100.0 if key in PERCENT else 1.0 for key in KEYS}
        gaps[seed] = {
            key: float(scale[key] * np.mean(np.subtract(lt[key][:n], k[key][:n]))) for key in KEYS
        }
    return gaps


def summary(values: list[float]) -> dict[str, float]:
    """Mean, sample sd and the 95% t interval of the mean."""
    a = np.asarray(values)
    mean, sd = float(a.mean()), float(a.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(a) - 1) * sd / np.sqrt(len(a)))
    t = mean / (sd / np.sqrt(len(a)))
    p = float(2 * stats.t.sf(abs(t), len(a) - 1))
    return {"n": len(a), "mean": mean, "sd": sd, "low": mean - half, "high": mean + half, "p": p}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    gaps = seed_gaps(json.loads(Path(args.report).read_text()), args.epochs)
    print("seed  " + "  ".join(f"{k:>12}" for k in KEYS))
    for seed, g in gaps.items():
        print(f"{seed:>4}  " + "  ".join(f"{g[k]:>+12.3f}" for k in KEYS))
    over = {k: summary([g[k] for g in gaps.values()]) for k in KEYS}
    for k, s in over.items():
        print(
            f"{k}: mean {s['mean']:+.3f}, sd {s['sd']:.3f}, 95% CI [{s['low']:+.3f}, "
            f"{s['high']:+.3f}], p = {s['p']:.3g} (n = {s['n']})"
        )
    if args.out:
        record = {"report": args.report, "epochs": args.epochs, "seeds": gaps, "summary": over}
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
