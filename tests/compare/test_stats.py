"""The comparison's statistics on fixed inputs, against values computed by hand or taken from
standard tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lightning_mnist.compare.stats import (
    agreement,
    confusion_matrix,
    per_class_accuracy,
    time_to_target,
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
