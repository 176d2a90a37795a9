"""Intervals and decisions on hand-made numbers."""

import numpy as np
import pytest

from scratchlab.study.stats import (
    bias_corrected_interval,
    direction,
    mean_over_resampled_seeds,
    percentile_interval,
    seed_diff_interval,
    seed_summary,
    within_margin,
)


@pytest.mark.parametrize(
    "interval,sign,want",
    [
        ((0.5, 2.0), 1, "reproduced"),  # wholly above zero
        ((-2.0, -0.5), 1, "not reproduced"),  # wholly below
        ((0.0, 0.0), 1, "not reproduced"),  # identical arms: no lead at all
        ((-0.5, 1.5), 1, "inconclusive"),  # straddles zero
        ((-2.0, -0.5), -1, "reproduced"),  # a claim that the difference is negative
        ((0.0, 1.0), -1, "not reproduced"),
        (None, 1, "inconclusive"),  # no interval: nothing can be decided
    ],
)
def test_direction(interval, sign, want):
    assert direction(interval, sign) == want


@pytest.mark.parametrize(
    "interval,want",
    [
        ((-0.8, 0.6), "reproduced"),  # equivalent: within the 1 AP margin
        ((0.5, 3.0), "reproduced"),  # scratch ahead
        ((-4.0, -1.5), "not reproduced"),  # behind by more than the margin for sure
        ((-2.0, 0.5), "inconclusive"),  # could be either
        (None, "inconclusive"),
    ],
)
def test_within_margin(interval, want):
    assert within_margin(interval, 1.0) == want


def test_percentile_interval_ignores_nan_and_covers_the_middle():
    s = np.concatenate([np.arange(1000.0), [np.nan]])
    lo, hi = percentile_interval(s)
    assert lo == pytest.approx(24.975) and hi == pytest.approx(974.025)
    assert percentile_interval(np.array([np.nan])) is None


def test_bias_corrected_interval_equals_percentile_when_samples_centre_on_the_estimate():
    s = np.concatenate([np.arange(1001.0), [np.nan]])  # median 500
    assert bias_corrected_interval(s, 500.0) == pytest.approx(percentile_interval(s))


def test_bias_corrected_interval_follows_an_estimate_below_the_samples():
    # Draws that run high (as AP does on resampled images): the interval moves down towards the estimate.
    draws = np.random.default_rng(0).normal(1.0, 1.0, 20000)
    low, high = bias_corrected_interval(draws, 0.0)  # 16% of the draws lie below the estimate
    assert low == pytest.approx(1.0 - 3.96, abs=0.1) and high == pytest.approx(1.0 - 0.04, abs=0.1)
    p_low, p_high = percentile_interval(draws)
    assert low < p_low and high < p_high


def test_bias_corrected_interval_is_finite_at_the_extremes_and_none_without_data():
    draws = np.arange(100.0)
    low, high = bias_corrected_interval(draws, -5.0)  # every draw above the estimate
    assert low == pytest.approx(0.0, abs=1e-3) and low <= high < 1.0  # the lowest draws, not -inf
    assert bias_corrected_interval(draws, None) is None
    assert bias_corrected_interval(np.array([np.nan]), 1.0) is None


def test_seed_summary_t_interval():
    s = seed_summary([29.0, 31.0, 30.0])
    assert (s.mean, s.std, s.n) == (30.0, 1.0, 3)
    half = 4.303 * 1.0 / np.sqrt(3)  # t(0.975, 2 df)
    assert s.interval == pytest.approx((30 - half, 30 + half))
    one = seed_summary([12.0])
    assert one.std is None and one.interval is None
    assert seed_summary([]) is None


def test_seed_diff_interval_needs_two_seeds_a_side():
    assert seed_diff_interval([1.0], [2.0, 3.0]) is None
    lo, hi = seed_diff_interval([30.0, 31.0, 32.0], [20.0, 21.0, 22.0])
    assert lo < 10.0 < hi and lo > 0


def test_resampled_seeds_keep_one_seed_and_mix_several():
    rows = np.array([[1.0, 2.0, 3.0]])
    assert np.array_equal(mean_over_resampled_seeds(rows, np.random.default_rng(0)), rows[0])
    two = np.array([[0.0] * 200, [10.0] * 200])
    mixed = mean_over_resampled_seeds(two, np.random.default_rng(0))
    assert set(np.unique(mixed)) == {0.0, 5.0, 10.0}  # both seeds drawn, either one twice
