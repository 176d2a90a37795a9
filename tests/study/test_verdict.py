"""compute_verdict on hand-made arms: each finding, seeds, failures and bad input."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from scratchlab.study.verdict import compute_verdict


def _one(findings: list[dict], **match: object) -> dict:
    hits = [f for f in findings if all(f.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, (match, findings)
    return hits[0]


def _lines_with(verdict: dict, *words: str) -> list[str]:
    return [x for x in verdict["lines"] if all(w in x for w in words)]


def test_pretrained_ahead_early_then_caught_up(caught_up_arms):
    v = compute_verdict(caught_up_arms)
    early = _one(v["findings"]["early"], init="classify", task="bbox")
    # The early window ends at the 1x arm's first LR drop (200 - 133 = 67): points 25 and 50.
    assert early["window_end"] == 67 and [p["iteration"] for p in early["points"]] == [25, 50]
    # Random init is represented by its longest schedule (3x, final 31.0, tau 150).
    p25 = early["points"][0]
    want_pt, want_rd = 30.0 * (1 - math.exp(-25 / 30)), 31.0 * (1 - math.exp(-25 / 150))
    assert p25["pretrained"]["mean"] == pytest.approx(want_pt, abs=1e-2)
    assert p25["random"]["mean"] == pytest.approx(want_rd, abs=1e-2)
    assert all(p["diff"] > 0 for p in early["points"])
    assert f"led random init by {want_pt - want_rd:.1f} bbox AP" in _lines_with(v, "Early convergence")[0]

    cu = _one(v["findings"]["catch_up"], init="classify", task="bbox")
    assert cu["caught_up"] and cu["schedule"] == 2.0  # 29.4 is within 1.0 of 30.0; 1x (22.0) is not
    assert cu["diff"] == pytest.approx(-0.6)
    assert _lines_with(
        v,
        "random init reached the classification pre-training bbox AP (30.0 at 1x) within 1.0 AP at 2x (29.4)",
    )
    # A stricter tolerance moves the catch-up to 3x, where random init is ahead.
    strict = _one(compute_verdict(caught_up_arms, tol=0.5)["findings"]["catch_up"], init="classify")
    assert strict["schedule"] == 3.0 and strict["diff"] == pytest.approx(1.0)


def test_never_caught_up(never_arms):
    v = compute_verdict(never_arms)
    cu = _one(v["findings"]["catch_up"], init="classify", task="bbox")
    assert not cu["caught_up"] and cu["schedule"] == 2.0 and cu["diff"] == pytest.approx(-5.0)
    assert _lines_with(v, "never caught up", "at its longest schedule, 2x, it was 5.0 AP behind (25.0)")
    assert not v["findings"]["normalisation"] and not v["findings"]["direct_vs_classify"]


def test_small_data_regime_pretraining_leads(regime_arms):
    v = compute_verdict(regime_arms)
    gaps = {g["data"]: g for g in v["findings"]["regimes"] if g["task"] == "bbox"}
    assert gaps["1k"]["diff"] == pytest.approx(4.2) and gaps["100%"]["diff"] == pytest.approx(-0.5)
    assert _lines_with(
        v,
        "With data '1k' (1000 images)",
        "classification pre-training led random init by 4.2 bbox AP (20.1 at 1x vs 15.9 at 3x)",
    )
    assert _lines_with(v, "With 100% of the data", "random init led classification pre-training by 0.5")
    trend = _one(v["findings"]["regime_trend"], init="classify", task="bbox")
    assert trend["largest_with_least_data"] and trend["gaps"] == {"100%": -0.5, "1k": 4.2}
    assert v["findings"]["data_regimes"][0]["data"] == "100%"  # most data first
    # No segm in these arms: no segm sentence may be written.
    assert not _lines_with(v, "segm")


def test_trend_not_claimed_when_false(make_arm):
    arms = [
        make_arm("c_full", "classify", 30.0),
        make_arm("r_full", "random", 25.0),
        make_arm("c_1k", "classify", 20.0, data="1k", data_images=1000),
        make_arm("r_1k", "random", 19.0, data="1k", data_images=1000),
    ]
    trend = compute_verdict(arms)["findings"]["regime_trend"][0]
    assert not trend["largest_with_least_data"] and "not largest" in trend["line"]


def test_seed_spread_makes_gap_inconclusive(seed_arms, make_arm):
    v = compute_verdict(seed_arms)
    grp = _one(v["findings"]["groups"], init="random")
    assert grp["bbox"]["AP"]["mean"] == pytest.approx(30.0) and grp["bbox"]["AP"]["std"] == pytest.approx(1.0)
    cu = _one(v["findings"]["catch_up"], init="classify", task="bbox")
    assert cu["inconclusive"] and cu["spread"] == pytest.approx(1.5) and cu["diff"] == pytest.approx(-0.6)
    line = _lines_with(v, "classification pre-training bbox AP")[0]
    assert "30.6 ± 0.5" in line and "30.0 ± 1.0" in line and "inconclusive" in line
    early = _one(v["findings"]["early"], init="classify")
    assert all(p["random"]["n"] == 3 for p in early["points"])
    # The same spread against a clearly better pre-trained arm is conclusive: the check can fail.
    far = [a for a in seed_arms if a["init"] == "random"] + [make_arm("cls", "classify", 35.0)]
    cu_far = _one(compute_verdict(far)["findings"]["catch_up"], init="classify")
    assert not cu_far["inconclusive"] and not cu_far["caught_up"]


def test_failed_and_diverged_arms_listed_and_excluded(caught_up_arms, make_arm):
    bn = make_arm(
        "scratch_bn_2x",
        "random",
        45.0,
        norm="BN",
        schedule=2.0,
        status="diverged",
        error="loss became NaN at iteration 40",
    )
    failed = make_arm("classify_big", "classify", None, status="failed", error="CUDA out of memory")
    v = compute_verdict(caught_up_arms + [bn, failed])
    probs = {p["name"]: p for p in v["findings"]["problems"]}
    assert (
        probs["scratch_bn_2x"]["status"] == "diverged"
        and probs["classify_big"]["error"] == "CUDA out of memory"
    )
    assert _lines_with(v, "Arm 'classify_big'", "failed: CUDA out of memory")
    assert _lines_with(v, "Arm 'scratch_bn_2x'", "diverged: loss became NaN at iteration 40")
    assert v["lines"][0] == "4 of 6 arms finished with final metrics."
    # The diverged arm's (nonsense) 45.0 final AP must not become the random-init result.
    assert _one(v["findings"]["catch_up"], init="classify")["schedule"] == 2.0
    norm = _one(v["findings"]["normalisation"], norm="BN")
    assert norm["bad"] and norm["gn_group"]["schedule"] == 2.0
    assert _lines_with(v, "random init with BN at 2x diverged, while GN at 2x reached 29.4 bbox AP")


def test_bn_scratch_far_behind_gn(caught_up_arms, make_arm):
    v = compute_verdict(caught_up_arms + [make_arm("scratch_bn_2x", "random", 12.0, norm="BN", schedule=2.0)])
    norm = _one(v["findings"]["normalisation"], norm="BN")
    assert norm["diff"] == pytest.approx(-17.4) and not norm["inconclusive"]
    assert _lines_with(
        v, "BN at 2x reached 12.0 bbox AP while GN at 2x reached 29.4 bbox AP: 17.4 AP behind GN"
    )
    # The BN arm is judged on its own; the GN arms still speak for random init.
    assert _one(v["findings"]["catch_up"], init="classify")["schedule"] == 2.0


def test_localisation_ap75_vs_ap50(caught_up_arms):
    v = compute_verdict(caught_up_arms)
    loc = _one(v["findings"]["localisation"], init="classify", task="bbox")
    # Best random (3x): AP50 47.0, AP75 31.5; classify: AP50 48.0, AP75 29.0.
    assert loc["gap_AP75"]["diff"] == pytest.approx(2.5) and loc["gap_AP50"]["diff"] == pytest.approx(-1.0)
    assert loc["scratch_better_at_AP75"]
    assert _lines_with(v, "+2.5 at AP75 (31.5 vs 29.0) and -1.0 at AP50 (47.0 vs 48.0)", "held up better")


def test_early_interpolates_mismatched_iterations(make_arm):
    pt = make_arm("cls", "classify", 30.0, eval_every=25)
    rd = make_arm("rnd", "random", 28.0, schedule=3.0, eval_every=40)
    v = compute_verdict([pt, rd])
    early = _one(v["findings"]["early"], init="classify")
    its = [p["iteration"] for p in early["points"]]
    assert its == [40, 50]  # inside every curve (random starts at 40) and before the drop at 67
    x = [p["iteration"] for p in rd["curve"]]
    y = [p["bbox_AP"] for p in rd["curve"]]
    assert early["points"][1]["random"]["mean"] == pytest.approx(np.interp(50, x, y), abs=1e-3)
    assert early["points"][1]["interpolated"]
    assert "interpolated" in _lines_with(v, "Early convergence")[0]


def test_early_window_without_lr_drops(make_arm):
    pt, rd = make_arm("cls", "classify", 30.0), make_arm("rnd", "random", 28.0, schedule=2.0)
    pt["lr_drops"] = rd["lr_drops"] = []  # constant LR: the early window is the first half of the run
    early = compute_verdict([pt, rd])["findings"]["early"][0]
    assert early["window_end"] == 100 and not early["window_is_lr_drop"]
    assert [p["iteration"] for p in early["points"]] == [25, 50, 75, 100]


def test_cost_and_direct_vs_classify(caught_up_arms, make_arm):
    v = compute_verdict(caught_up_arms + [make_arm("direct_gn_1x", "direct", 30.8)])
    cost = _one(v["findings"]["cost"], init="classify")
    cls = next(a for a in caught_up_arms if a["init"] == "classify")
    assert cost["pretrained_images_seen"] == cls["cost"]["total"]["images_seen"]
    assert cost["random_group"]["schedule"] == 2.0  # the arm that caught up
    dvc = v["findings"]["direct_vs_classify"][0]
    assert dvc["diff"] == pytest.approx(0.8) and dvc["pixels_ratio"] < 1
    assert _lines_with(
        v, "Direct vs classification", "0.8 higher bbox AP (30.8 vs 30.0)", "fewer total pixels"
    )


def test_numbers_one_decimal_and_json_serialisable(caught_up_arms, seed_arms, regime_arms):
    for arms in (caught_up_arms, seed_arms, regime_arms):
        v = compute_verdict(arms)
        json.dumps(v)
        for line in v["lines"]:
            assert all(len(d) == 1 for d in re.findall(r"\d\.(\d+)", line)), line


def test_no_sentence_without_arms(make_arm):
    v = compute_verdict([make_arm("r1", "random", 20.0), make_arm("r2", "random", 25.0, schedule=2.0)])
    assert v["lines"] == ["2 of 2 arms finished with final metrics."]
    assert compute_verdict([])["lines"] == ["0 of 0 arms finished with final metrics."]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"init": "imagenet"}, "init must be one of"),
        ({"status": "done"}, "status must be one of"),
        ({"schedule": 0}, "schedule must be a positive"),
        ({"curve": [{"bbox_AP": 1.0}]}, "curve must be"),
    ],
)
def test_bad_arm_named(make_arm, change, message):
    arm = {**make_arm("bad_arm", "random", 20.0), **change}
    with pytest.raises(ValueError, match=rf"arm #1 \('bad_arm'\).*{message}"):
        compute_verdict([make_arm("ok", "random", 20.0), arm])
    missing = make_arm("no_norm", "random", 20.0)
    del missing["norm"]
    with pytest.raises(ValueError, match=r"arm #0 \('no_norm'\): missing key\(s\) norm"):
        compute_verdict([missing])
