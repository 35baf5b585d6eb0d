"""The comparison's statistics, pure functions on numbers and arrays. The distributions are
scipy.stats's, imported inside the functions: only a comparison with Keras, whose [keras] extra
brings scipy, needs them."""

import math
import statistics
from typing import Any

import numpy as np


def welch_interval(a: list[float], b: list[float], level: float = 0.95) -> dict[str, float]:
    """Welch's interval for mean(b) - mean(a) at ``level`` (``t``: the quantile used); with no
    spread in either sample the interval is the point itself and ``df`` is infinite."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's interval needs at least 2 values per sample")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff, se = statistics.fmean(b) - statistics.fmean(a), math.sqrt(va + vb)
    if se == 0.0:
        return {"diff": diff, "low": diff, "high": diff, "se": 0.0, "df": math.inf, "t": 0.0}
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    import scipy.stats

    t = float(scipy.stats.t.ppf(0.5 + level / 2.0, df))
    return {"diff": diff, "low": diff - t * se, "high": diff + t * se, "se": se, "df": df, "t": t}


def paired_interval(a: list[float], b: list[float], level: float = 0.95) -> dict[str, float]:
    """The paired t interval for the mean of ``b[i] - a[i]`` at ``level``, with ``sd`` of the
    differences and ``p`` (two-sided, scipy.stats.ttest_rel; None when they are all equal)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("a paired interval needs at least 2 pairs of equal-length samples")
    d = [y - x for x, y in zip(a, b, strict=True)]
    diff, sd, df = statistics.fmean(d), statistics.stdev(d), len(d) - 1
    se = sd / math.sqrt(len(d))
    if se == 0.0:
        return {"diff": diff, "low": diff, "high": diff, "se": 0.0, "sd": 0.0, "df": df,
                "t": 0.0, "p": None}  # fmt: skip
    import scipy.stats

    t = float(scipy.stats.t.ppf(0.5 + level / 2.0, df))
    p = float(scipy.stats.ttest_rel(b, a).pvalue)
    return {"diff": diff, "low": diff - t * se, "high": diff + t * se, "se": se, "sd": sd,
            "df": df, "t": t, "p": p}  # fmt: skip


def mcnemar(labels: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, Any]:
    """McNemar's test of two models on the same images, from those only one gets right:
    ``p_exact`` by the two-sided binomial test at 1/2, ``p_chi2`` by chi-square with Edwards'
    continuity correction on 1 df; both 1 when no image is discordant."""
    right_a, right_b = pred_a == labels, pred_b == labels
    b, c = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    found = {"only_a_right": b, "only_b_right": c, "discordant": b + c}
    if b + c == 0:
        return {**found, "chi2": 0.0, "p_chi2": 1.0, "p_exact": 1.0}
    import scipy.stats

    statistic = (abs(b - c) - 1) ** 2 / (b + c) if b != c else 0.0
    p_exact = scipy.stats.binomtest(b, b + c, 0.5).pvalue
    return {**found, "chi2": statistic, "p_chi2": float(scipy.stats.chi2.sf(statistic, 1)),
            "p_exact": float(min(1.0, p_exact))}  # fmt: skip


def tost(diff: float, se: float, df: float, margin: float, alpha: float = 0.05) -> dict[str, Any]:
    """Schuirmann's two one-sided t tests of equivalence within ``±margin``: ``p_lower`` of H0
    diff <= -margin, ``p_upper`` of H0 diff >= margin. ``equivalent`` when the larger, ``p``, is
    below ``alpha``, as when the ``1 - 2 alpha`` interval (``low``, ``high``) is inside."""
    if margin <= 0.0:
        raise ValueError("an equivalence margin is positive")
    found: dict[str, Any] = {"margin": margin, "alpha": alpha, "diff": diff}
    if se == 0.0:  # no spread: the point is the interval
        p_lower = p_upper = 0.0 if abs(diff) < margin else 1.0
        low = high = diff
    else:
        from scipy.stats import t

        p_lower = float(t.sf((diff + margin) / se, df))
        p_upper = float(t.cdf((diff - margin) / se, df))
        half = float(t.ppf(1.0 - alpha, df)) * se
        low, high = diff - half, diff + half
    p = max(p_lower, p_upper)
    return {**found, "p_lower": p_lower, "p_upper": p_upper, "p": p, "low": low,
            "high": high, "level": 1.0 - 2.0 * alpha, "equivalent": p < alpha}  # fmt: skip


def seeds_needed(
    variance: float, margin: float, paired: bool, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """The seeds (pairs, or runs per framework) a TOST at ``±margin`` needs to show equivalence
    with probability ``power`` when the true difference is 0, by the t-based formula of Chow, Shao
    and Wang ("Sample Size Calculations in Clinical Research", 2nd ed., 2008, sections 3.1-3.2).
    ``variance``: of the per-seed differences (paired), or the sum of the two frameworks'
    variances. None when no n up to 10,000 is enough."""
    if margin <= 0.0 or variance < 0.0:
        raise ValueError("seeds_needed takes a positive margin and a variance >= 0")
    from scipy.stats import t

    for n in range(2, 10_001):
        df = n - 1 if paired else 2 * n - 2
        quantiles = t.ppf(1.0 - alpha, df) + t.ppf(0.5 + power / 2.0, df)
        if n >= quantiles**2 * variance / margin**2:
            return n
    return None


def agreement(labels: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict[str, int]:
    """How two models' predictions on the same images agree and err."""
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
    seconds until then (epoch times, training plus validation); None when none reached it."""
    for i, acc in enumerate(val_accuracy):
        if acc >= target:
            return {"epoch": i + 1, "seconds": float(sum(epoch_seconds[: i + 1]))}
    return None
