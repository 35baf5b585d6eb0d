"""The comparison's statistics: Welch's interval for a difference of means, the agreement of
two models' predictions, confusion matrices and the time to reach a target accuracy.

Pure functions on numbers and arrays; the Student t quantile is scipy.stats's.
"""

from __future__ import annotations

import math
import statistics

import numpy as np


def welch_interval(a: list[float], b: list[float], level: float = 0.95) -> dict[str, float]:
    """Welch's interval for mean(b) - mean(a) (unequal variances, Welch-Satterthwaite df) at
    ``level``, from at least 2 values per sample: ``diff``, ``low``, ``high``, ``se``, ``df``
    and ``t`` (the quantile used). With no spread in either sample the interval is the point
    itself (``df`` is infinite)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's interval needs at least 2 values per sample")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(b) - statistics.fmean(a)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return {"diff": diff, "low": diff, "high": diff, "se": 0.0, "df": math.inf, "t": 0.0}
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    # Imported here: only an interval needs it, and only a comparison with Keras runs (whose
    # [keras] extra brings scipy) has one.
    from scipy.stats import t as student_t

    t = float(student_t.ppf(0.5 + level / 2.0, df))
    return {"diff": diff, "low": diff - t * se, "high": diff + t * se, "se": se, "df": df, "t": t}


def agreement(labels: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, int]:
    """How two models' predictions on the same images agree: ``same_prediction`` counts the
    images where both predict the same class."""
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
    """The first epoch (1-based) whose validation accuracy reaches ``target`` and the training
    seconds until then (the sum of the epoch times, training plus validation); None when no
    epoch reached it."""
    for i, acc in enumerate(val_accuracy):
        if acc >= target:
            return {"epoch": i + 1, "seconds": float(sum(epoch_seconds[: i + 1]))}
    return None
