"""Intervals and decisions on hand-made numbers."""

from statistics import NormalDist

import numpy as np
import pytest
from scipy.special import stdtrit

from scratchlab.study.stats import (
    bias_corrected_interval,
    calibrated_term,
    combined_interval,
    crossover_share_interval,
    crossover_shares,
    direction,
    holm,
    noise_kind,
    percentile_interval,
    seed_diff_interval,
    seed_summary,
    seed_term,
    with_training_noise,
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
    half = 4.3027 * 1.0 / np.sqrt(3)  # t(0.975, 2 df)
    assert s.interval == pytest.approx((30 - half, 30 + half))
    one = seed_summary([12.0])
    assert one.std is None and one.interval is None
    assert seed_summary([]) is None


def test_seed_diff_interval_needs_two_seeds_a_side():
    assert seed_diff_interval([1.0], [2.0, 3.0]) is None
    lo, hi = seed_diff_interval([30.0, 31.0, 32.0], [20.0, 21.0, 22.0])
    assert lo < 10.0 < hi and lo > 0


def test_seed_diff_interval_uses_welch_satterthwaite_degrees_of_freedom():
    # Unequal spreads: s^2/k = 4/4 = 1 and 1/2 = 0.5, so se = sqrt(1.5) and
    # df = 1.5^2 / (1^2 / 3 + 0.5^2 / 1) = 2.25 / (1/3 + 1/4) = 3.857...
    a, b = [0.0, 2.0, 2.0, 4.0], [1.0, 2.0]
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 2
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 1)
    lo, hi = seed_diff_interval(a, b)
    half = float(stdtrit(df, 0.975)) * np.sqrt(va + vb)
    assert (lo, hi) == pytest.approx((0.5 - half, 0.5 + half))


def test_training_noise_adds_in_variance_to_each_side_of_the_bootstrap_interval():
    # Image interval [8, 13] around 10: standard errors 2/1.96 below, 3/1.96 above; the seed term of a
    # mean over 2 seeds at 9 and 11 has variance 2/2 = 1 with 1 degree of freedom.
    seeds = seed_term([9.0, 11.0])
    assert (seeds.var, seeds.df, seeds.kind, seeds.runs) == (1.0, 1, "seeds", 2)
    c = combined_interval(10.0, (8.0, 13.0), [seeds])
    z = NormalDist().inv_cdf(0.975)
    t = float(stdtrit(1, 0.975))
    assert c.df == 1 and c.se_low == pytest.approx(np.sqrt((2 / z) ** 2 + 1))
    assert c.interval == pytest.approx(
        (10 - t * np.sqrt((2 / z) ** 2 + 1), 10 + t * np.sqrt((3 / z) ** 2 + 1))
    )
    # No training term: the bootstrap interval comes back as it was.
    none = calibrated_term(1, None, np.inf)
    assert combined_interval(10.0, (8.0, 13.0), [none]).interval == pytest.approx((8.0, 13.0))
    assert combined_interval(10.0, None, [none]) is None and noise_kind([seeds, none]) == "none"
    # A calibrated sigma of one run: var sigma^2 / runs with the calibration's degrees of freedom.
    cal = calibrated_term(1, 0.5, 12)
    assert (cal.var, cal.df, cal.kind) == (0.25, 12, "calibrated")
    assert noise_kind([seeds, cal]) == "calibrated" and noise_kind([seeds, seeds]) == "seeds"
    both = combined_interval(1.0, None, [seeds, cal])
    assert both.df == pytest.approx(1.25**2 / (1**2 / 1 + 0.25**2 / 12))


def test_p_value_from_the_side_facing_the_null():
    c = combined_interval(3.0, (1.0, 7.0), [calibrated_term(1, None, np.inf)])
    z = NormalDist().inv_cdf(0.975)
    assert c.p_value() == pytest.approx(2 * NormalDist().cdf(-3.0 / (2.0 / z)))
    assert c.p_value(null=5.0) == pytest.approx(2 * NormalDist().cdf(-2.0 / (4.0 / z)))
    assert c.p_value(null=3.0) == pytest.approx(1.0)


def test_holm_on_hand_made_p_values():
    # m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> 0.04, 0.06, 0.06 (kept non-decreasing), 0.5.
    assert holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert holm([0.4, 0.9]) == pytest.approx([0.8, 0.9])
    assert holm([]) == []


SHARES = [1.0, 0.25, 0.1]


def _regimes(*columns: list[float]) -> list[np.ndarray]:
    """Per-regime draws from per-resample columns: ``columns[b][i]`` is resample b at regime i."""
    return [np.array(row, dtype=float) for row in zip(*columns, strict=True)]


def test_crossover_shares_per_resample():
    # Within (>= -1) at 100% and 25%, out at 10%; out at 25% though back at 10% (the walk stops at the
    # first regime out); out even at 100%; within at every regime; exactly on the margin counts within.
    diffs = _regimes([0, 0, -3], [0, -2, 0], [-2, 0, 0], [0, 0, 0], [-1, -1, -1.5])
    assert crossover_shares(diffs, SHARES, 1.0).tolist() == [0.25, 1.0, np.inf, 0.1, 0.25]


def test_crossover_share_interval_closed_and_open_ends():
    # 60 resamples cross below 25%, 40 below 100%: the 95% range runs from 25% to 100%, closed.
    closed = crossover_share_interval(_regimes(*[[0, 0, -3]] * 60, *[[0, -3, -3]] * 40), SHARES, 1.0)
    assert closed["interval"] == [0.25, 1.0] and not closed["open_below"] and not closed["open_above"]
    assert closed["within_everywhere"] == 0 and closed["never_within"] == 0 and closed["resamples"] == 100
    # 10 of 100 never leave the margin: the low end is the smallest share studied, open below it.
    low = crossover_share_interval(_regimes(*[[0, 0, 0]] * 10, *[[0, 0, -3]] * 90), SHARES, 1.0)
    assert low["interval"] == [0.1, 0.25] and low["open_below"] and low["within_everywhere"] == 0.1
    # 5 of 100 are out even with the most data: no share at the high end, open above.
    high = crossover_share_interval(_regimes(*[[-3, 0, 0]] * 5, *[[0, 0, -3]] * 95), SHARES, 1.0)
    assert high["interval"] == [0.25, None] and high["open_above"] and high["never_within"] == 0.05
    # 2 of 100 out with the most data lie beyond the 97.5th percentile: the range stays closed.
    few = crossover_share_interval(_regimes(*[[-3, 0, 0]] * 2, *[[0, 0, -3]] * 98), SHARES, 1.0)
    assert few["interval"] == [0.25, 0.25] and not few["open_above"] and few["never_within"] == 0.02
    assert crossover_share_interval([np.array([])] * 3, SHARES, 1.0) is None


def test_with_training_noise_adds_the_terms_variance():
    draws = np.zeros(200_000)
    none = calibrated_term(1, None, np.inf)
    assert np.array_equal(with_training_noise(draws, [none, none], 0), draws)
    # Two calibrated runs of sigma 0.5: variance 0.5, df 10 (t scaled to that variance), seeded.
    terms = [calibrated_term(1, 0.5, 10), calibrated_term(1, 0.5, 10)]
    noisy = with_training_noise(draws, terms, [3, 1])
    assert np.var(noisy) == pytest.approx(0.5, rel=0.03) and abs(np.mean(noisy)) < 0.01
    assert np.array_equal(noisy, with_training_noise(draws, terms, [3, 1]))
    assert not np.array_equal(noisy, with_training_noise(draws, terms, [3, 2]))
    # Heavier tails than the normal at 10 degrees of freedom.
    z = noisy / np.sqrt(0.5)
    assert np.mean(np.abs(z) > 3) > 2 * 0.0027
