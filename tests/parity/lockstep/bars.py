"""The three lockstep parity bars, computed from a lockstep record (``run.lockstep``)."""

from __future__ import annotations

from typing import Any

import numpy as np

FIRST_STEPS, FIRST_REL = 40, 1e-6  # bar 1: the first 40 steps within 1e-6 relative
DRIFT_FACTOR = 10  # bar 2: |Δloss| within 10x torch's own drift at the same step
AGREEMENT_PP = 0.1  # bar 3: test agreement within 0.1 pp of torch's own
YARDSTICKS = {"yard": "torch 2 vs 1 threads", "order": "torch vs torch on reversed batches"}


def loss_ulp(losses: np.ndarray) -> np.ndarray:
    """One float32 ulp of each loss: the smallest nonzero |Δloss| a float32 loss can show."""
    return np.spacing(np.abs(losses).astype(np.float32)).astype(np.float64)


def first_steps(steps: dict[str, list]) -> dict[str, Any]:
    """Bar 1: the largest relative |Δloss| over the first 40 steps, both pairs."""
    worst = {p: float(max(steps[f"rel_dloss_{p}"][:FIRST_STEPS])) for p in ("cross", *YARDSTICKS)}
    return {
        "steps": len(steps["rel_dloss_cross"][:FIRST_STEPS]),
        **{f"max_rel_dloss_{p}": v for p, v in worst.items()},
        "bar": FIRST_REL,
        "passed": worst["cross"] <= FIRST_REL,
    }


def drift_ratio(steps: dict[str, list], yardstick: str) -> dict[str, Any]:
    """Bar 2 over the first epoch: cross |Δloss| / torch's own |Δloss| at each step.

    Early on the two torch runs often give bit-identical losses (|Δloss| = 0) while Keras's
    differs by an ulp, so the ratio is taken against the yardstick floored at one float32 ulp
    of the loss: a gap below an ulp cannot be told from none."""
    epoch = np.asarray(steps["epoch"]) == 0
    cross = np.asarray(steps["dloss_cross"])[epoch]
    yard = np.asarray(steps[f"dloss_{yardstick}"])[epoch]
    ratio = cross / np.maximum(yard, loss_ulp(np.asarray(steps["loss_torch"])[epoch]))
    worst = int(ratio.argmax())
    return {
        "yardstick": YARDSTICKS[yardstick],
        "steps": int(epoch.sum()),
        "max_ratio": float(ratio.max()),
        "max_ratio_step": worst + 1,
        "median_ratio": float(np.median(ratio)),
        "steps_over_bar": int((ratio > DRIFT_FACTOR).sum()),
        "steps_with_zero_yardstick": int((yard == 0).sum()),
        "bar": DRIFT_FACTOR,
        "passed": bool(ratio.max() <= DRIFT_FACTOR),
    }


def agreement(epochs: list[dict[str, Any]], yardstick: str) -> dict[str, Any]:
    """Bar 3 after the last epoch: Keras-torch test agreement against torch-torch's."""
    last = epochs[-1]
    shortfall_pp = 100 * (last[f"agreement_{yardstick}"] - last["agreement_cross"])
    return {
        "yardstick": YARDSTICKS[yardstick],
        "epoch": last["epoch"],
        "agreement_cross": last["agreement_cross"],
        "agreement_yard": last[f"agreement_{yardstick}"],
        "shortfall_pp": shortfall_pp,
        "bar_pp": AGREEMENT_PP,
        "passed": shortfall_pp <= AGREEMENT_PP,
    }


def bars(record: dict[str, Any]) -> dict[str, Any]:
    """All three bars, each with its measured value and whether it is met; bars 2 and 3
    once against each yardstick (the first of each list is the thread count, the yardstick
    the bars were set against)."""
    return {
        "first_steps": first_steps(record["steps"]),
        "drift_ratio": [drift_ratio(record["steps"], y) for y in YARDSTICKS],
        "agreement": [agreement(record["epochs"], y) for y in YARDSTICKS],
    }
