"""Intervals and decisions: pure functions of numbers (bootstrap samples, seed values, intervals).

* Bias-corrected percentile intervals of bootstrap samples (the paired bootstrap over validation
  images). AP on a resampled image set runs higher than on the set itself (the precision envelope
  rises with noise), so a plain percentile interval sits above its estimate and covered the true AP in
  89% of trials at AP ~6 in ``benchmarks/bootstrap_coverage.py``; the bias-corrected one (Efron 1981:
  percentiles shifted by how far the estimate sits from the samples' median) covered 94-95%.
* Student-t intervals of a mean over seeds.
* Training noise: a configuration's mean varies from training run to run as well as with the images.
  Its variance is added to the bootstrap's (per side of the estimate), from the configuration's own
  seeds (s^2 / k, k - 1 degrees of freedom) or, for a single run, from a calibrated per-run sigma; the
  degrees of freedom are Welch-Satterthwaite's. A statistic with a configuration that has neither
  includes no training noise, and says so.
* Several claims decided in one study: Holm's step-down adjustment of their p-values.
* A claim is decided only when the interval of the difference that tests it lies wholly on one side:
  ``direction`` for "A is ahead of B", ``within_margin`` for "B caught up with A" (an equivalence
  margin: the difference is at worst ``-margin``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy.special import stdtr, stdtrit

__all__ = [
    "LEVEL",
    "REPRODUCED",
    "NOT_REPRODUCED",
    "INCONCLUSIVE",
    "SeedSummary",
    "percentile_interval",
    "bias_corrected_interval",
    "bias_corrected_bounds",
    "seed_summary",
    "seed_diff_interval",
    "NoiseTerm",
    "seed_term",
    "calibrated_term",
    "noise_term",
    "Combined",
    "combined_interval",
    "noise_kind",
    "holm",
    "crossover_shares",
    "crossover_share_interval",
    "with_training_noise",
    "direction",
    "within_margin",
]

LEVEL = 0.95
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float] | None:
    """The central ``level`` percentile interval of the finite samples; None when there are none."""
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if not s.size:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(s, [tail, 100 - tail])
    return float(low), float(high)


def bias_corrected_interval(
    samples: np.ndarray, estimate: float | None, level: float = LEVEL
) -> tuple[float, float] | None:
    """Efron's bias-corrected percentile interval of the finite ``samples`` around ``estimate`` (the
    statistic on the data itself): with z0 the normal quantile of the share of samples below the
    estimate (ties count half), the interval runs between the samples' quantiles at
    Phi(2 z0 -+ z_level). Samples centred on the estimate give the percentile interval; None when there
    are no samples or no estimate."""
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if not s.size or estimate is None or not np.isfinite(estimate):
        return None
    normal = NormalDist()
    below = (np.sum(s < estimate) + 0.5 * np.sum(s == estimate)) / s.size
    z0 = normal.inv_cdf(min(max(below, 0.5 / s.size), 1 - 0.5 / s.size))  # finite at the extremes
    z = normal.inv_cdf(1 - (1 - level) / 2)
    low, high = np.percentile(s, [100 * normal.cdf(2 * z0 - z), 100 * normal.cdf(2 * z0 + z)])
    return float(low), float(high)


def bias_corrected_bounds(
    samples: np.ndarray, estimate: float | None, level: float = LEVEL
) -> tuple[float, float | None] | None:
    """:func:`bias_corrected_interval` of samples in which nan stands for "never" (a curve that never
    reaches an AP on that resample): those count as larger than every number, and an upper bound that
    falls on one is None (not reached within the run). None without samples or estimate."""
    s = np.asarray(samples, dtype=float)
    s = np.where(np.isnan(s), np.inf, s)
    if not s.size or estimate is None or not np.isfinite(estimate):
        return None
    normal = NormalDist()
    below = (np.sum(s < estimate) + 0.5 * np.sum(s == estimate)) / s.size
    z0 = normal.inv_cdf(min(max(below, 0.5 / s.size), 1 - 0.5 / s.size))
    z = normal.inv_cdf(1 - (1 - level) / 2)
    q = [normal.cdf(2 * z0 - z), normal.cdf(2 * z0 + z)]
    low, high = np.quantile(s, q, method="inverted_cdf")  # an order statistic: inf stays inf
    if not np.isfinite(low):
        return None
    return float(low), float(high) if np.isfinite(high) else None


@dataclass(frozen=True)
class SeedSummary:
    """Mean, sample std and 95% t-interval of the mean over seeds (std/interval None for one seed)."""

    mean: float
    std: float | None
    n: int
    interval: tuple[float, float] | None

    def as_dict(self) -> dict:
        return {
            "mean": round(self.mean, 4),
            "std": None if self.std is None else round(self.std, 4),
            "n": self.n,
            "interval": None if self.interval is None else [round(v, 4) for v in self.interval],
        }


def seed_summary(values: Sequence[float]) -> SeedSummary | None:
    """Summary of one configuration's seeds; None without values."""
    if not len(values):
        return None
    mean = float(np.mean(values))
    if len(values) < 2:
        return SeedSummary(mean, None, 1, None)
    std = float(np.std(values, ddof=1))
    half = _t975(len(values) - 1) * std / np.sqrt(len(values))
    return SeedSummary(mean, std, len(values), (mean - half, mean + half))


def _t975(df: float) -> float:
    """The two-sided 95% Student-t quantile (the normal one for infinite ``df``)."""
    return float(stdtrit(df, 1 - (1 - LEVEL) / 2)) if np.isfinite(df) else _Z


_Z = NormalDist().inv_cdf(1 - (1 - LEVEL) / 2)


def seed_diff_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    """95% interval of mean(a) - mean(b) from the seeds alone (Welch's standard error, Welch-Satterthwaite
    degrees of freedom); None unless both sides have two seeds or more."""
    if len(a) < 2 or len(b) < 2:
        return None
    return combined_interval(float(np.mean(a) - np.mean(b)), None, [seed_term(a), seed_term(b)]).interval


@dataclass(frozen=True)
class NoiseTerm:
    """Training noise in a configuration's mean AP: ``var`` (AP points squared) of the mean over its
    ``runs``, with ``df`` degrees of freedom (inf: known exactly; 0 runs' worth of nothing when ``kind`` is
    "none"). ``kind``: "seeds" (its own seeds' spread), "calibrated" (a measured per-run sigma) or "none"."""

    var: float
    df: float
    kind: str
    runs: int
    sigma: float | None  # the per-run standard deviation behind ``var``


def seed_term(values: Sequence[float]) -> NoiseTerm:
    """The spread of several training runs of one configuration on the same images: training noise of
    their mean, s^2 / k with k - 1 degrees of freedom."""
    k = len(values)
    s2 = float(np.var(values, ddof=1))
    return NoiseTerm(s2 / k, k - 1, "seeds", k, float(np.sqrt(s2)))


def calibrated_term(runs: int, sigma: float | None, df: float) -> NoiseTerm:
    """Training noise of the mean of ``runs`` runs from a calibrated per-run ``sigma`` (None: not
    calibrated, the term is "none" and adds nothing)."""
    if sigma is None:
        return NoiseTerm(0.0, np.inf, "none", runs, None)
    return NoiseTerm(sigma**2 / runs, df, "calibrated", runs, float(sigma))


def noise_term(values: Sequence[float], sigma: float | None, df: float) -> NoiseTerm:
    """Its own seeds' spread with two seeds or more, else the calibrated sigma (or none)."""
    return seed_term(values) if len(values) >= 2 else calibrated_term(max(len(values), 1), sigma, df)


@dataclass(frozen=True)
class Combined:
    """A statistic's 95% interval with image sampling and training noise: ``se_low`` / ``se_high`` are
    the standard errors below and above ``estimate`` (the bootstrap's may differ), ``df`` the
    Welch-Satterthwaite degrees of freedom of the training part (inf: none)."""

    estimate: float
    se_low: float
    se_high: float
    df: float

    @property
    def interval(self) -> tuple[float, float]:
        t = _t975(self.df)
        return self.estimate - t * self.se_low, self.estimate + t * self.se_high

    def p_value(self, null: float = 0.0) -> float:
        """Two-sided p-value of ``estimate == null``, from the standard error on the null's side."""
        se = self.se_low if self.estimate >= null else self.se_high
        if se == 0:
            return 0.0 if self.estimate != null else 1.0
        tail = float(stdtr(self.df, -abs(self.estimate - null) / se)) if np.isfinite(self.df) else None
        if tail is None:
            tail = NormalDist().cdf(-abs(self.estimate - null) / se)
        return min(1.0, 2 * tail)


def combined_interval(
    estimate: float, image_interval: Sequence[float] | None, terms: Sequence[NoiseTerm]
) -> Combined | None:
    """Image sampling and training noise of ``estimate`` (a difference of configuration means, or one
    mean): the bootstrap interval's half-widths, read as normal standard errors on each side, add in
    variance to the training terms (one per configuration in the statistic); the degrees of freedom are
    Welch-Satterthwaite's over the terms (the image part counts as known). None when neither the images
    nor any training run says anything about its spread."""
    var = sum(t.var for t in terms)
    if image_interval is None and all(t.kind == "none" for t in terms):
        return None
    se_img = (0.0, 0.0)
    if image_interval is not None:
        se_img = ((estimate - image_interval[0]) / _Z, (image_interval[1] - estimate) / _Z)
    df = _welch_satterthwaite(terms)
    low, high = (float(np.sqrt(max(s, 0.0) ** 2 + var)) for s in se_img)
    return Combined(float(estimate), low, high, float(df))


def _welch_satterthwaite(terms: Sequence[NoiseTerm]) -> float:
    """Degrees of freedom of the summed variance. Calibrated terms all scale one estimated sigma, so they
    count as one variance estimate (their sum, the calibration's df), not as independent ones."""
    calibrated = [t for t in terms if t.kind == "calibrated"]
    parts = [(t.var, t.df) for t in terms if t.kind == "seeds"]
    if calibrated:
        parts.append((sum(t.var for t in calibrated), min(t.df for t in calibrated)))
    parts = [(v, d) for v, d in parts if v > 0 and np.isfinite(d)]
    if not parts:
        return np.inf
    return sum(v for v, _ in parts) ** 2 / sum(v**2 / d for v, d in parts)


def noise_kind(terms: Sequence[NoiseTerm]) -> str:
    """What training noise a statistic over these configurations includes: "none" when one lacks it."""
    kinds = {t.kind for t in terms}
    return "none" if "none" in kinds else "calibrated" if "calibrated" in kinds else "seeds"


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (Holm 1979): the i-th smallest of m is
    multiplied by m - i + 1, and the adjusted values are kept non-decreasing in that order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [1.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def with_training_noise(
    draws: np.ndarray, terms: Sequence[NoiseTerm], seed: int | Sequence[int]
) -> np.ndarray:
    """``draws`` (image resamples of a difference) each with one draw of the training noise its
    configurations carry added: Student-t at their Welch-Satterthwaite degrees of freedom, scaled to
    their summed variance (normal at infinite df), so a quantity read off the draws (not just an
    interval) includes run-to-run spread. Unchanged when no term has variance."""
    var = sum(t.var for t in terms)
    draws = np.asarray(draws, dtype=float)
    if var <= 0:
        return draws
    df = _welch_satterthwaite(terms)
    rng = np.random.default_rng(seed)
    unit = rng.standard_normal(draws.shape) if not np.isfinite(df) else rng.standard_t(df, draws.shape)
    if np.isfinite(df) and df > 2:  # a t variable has variance df / (df - 2): scale it back to one
        unit = unit * np.sqrt((df - 2) / df)
    return draws + np.sqrt(var) * unit


def crossover_shares(diffs: Sequence[np.ndarray], shares: Sequence[float], margin: float) -> np.ndarray:
    """Per resample, the crossover: walking the regimes from the most data down (``diffs[i]``: random
    minus pre-trained on each resample at data share ``shares[i]``), the last share before the first
    regime whose difference falls below ``-margin``. inf where even the most data is below (no share);
    ``shares[-1]`` where every regime stays within (the crossover lies at or below it)."""
    d = np.stack([np.asarray(x, dtype=float) for x in diffs])  # regimes x resamples
    within = d >= -margin
    reached = np.where(within.all(axis=0), len(shares), np.argmin(within, axis=0))
    table = np.array([np.inf, *shares], dtype=float)
    return table[reached]


def crossover_share_interval(
    diffs: Sequence[np.ndarray], shares: Sequence[float], margin: float, level: float = LEVEL
) -> dict | None:
    """The central ``level`` range of :func:`crossover_shares` (order statistics: only studied shares
    occur). ``interval`` [low, high]: high None when it falls on resamples not within the margin even
    with the most data (open above); ``open_below`` when low is the smallest share studied, which those
    resamples never left (the crossover may lie lower). ``within_everywhere`` / ``never_within``: the
    fractions of resamples at either end. None without resamples."""
    if not len(diffs) or not np.asarray(diffs[0]).size:
        return None
    per = crossover_shares(diffs, shares, margin)
    tail = (1 - level) / 2
    low, high = np.quantile(per, [tail, 1 - tail], method="inverted_cdf")
    return {
        "interval": [float(low) if np.isfinite(low) else None, float(high) if np.isfinite(high) else None],
        "open_below": bool(low == shares[-1]),
        "open_above": bool(not np.isfinite(high)),
        "within_everywhere": round(float(np.mean(per == shares[-1])), 4),
        "never_within": round(float(np.mean(np.isinf(per))), 4),
        "resamples": int(per.size),
    }


def direction(interval: Sequence[float] | None, sign: int = 1) -> str:
    """Claim "difference has sign ``sign``": reproduced when the interval lies strictly on that side, not
    reproduced when it lies wholly on the other side (zero included), else inconclusive."""
    if interval is None:
        return INCONCLUSIVE
    low, high = (interval[0], interval[1]) if sign > 0 else (-interval[1], -interval[0])
    if low > 0:
        return REPRODUCED
    if high <= 0:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def within_margin(interval: Sequence[float] | None, margin: float) -> str:
    """Claim "B caught up with A" on the difference B - A: reproduced when the whole interval is above
    ``-margin`` (level within the margin, or ahead), not reproduced when it is wholly below, else
    inconclusive."""
    if interval is None:
        return INCONCLUSIVE
    if interval[0] >= -margin:
        return REPRODUCED
    if interval[1] < -margin:
        return NOT_REPRODUCED
    return INCONCLUSIVE
