"""The crossover's share and its interval from hand-made per-image data across data regimes."""

from __future__ import annotations

from scratchlab.study.verdict import compute_verdict
from tests.study.test_findings import CALIBRATED, GOOD, POOR, _only, _regime


def _arms(make_arm, score, *preds):
    """Pre-trained at GOOD and random init at ``preds`` for 100%, 25% and 10% of the data."""
    regimes = (("100%", 1000), ("25%", 250), ("10%", 100))
    return [
        a for (d, n), rd in zip(regimes, preds, strict=True) for a in _regime(make_arm, score, d, n, GOOD, rd)
    ]


def test_crossover_share_interval_from_the_resamples(make_arm, score):
    """Level at 100% and 25%, far behind at 10%: the resamples with their calibrated training noise
    cross below 25% (the few that the noise pushes out at 100% or 25% lie beyond the 95% range)."""
    arms = _arms(make_arm, score, GOOD, GOOD, POOR)
    v = compute_verdict(arms, resamples=300, noise=CALIBRATED, margin=2.0)
    cross = _only(v, "crossover", task="bbox")
    iv = cross["share_interval"]
    assert iv["interval"] == [0.25, 0.25] and not iv["open_below"] and not iv["open_above"]
    assert iv["resamples"] == 300 and iv["noise"] == "calibrated" and cross["share_estimate"] == 0.25
    assert iv["within_everywhere"] == 0 and iv["never_within"] < 0.025
    assert "the share where resamples cross (training noise included) lies in [25%, 25%]" in v["headline"]
    # Without calibration (one run per arm) the draws carry the images alone, and the text says so.
    alone = _only(compute_verdict(arms, resamples=300, margin=2.0), "crossover", task="bbox")
    assert alone["share_interval"]["noise"] == "none" and alone["share_interval"]["never_within"] == 0


def test_crossover_share_interval_open_ended(make_arm, score):
    # Level at every regime: every resample stays within, the crossover lies at or below 10%.
    level = compute_verdict(_arms(make_arm, score, GOOD, GOOD, GOOD), resamples=200, margin=2.0)
    iv = _only(level, "crossover", task="bbox")["share_interval"]
    assert iv["interval"] == [0.1, 0.1] and iv["open_below"] and iv["within_everywhere"] == 1.0
    sentence = "[at or below 10%, 10%], open-ended: 100% of resamples stay within at every regime"
    assert sentence in level["headline"]
    # Behind at every regime: no resample is within even with the most data, no share at either end.
    behind = compute_verdict(_arms(make_arm, score, POOR, POOR, POOR), resamples=200, margin=2.0)
    cross = _only(behind, "crossover", task="bbox")
    assert cross["share"] is None and cross["share_estimate"] is None
    iv = cross["share_interval"]
    assert iv["interval"] == [None, None] and iv["never_within"] == 1
    sentence = "on 100% of resamples random init is not within the margin even with the most data"
    assert sentence in behind["headline"]
    # Without per-image resamples there is nothing to read the share's spread from.
    flat = _only(compute_verdict(_arms(make_arm, score, GOOD, GOOD, POOR), resamples=0), "crossover")
    assert flat["share_interval"] is None
