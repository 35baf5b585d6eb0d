"""The comparison's statistics: Welch's interval for a difference of means, the agreement of
two models' predictions, confusion matrices and the time to reach a target accuracy.

Pure functions on numbers and arrays (no SciPy): the Student t quantile comes from the
regularised incomplete beta function, evaluated by its continued fraction.
"""

from __future__ import annotations

import math
import statistics

import numpy as np


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz method)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` (> 0, not necessarily whole) degrees of freedom."""
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on t_cdf)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2.0


def welch_interval(a: list[float], b: list[float], level: float = 0.95) -> dict[str, float]:
    """Welch's interval for mean(b) - mean(a): unequal variances, Welch-Satterthwaite df.

    Args:
        a: The first sample (at least 2 values).
        b: The second sample (at least 2 values).
        level: The confidence level.

    Returns:
        ``diff``, ``low``, ``high``, ``se``, ``df`` and ``t`` (the quantile used). With no
        spread in either sample the interval is the point itself (``df`` is infinite).
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's interval needs at least 2 values per sample")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(b) - statistics.fmean(a)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return {"diff": diff, "low": diff, "high": diff, "se": 0.0, "df": math.inf, "t": 0.0}
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = t_quantile(0.5 + level / 2.0, df)
    return {"diff": diff, "low": diff - t * se, "high": diff + t * se, "se": se, "df": df, "t": t}


def agreement(labels: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, int]:
    """How two models' predictions on the same images agree.

    Returns:
        ``images``; ``same_prediction`` (both predict the same class); ``both_wrong``,
        ``both_wrong_same_class``, ``only_a_wrong`` and ``only_b_wrong``.
    """
    wrong_a, wrong_b = pred_a != labels, pred_b != labels
    return {
        "images": int(labels.size),
        "same_prediction": int((pred_a == pred_b).sum()),
        "both_wrong": int((wrong_a & wrong_b).sum()),
        "both_wrong_same_class": int((wrong_a & wrong_b & (pred_a == pred_b)).sum()),
        "only_a_wrong": int((wrong_a & ~wrong_b).sum()),
        "only_b_wrong": int((wrong_b & ~wrong_a).sum()),
    }


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int = 10) -> np.ndarray:
    """``m[true, predicted]`` counts, shape (classes, classes)."""
    flat = np.asarray(labels, np.int64) * classes + np.asarray(predicted, np.int64)
    return np.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """The share of each true class predicted correctly (the diagonal over the row sums)."""
    rows = matrix.sum(axis=1)
    return np.divide(np.diag(matrix), rows, out=np.full(len(rows), np.nan), where=rows > 0)


def time_to_target(
    val_accuracy: list[float], epoch_seconds: list[float], target: float
) -> dict[str, float | int] | None:
    """The first epoch whose validation accuracy reaches ``target``, and the training
    seconds until then (the sum of the epoch times, training plus validation).

    Returns:
        ``{"epoch": 1-based, "seconds": ...}``, or None when no epoch reached it.
    """
    for i, acc in enumerate(val_accuracy):
        if acc >= target:
            return {"epoch": i + 1, "seconds": float(sum(epoch_seconds[: i + 1]))}
    return None
