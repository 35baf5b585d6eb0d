"""The comparison's statistics on fixed inputs, against values computed by hand or taken from
standard tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lightning_mnist.compare.stats import (
    agreement,
    confusion_matrix,
    mcnemar,
    paired_interval,
    per_class_accuracy,
    seeds_needed,
    time_to_target,
    tost,
    welch_interval,
)


@pytest.mark.parametrize(
    ("n", "expected"),
    # Two equal samples of n values: Welch's df is 2 (n - 1); two-sided 95% critical values
    # for df 2, 4 and 8 from any t table.
    [(2, 4.3027), (3, 2.7764), (5, 2.3060)],
)
def test_welch_t_quantile_matches_the_table(n, expected):
    sample = [float(i) for i in range(n)]
    w = welch_interval(sample, [x + 1.0 for x in sample])
    assert w["df"] == pytest.approx(2 * (n - 1))
    assert w["t"] == pytest.approx(expected, abs=1e-4)


def test_welch_interval_by_hand():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0]
    # Means 2 and 5; variances 1 and 20/3; se^2 = 1/3 + 5/3 = 2.
    # df = 2^2 / ((1/3)^2 / 2 + (5/3)^2 / 3) = 4 / (1/18 + 25/27) = 4.0755...
    w = welch_interval(a, b)
    assert w["diff"] == pytest.approx(3.0)
    assert w["se"] == pytest.approx(math.sqrt(2.0))
    assert w["df"] == pytest.approx(4 / (1 / 18 + 25 / 27))
    t = w["t"]
    assert 2.75 < t < 2.7764  # between the table's df 4 and df 5 (2.5706) values, near df 4
    assert w["low"] == pytest.approx(3.0 - t * math.sqrt(2.0))
    assert w["high"] == pytest.approx(3.0 + t * math.sqrt(2.0))


def test_welch_interval_without_spread_and_with_too_few_values():
    w = welch_interval([1.0, 1.0], [2.0, 2.0])
    assert (w["low"], w["high"], w["df"]) == (1.0, 1.0, math.inf)
    with pytest.raises(ValueError, match="at least 2"):
        welch_interval([1.0], [1.0, 2.0])


def test_agreement_counts():
    labels = np.array([0, 1, 2, 3, 4, 5])
    a = np.array([0, 1, 9, 9, 8, 5])  # wrong on 2, 3, 4
    b = np.array([0, 7, 9, 8, 4, 5])  # wrong on 1, 2, 3
    assert agreement(labels, a, b) == {
        "images": 6,
        "same_prediction": 3,  # images 0, 2, 5
        "both_wrong": 2,  # images 2 and 3
        "both_wrong_same_class": 1,  # image 2 (both say 9)
        "only_a_wrong": 1,  # image 4
        "only_b_wrong": 1,  # image 1
    }


def test_confusion_matrix_and_per_class_accuracy():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 0, 2])
    m = confusion_matrix(labels, predicted, classes=4)
    expected = np.zeros((4, 4), int)
    expected[0, 0], expected[0, 1], expected[1, 1], expected[1, 0], expected[2, 2] = 2, 1, 1, 1, 1
    assert (m == expected).all()
    acc = per_class_accuracy(m)
    assert acc[:3] == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert math.isnan(acc[3])  # a class with no images has no accuracy


def test_time_to_target():
    val = [0.95, 0.979, 0.98, 0.99]
    secs = [10.0, 5.0, 4.0, 4.0]
    assert time_to_target(val, secs, 0.98) == {"epoch": 3, "seconds": 19.0}
    assert time_to_target(val, secs, 0.995) is None


def test_paired_interval_by_hand():
    # Differences 1, 2, 4: mean 7/3, sd sqrt(7/3), se sqrt(7/9); df 2, t(0.975, 2) = 4.3027.
    w = paired_interval([1.0, 2.0, 3.0], [2.0, 4.0, 7.0])
    assert (w["diff"], w["df"]) == (pytest.approx(7 / 3), 2)
    assert w["sd"] == pytest.approx(math.sqrt(7 / 3))
    assert w["se"] == pytest.approx(math.sqrt(7 / 9))
    assert w["t"] == pytest.approx(4.3027, abs=1e-4)
    assert (w["low"], w["high"]) == pytest.approx(
        (7 / 3 - w["t"] * w["se"], 7 / 3 + w["t"] * w["se"])
    )
    # The two-sided p of t = (7/3) / sqrt(7/9) = sqrt(7) on 2 df, from the closed form of
    # Student's t with 2 df: P(|T| > x) = 1 - x / sqrt(2 + x^2).
    assert w["p"] == pytest.approx(1 - math.sqrt(7) / 3)
    # Pairing removes the spread the two samples share: Welch's interval is wider.
    welch = welch_interval([1.0, 2.0, 3.0], [2.0, 4.0, 7.0])
    assert welch["high"] - welch["low"] > w["high"] - w["low"]


def test_paired_interval_without_spread_and_with_bad_input():
    w = paired_interval([1.0, 2.0], [1.5, 2.5])
    assert (w["low"], w["high"], w["p"]) == (0.5, 0.5, None)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        paired_interval([1.0, 2.0], [1.0])


def _predictions(only_a_right: int, only_b_right: int, both_right: int, both_wrong: int):
    """Labels and two models' predictions with the given 2x2 table (class 0 right, 1 wrong)."""
    a = [0] * only_a_right + [1] * only_b_right + [0] * both_right + [1] * both_wrong
    b = [1] * only_a_right + [0] * only_b_right + [0] * both_right + [1] * both_wrong
    return np.zeros(len(a), int), np.array(a), np.array(b)


def test_mcnemar_textbook_table():
    # Agresti, "Categorical Data Analysis" (2nd ed., 2002), Table 10.1: the same 1,600 people
    # rate the Prime Minister's performance in two surveys: 794 approve twice, 150 approve
    # then disapprove, 86 disapprove then approve, 570 disapprove twice.
    m = mcnemar(*_predictions(150, 86, 794, 570))
    assert (m["only_a_right"], m["only_b_right"], m["discordant"]) == (150, 86, 236)
    # With the continuity correction: (|150 - 86| - 1)^2 / 236 = 3969 / 236 = 16.82 (Agresti
    # gives z^2 = 17.36 without it), p = 4.1e-5 on 1 df.
    assert m["chi2"] == pytest.approx(3969 / 236)
    assert m["p_chi2"] == pytest.approx(4.11e-5, rel=0.01)
    # The exact test, summed here from the binomial(236, 1/2) tail.
    tail = sum(math.comb(236, k) for k in range(150, 237)) / 2**236
    assert m["p_exact"] == pytest.approx(2 * tail, rel=1e-9)


def test_mcnemar_small_exact_and_no_discordant_pairs():
    # 1 against 6 discordant: two-sided exact p = 2 * (C(7,0) + C(7,1)) / 2^7 = 16 / 128.
    m = mcnemar(*_predictions(1, 6, 50, 3))
    assert m["p_exact"] == pytest.approx(0.125)
    assert m["chi2"] == pytest.approx((5 - 1) ** 2 / 7)
    # Swapping the models changes nothing two-sided.
    labels, a, b = _predictions(1, 6, 50, 3)
    assert mcnemar(labels, b, a)["p_exact"] == pytest.approx(0.125)
    same = mcnemar(*_predictions(0, 0, 10, 2))
    assert (same["discordant"], same["p_exact"], same["p_chi2"]) == (0, 1.0, 1.0)


def test_tost_by_hand_on_two_degrees_of_freedom():
    # Differences 1, 2, 3: mean 2, se 1 / sqrt(3), df 2; margin 3. Student's t with 2 df has
    # the closed form F(x) = 1/2 + x / (2 sqrt(2 + x^2)).
    def cdf(x):
        return 0.5 + x / (2 * math.sqrt(2 + x * x))

    se = 1 / math.sqrt(3)
    r = tost(2.0, se, 2, margin=3.0)
    assert r["p_lower"] == pytest.approx(1 - cdf(5 / se))
    assert r["p_upper"] == pytest.approx(cdf(-1 / se))  # 0.1127
    assert r["p"] == pytest.approx(0.1127, abs=1e-4)
    assert not r["equivalent"]
    # The 90% interval, 2 +- t(0.95, 2) se with t = 2.9200, reaches past the margin.
    assert (r["low"], r["high"]) == pytest.approx((2 - 2.9200 * se, 2 + 2.9200 * se), abs=1e-4)
    assert r["high"] > 3.0
    wide = tost(2.0, se, 2, margin=4.0)
    assert wide["equivalent"] and wide["high"] < 4.0 and wide["p"] < 0.05


def test_tost_matches_scipy_one_sided_t_tests():
    from scipy.stats import ttest_1samp

    d = np.array([0.05, -0.1, 0.12, 0.02, -0.03])
    w = paired_interval([0.0] * 5, list(d))
    r = tost(w["diff"], w["se"], w["df"], margin=0.2)
    assert r["p_lower"] == pytest.approx(ttest_1samp(d, -0.2, alternative="greater").pvalue)
    assert r["p_upper"] == pytest.approx(ttest_1samp(d, 0.2, alternative="less").pvalue)
    assert r["equivalent"] is True
    with pytest.raises(ValueError, match="positive"):
        tost(0.0, 1.0, 3, margin=0.0)


def test_tost_without_spread():
    assert tost(0.1, 0.0, 4, margin=0.2)["equivalent"] is True
    assert tost(0.3, 0.0, 4, margin=0.2)["equivalent"] is False


@pytest.mark.parametrize(
    ("variance", "paired", "expected"),
    [
        # sigma = margin, paired: n = 11 is the first with n >= (t(.95, n-1) + t(.90, n-1))^2:
        # n = 10: (1.8331 + 1.3830)^2 = 10.34 > 10; n = 11: (1.8125 + 1.3722)^2 = 10.14 <= 11.
        (1.0, True, 11),
        # Unpaired, both sigmas = margin (variance 2): n = 17: 2 (1.6939 + 1.3086)^2 = 18.03
        # > 17 (df 32); n = 18: 2 (1.6909 + 1.3070)^2 = 17.97 <= 18 (df 34).
        (2.0, False, 18),
        # Spread far below the margin: the smallest sample, 2.
        (1e-6, True, 2),
    ],
)
def test_seeds_needed_against_t_tables(variance, paired, expected):
    assert seeds_needed(variance, 1.0, paired) == expected


def test_seeds_needed_scales_with_the_variance_and_stops():
    # A quarter of the margin means about 4x the seeds; an impossible demand gives None.
    small, large = seeds_needed(1.0, 0.2, True), seeds_needed(1.0, 0.1, True)
    assert 3.5 < large / small < 4.5
    assert seeds_needed(1e9, 1.0, True) is None
    with pytest.raises(ValueError):
        seeds_needed(1.0, 0.0, True)
