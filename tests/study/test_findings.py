"""Findings from arms whose AP and intervals come from hand-made detections on a hand-made val set."""

from __future__ import annotations

import pytest

from scratchlab.study.verdict import compute_verdict, verdict_lines
from tests.study.conftest import predictions

GOOD, POOR = predictions(1.0), predictions(8.0, miss=0.5, seed=1)
# A measured per-run sigma of 0.5 AP points (every metric), as `study --calibrate-noise` writes it.
CALIBRATED = {"sigma": {t: {m: 0.5 for m in ("AP", "AP50", "AP75")} for t in ("bbox", "segm")}, "df": 10}


def _only(v: dict, kind: str, **match) -> dict:
    hits = [f for f in v["findings"][kind] if all(f[k] == x for k, x in match.items())]
    assert len(hits) == 1, hits
    return hits[0]


def _pair(make_arm, score, pt_preds, rd_preds, pt_early=None, rd_early=None, schedule=3.0):
    """Both starts at the same schedule, evaluated twice before the first LR drop (at 50 and 100)."""
    pt_curve = {50: pt_early or pt_preds, 100: pt_early or pt_preds}
    rd_curve = {50: rd_early or rd_preds, 100: rd_early or rd_preds}
    pt = score(make_arm("classify_gn_3x", "classify", 1.0, schedule=schedule), pt_preds, pt_curve)
    rd = score(make_arm("scratch_gn_3x", "random", 1.0, schedule=schedule), rd_preds, rd_curve)
    return [pt, rd]


def test_identical_arms_give_a_zero_interval(make_arm, score):
    v = compute_verdict(_pair(make_arm, score, GOOD, GOOD), resamples=200)
    early = _only(v, "early", task="bbox")
    assert early["interval"] == [0.0, 0.0] and early["basis"] == "images"
    # No lead at all: the estimate sits on the claim's null, so no test can reject it.
    assert early["p"] == 1.0 and early["outcome"] == "inconclusive"
    cu = _only(v, "catch_up", task="bbox")
    # Level, far inside the margin; one run per arm and no calibration: only this run's word.
    assert cu["interval"] == [0.0, 0.0] and cu["outcome"] == "consistent"
    assert cu["noise"] == {"kind": "none", "seeds": 1, "sigma": None}


def test_clearly_better_arm_excludes_zero(make_arm, score):
    arms = _pair(make_arm, score, GOOD, POOR, pt_early=GOOD, rd_early=POOR)
    v = compute_verdict(arms, resamples=300, noise=CALIBRATED)
    early = _only(v, "early", task="bbox")
    lo, hi = early["interval"]
    assert 0 < lo <= early["diff"] <= hi and early["outcome"] == "reproduced"
    assert early["noise"] == {"kind": "calibrated", "seeds": 1, "sigma": 0.5}
    assert early["p"] <= early["p_adjusted"] < 0.05
    assert early["arms"] == ["classify_gn_3x", "scratch_gn_3x"] and early["iterations"] == [50, 100]
    cu = _only(v, "catch_up", task="bbox")
    assert cu["interval"][1] < -1.0 and cu["outcome"] == "not reproduced"
    paper = {c["claim"].split(" (")[0]: c for c in v["paper"]}
    check = paper["random init catches up with pre-training at the same long schedule"]
    assert check["result"] == "not reproduced" and check["interval"] == cu["interval"]
    assert check["arms"] == ["scratch_gn_3x", "classify_gn_3x"]
    assert check["compared"].startswith("random init (GN, 3x) - classification pre-training (GN, 3x)")


def test_same_seed_same_interval_other_seed_other(make_arm, score):
    arms = _pair(make_arm, score, GOOD, predictions(1.5, seed=2))
    a = _only(compute_verdict(arms, resamples=200, seed=0), "catch_up")["interval"]
    b = _only(compute_verdict(arms, resamples=200, seed=0), "catch_up")["interval"]
    c = _only(compute_verdict(arms, resamples=200, seed=1), "catch_up")["interval"]
    assert a == b and a != c


def test_close_arms_are_inconclusive(make_arm, score):
    """Two equally good detectors (different noise): the lead's interval straddles zero."""
    arms = _pair(make_arm, score, predictions(3.0, seed=3), predictions(3.0, seed=4))
    early = _only(compute_verdict(arms, resamples=300), "early")
    assert early["interval"][0] < 0 < early["interval"][1] and early["outcome"] == "inconclusive"


def test_equivalence_margin_decides_catch_up(make_arm, score):
    """Scratch 0.3 AP behind with an interval about +-5 AP wide: caught up only within a wide margin."""
    arms = _pair(make_arm, score, GOOD, predictions(1.0, seed=5))
    wide = _only(compute_verdict(arms, resamples=300, margin=8.0, noise=CALIBRATED), "catch_up")
    assert -8.0 < wide["interval"][0] < -1.0 and wide["outcome"] == "reproduced" and wide["margin"] == 8.0
    narrow = _only(compute_verdict(arms, resamples=300, margin=1.0, noise=CALIBRATED), "catch_up")
    assert narrow["outcome"] == "inconclusive"


def test_seeds_are_resampled_and_summarised(make_arm, score):
    seeds = [
        score(
            make_arm(f"scratch_gn_3x_s{i}", "random", 1.0, schedule=3.0, seed=i),
            predictions(2.0, seed=10 + i),
        )
        for i in range(3)
    ]
    pt = score(make_arm("classify_gn_3x", "classify", 1.0, schedule=3.0), GOOD)
    v = compute_verdict([pt, *seeds], resamples=200)
    group = next(g for g in v["groups"] if g["init"] == "random")
    ap = group["bbox"]["AP"]
    vals = [a["final"]["bbox"]["AP"] for a in seeds]
    assert ap["n"] == 3 and ap["mean"] == pytest.approx(sum(vals) / 3, abs=1e-4)
    assert ap["std"] > 0 and ap["interval"][0] < ap["mean"] < ap["interval"][1]  # t over seeds
    assert ap["bootstrap_interval"][0] < ap["mean"] < ap["bootstrap_interval"][1]
    assert _only(v, "catch_up")["arms"] == [a["name"] for a in seeds] + ["classify_gn_3x"]


def test_poorly_normalised_scratch(make_arm, score):
    gn = score(make_arm("scratch_gn_1x", "random", 1.0), GOOD)
    bn = score(make_arm("scratch_bn_1x", "random", 1.0, norm="BN"), POOR)
    v = compute_verdict([gn, bn], resamples=200, noise=CALIBRATED)
    norm = _only(v, "normalisation")
    assert norm["interval"][1] < 0 and norm["outcome"] == "reproduced"
    uncalibrated = _only(compute_verdict([gn, bn], resamples=200), "normalisation")
    assert uncalibrated["interval"][1] < 0 and uncalibrated["outcome"] == "consistent"
    same = score(make_arm("scratch_bn_1x", "random", 1.0, norm="BN"), GOOD)
    tie = _only(compute_verdict([gn, same], resamples=50, noise=CALIBRATED), "normalisation")
    assert tie["diff"] == 0 and tie["outcome"] == "inconclusive"


def test_without_per_image_data_one_seed_cannot_decide(make_arm):
    arms = [
        make_arm("classify_gn_3x", "classify", 30.0, schedule=3.0),
        make_arm("scratch_gn_3x", "random", 20.0, schedule=3.0),
    ]
    v = compute_verdict(arms)
    cu = _only(v, "catch_up")
    assert cu["interval"] is None and cu["basis"] == "none" and cu["outcome"] == "inconclusive"
    assert "(no interval)" in next(x for x in verdict_lines(v) if "(margin 1 AP)" in x)


def test_nothing_learned_decides_nothing(make_arm, score):
    """Both arms at 0 AP: the interval is [0, 0], yet neither 'caught up' nor 'not ahead' is shown."""
    nothing = [{"image_id": 1, "category_id": 1, "bbox": [90.0, 90.0, 5.0, 5.0], "score": 0.5}]
    v = compute_verdict(_pair(make_arm, score, nothing, nothing), resamples=50)
    for kind in ("early", "catch_up"):
        f = _only(v, kind)
        assert f["a"] == f["b"] == 0
        assert f["interval"] == [0.0, 0.0] and f["outcome"] == "inconclusive", kind
    # Curves that sit at one AP50 (0) never span a range to match along: not testable, said why.
    loc = _only(v, "localisation")
    assert loc["outcome"] == "not testable here" and loc["untestable"] == "curves_never_meet"


def _regime(make_arm, score, data, images, pt_preds, rd_preds):
    """Classification-pre-trained 1x and scratch 3x at one data regime, on the same validation images."""
    tag = data.replace("%", "pct")
    return [
        score(make_arm(f"cls_{tag}", "classify", 1.0, data=data, data_images=images), pt_preds),
        score(make_arm(f"rnd_{tag}", "random", 1.0, schedule=3.0, data=data, data_images=images), rd_preds),
    ]


def test_data_regime_interaction_and_crossover(make_arm, score):
    """Level at 100% and 25%, scratch far behind at 10%: the lead grows with less data, and random init
    stays within the margin down to 25% of the data."""
    arms = (
        _regime(make_arm, score, "100%", 1000, GOOD, GOOD)
        + _regime(make_arm, score, "25%", 250, GOOD, GOOD)
        + _regime(make_arm, score, "10%", 100, GOOD, POOR)
    )
    # Two calibrated runs of sigma 0.5 give about +-1.6 AP at a tie: a 2 AP margin can be met.
    v = compute_verdict(arms, resamples=300, noise=CALIBRATED, margin=2.0)
    dr = _only(v, "data_regime", task="bbox")
    assert dr["small"] == "10%" and dr["full"] == "100%" and dr["basis"] == "images"
    assert dr["b"] == 0 and dr["diff"] == dr["a"] > 0 and dr["interval"][0] > 0
    assert dr["outcome"] == "reproduced" and len(dr["arms"]) == 4
    cross = _only(v, "crossover", task="bbox")
    assert cross["share"] == 0.25 and cross["below"] == "10%"
    assert [r["within_margin"] for r in cross["regimes"]] == ["reproduced", "reproduced", "not reproduced"]
    assert "random init stays within 2 AP of pre-training down to 25% of the data" in v["headline"]
    # No interaction: the same gap at every regime leaves the claim undecided.
    flat = (
        _regime(make_arm, score, "100%", 1000, GOOD, POOR)
        + _regime(make_arm, score, "25%", 250, GOOD, POOR)
        + _regime(make_arm, score, "10%", 100, GOOD, POOR)
    )
    none = _only(compute_verdict(flat, resamples=300, noise=CALIBRATED), "data_regime", task="bbox")
    assert none["diff"] == 0 and none["outcome"] == "inconclusive"
    cross = _only(compute_verdict(flat, resamples=300, noise=CALIBRATED, margin=2.0), "crossover")
    assert cross["share"] is None and cross["data"] == "100%"


def test_early_reach_iterations_with_an_interval(make_arm, score):
    """Random init at POOR through the window and GOOD at the end: it reaches the pre-trained AP of
    iteration 100 between its last evaluation (100) and its final one (600), with an interval over the
    images inside that stretch."""
    pt = score(make_arm("cls", "classify", 1.0, schedule=3.0), GOOD, {50: GOOD, 100: GOOD})
    rd = score(make_arm("rnd", "random", 1.0, schedule=3.0), GOOD, {50: POOR, 100: POOR})
    early = _only(compute_verdict([pt, rd], resamples=200, noise=CALIBRATED), "early")
    assert early["reach_at"] == 100 and early["reach_basis"] == "images"
    assert 100 < early["reach_iteration"] <= 600
    low, high = early["reach_interval"]
    assert 100 <= low <= early["reach_iteration"] and (high is None or high <= 600)


def test_keypoints_claim_on_keypoint_ap(make_arm):
    arms = [
        make_arm("cls", "classify", 30.0, schedule=2.0),
        make_arm("rnd", "random", 29.0, schedule=2.0),
    ]
    for arm, ap in zip(arms, (50.0, 49.8), strict=True):
        arm["final"]["keypoints"] = {"AP": ap, "AP50": ap + 20, "AP75": ap + 5}
    v = compute_verdict(arms, noise={"sigma": {"keypoints": {"AP": 0.2}}, "df": 10})
    kp = _only(v, "keypoints", task="keypoints")
    assert kp["diff"] == pytest.approx(-0.2) and kp["schedule"] == 2.0 and kp["outcome"] == "reproduced"
    check = next(c for c in v["paper"] if "keypoint AP" in c["claim"])
    assert check["result"] == "reproduced" and "final keypoint AP at the same schedule" in check["compared"]
