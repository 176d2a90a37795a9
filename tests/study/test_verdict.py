"""compute_verdict on hand-made arms (no per-image data: intervals from seeds where there are several):
the findings' numbers, their wording, the grouping by question, failures and bad input."""

from __future__ import annotations

import json
import math
import re

import pytest

from scratchlab.study.paper import CLAIMS
from scratchlab.study.verdict import QUESTIONS, compute_verdict, verdict_lines


def _one(findings: list[dict], **match: object) -> dict:
    hits = [f for f in findings if all(f.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, (match, findings)
    return hits[0]


def _init(f: dict) -> str:
    return f["a_group"]["init"]


def _lines_with(verdict: dict, *words: str) -> list[str]:
    return [x for x in verdict_lines(verdict) if all(w in x for w in words)]


def test_findings_grouped_by_question_with_their_numbers(caught_up_arms):
    v = compute_verdict(caught_up_arms)
    assert [q["key"] for q in v["questions"]] == ["early", "catch_up", "localisation", "cost"]
    assert [q["title"] for q in v["questions"]] == [
        t for k, t in QUESTIONS if k in ("early", "catch_up", "localisation", "cost")
    ]
    early = _one(v["findings"]["early"], task="bbox")
    # Both starts at 1x: the window ends at the first LR drop (200 - 133 = 67), evaluations at 25 and 50.
    assert early["window_end"] == 67 and early["iterations"] == [25, 50] and early["schedule"] == 1.0
    want_pt = sum(30.0 * (1 - math.exp(-i / 30)) for i in (25, 50)) / 2
    want_rd = sum(22.0 * (1 - math.exp(-i / 150)) for i in (25, 50)) / 2
    assert early["a"] == pytest.approx(want_pt, abs=1e-2) and early["b"] == pytest.approx(want_rd, abs=1e-2)
    assert early["arms"] == ["classify_gn_1x", "scratch_gn_1x"]
    line = v["questions"][0]["lines"][0]
    assert (
        f"the window-mean gap (pre-trained minus random) is {want_pt - want_rd:+.1f} AP (no interval)" in line
    )
    assert (
        "random init needed more than its whole run to reach the pre-trained 24.3 AP of iteration 50" in line
    )
    # Pre-trained only at 1x: no equal long schedule, so catch-up is not testable, and says why.
    cu = _one(v["findings"]["catch_up"], task="bbox")
    assert cu["outcome"] == "not testable here" and cu["untestable"] == "no_equal_long_schedule"
    assert "not testable here: pre-trained at 1x, random init at 1x, 2x, 3x" in v["questions"][1]["lines"][0]
    # The schedule-against-schedule line stays, labelled so, with no outcome.
    extra = _one(v["findings"]["catch_up_schedules"], task="bbox")
    assert (
        extra["a_group"]["schedule"] == 3.0
        and extra["diff"] == pytest.approx(1.0)
        and extra["outcome"] is None
    )
    assert any(x.startswith("Schedule against schedule (not the paper's") for x in v["questions"][1]["lines"])
    check = next(c for c in v["paper"] if c["claim"].startswith("random init catches up"))
    assert check["result"] == "not testable here" and "no schedule of 2x or longer" in check["reason"]


def test_one_regime_names_only_a_non_bbox_task(make_arm):
    arms = [
        make_arm("classify_gn_1x", "classify", 30.0, segm=True),
        make_arm("scratch_gn_1x", "random", 22.0, segm=True),
        make_arm("scratch_gn_3x", "random", 31.0, schedule=3.0, segm=True),
    ]
    lines = verdict_lines(compute_verdict(arms))
    segm = [x for x in lines if "segm AP" in x]
    assert segm and all(x.startswith("[segm] ") for x in segm)
    assert not any(x.startswith("[data") for x in lines)


def test_regimes_and_trend(regime_arms):
    v = compute_verdict(regime_arms)
    gaps = {g["data"]: g for g in v["findings"]["regime_gap"] if g["task"] == "bbox"}
    assert gaps["1k"]["diff"] == pytest.approx(4.2) and gaps["100%"]["diff"] == pytest.approx(-0.5)
    q = next(q for q in v["questions"] if q["key"] == "regime_gap")
    assert any(x.startswith("[data 1k (1000 images), bbox]") and "+4.2 AP" in x for x in q["lines"])
    assert any("the lead was largest with the least data" in x for x in q["lines"])
    assert v["data_regimes"][0]["data"] == "100%"  # most data first
    assert not _lines_with(v, "segm")  # no segm metrics, no segm sentence


def test_seed_spread_gives_the_interval_without_per_image_data(seed_arms, make_arm):
    v = compute_verdict(seed_arms)
    grp = next(g for g in v["groups"] if g["init"] == "random")
    assert grp["bbox"]["AP"]["mean"] == pytest.approx(30.0) and grp["bbox"]["AP"]["std"] == pytest.approx(1.0)
    cu = _one(v["findings"]["catch_up"], task="bbox")
    assert cu["basis"] == "seeds" and cu["diff"] == pytest.approx(-0.6) and cu["schedule"] == 2.0
    assert cu["interval"][0] < -1.0 < cu["interval"][1] and cu["outcome"] == "inconclusive"
    # The same spread against a clearly better pre-trained arm decides: the check can fail.
    far = [a for a in seed_arms if a["init"] == "random"]
    far += [
        make_arm(f"cls{i}", "classify", ap, seed=i, schedule=2.0) for i, ap in enumerate((40.0, 40.5, 41.0))
    ]
    assert _one(compute_verdict(far)["findings"]["catch_up"])["outcome"] == "not reproduced"


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
    problems = next(q for q in v["questions"] if q["key"] == "problems")["lines"]
    assert any("Arm 'classify_big'" in x and "failed: CUDA out of memory" in x for x in problems)
    assert any("Arm 'scratch_bn_2x'" in x and "diverged: loss became NaN" in x for x in problems)
    assert verdict_lines(v)[0] == "4 of 6 arms finished with final metrics."
    norm = _one(v["findings"]["normalisation"])
    assert norm["outcome"] == "reproduced" and norm["b_group"]["schedule"] == 2.0
    assert norm["arms"] == ["scratch_bn_2x", "scratch_gn_2x"]
    assert _lines_with(v, "random init (BN, 2x) diverged, while random init (GN, 2x) reached 29.4 bbox AP")
    # The diverged arm's (nonsense) 45.0 must not become the random-init result.
    assert _one(v["findings"]["catch_up"])["a"] == pytest.approx(31.0)


CALIBRATED = {"sigma": {"bbox": {m: 0.5 for m in ("AP", "AP50", "AP75")}}, "df": 10}


def _profiled(make_arm, name, init, ap50s, ratio):
    """An arm whose curve records AP50 and AP75 = ``ratio`` x AP50 at four evaluations (the last final)."""
    arm = make_arm(name, init, ap50s[-1] / 2, schedule=2.0)
    arm["curve"] = [
        {"iteration": 100 * (i + 1), "bbox_AP": x / 2, "bbox_AP50": x, "bbox_AP75": ratio * x}
        for i, x in enumerate(ap50s[:-1])
    ]
    arm["final"]["bbox"] |= {"AP50": ap50s[-1], "AP75": ratio * ap50s[-1]}
    return arm


def test_localisation_at_matched_ap50(make_arm):
    pt = _profiled(make_arm, "cls", "classify", [20.0, 30.0, 40.0, 50.0], 0.5)
    rd = _profiled(make_arm, "rnd", "random", [10.0, 25.0, 40.0, 55.0], 0.7)
    loc = _one(compute_verdict([pt, rd], noise=CALIBRATED)["findings"]["localisation"], task="bbox")
    # Over the AP50 both pass through (20 to 50, mean 35): AP75 0.7 x 35 against 0.5 x 35.
    assert loc["matched_ap50"] == [20.0, 50.0] and loc["points"] == [4, 4]
    assert (
        loc["a"] == pytest.approx(24.5)
        and loc["b"] == pytest.approx(17.5)
        and loc["diff"] == pytest.approx(7.0)
    )
    assert loc["interval"][0] > 0 and loc["outcome"] == "reproduced"
    # The same IoU profile on both sides, one far ahead overall: no difference at matched AP50.
    same = _profiled(make_arm, "rnd", "random", [10.0, 25.0, 40.0, 55.0], 0.5)
    tie = _one(compute_verdict([pt, same], noise=CALIBRATED)["findings"]["localisation"], task="bbox")
    assert tie["diff"] == pytest.approx(0.0) and tie["outcome"] == "inconclusive"


def test_localisation_not_testable_when_curves_never_meet(make_arm):
    pt = _profiled(make_arm, "cls", "classify", [20.0, 30.0, 40.0, 50.0], 0.5)
    rd = _profiled(make_arm, "rnd", "random", [2.0, 5.0, 8.0, 12.0], 0.7)
    v = compute_verdict([pt, rd], noise=CALIBRATED)
    loc = _one(v["findings"]["localisation"], task="bbox")
    assert loc["outcome"] == "not testable here" and loc["interval"] is None and loc["p"] is None
    check = next(c for c in v["paper"] if c["claim"].startswith("random init localises"))
    assert (
        check["result"] == "not testable here" and "never overlap (random init 2.0 to 12.0" in check["reason"]
    )


def test_early_window_without_lr_drops(make_arm):
    pt, rd = make_arm("cls", "classify", 30.0), make_arm("rnd", "random", 28.0)
    pt["lr_drops"] = rd["lr_drops"] = []  # constant LR: the whole run is the early window
    early = compute_verdict([pt, rd])["findings"]["early"][0]
    assert early["window_end"] == 200 and not early["window_is_lr_drop"]
    assert early["iterations"] == list(range(25, 201, 25))


def test_early_not_testable_without_curves_at_a_shared_schedule(make_arm):
    pt, rd = make_arm("cls", "classify", 30.0), make_arm("rnd", "random", 28.0, schedule=3.0)
    early = compute_verdict([pt, rd])["findings"]["early"][0]
    assert early["outcome"] == "not testable here" and early["untestable"] == "no_equal_schedule_curves"


def test_direct_vs_classify_compares_both_fine_tuned_at_the_same_schedule(caught_up_arms, make_arm):
    """A classification arm fine-tuned 3x scores higher than the 1x one; the direct 1x arm is still
    compared with the classification 1x arm, as the paper compares them (1x each)."""
    longer = make_arm("classify_gn_3x", "classify", 35.0, schedule=3.0)
    v = compute_verdict([*caught_up_arms, longer, make_arm("direct_gn_1x", "direct", 30.8)])
    assert {f["b_group"]["schedule"] for f in v["findings"]["direct_vs_classify"]} == {1.0}
    alone = [a for a in caught_up_arms if a["init"] != "classify"]
    v = compute_verdict([*alone, longer, make_arm("direct_gn_1x", "direct", 30.8)])
    (f,) = v["findings"]["direct_vs_classify"]
    assert f["outcome"] == "not testable here" and f["untestable"] == "no_classify_at_schedule"


def test_cost_direct_vs_classify_and_headline(caught_up_arms, make_arm):
    v = compute_verdict(caught_up_arms + [make_arm("direct_gn_1x", "direct", 30.8)])
    cost = _one(v["findings"]["cost"], a_group=v["findings"]["cost"][0]["a_group"])
    cls = next(a for a in caught_up_arms if a["init"] == "classify")
    assert cost["a_total_images_seen"] == cls["cost"]["total"]["images_seen"]
    dvc = {f["cost"]: f for f in v["findings"]["direct_vs_classify"]}
    assert set(dvc) == {"images_seen", "pixels_seen", "wall_s"}  # no peak memory in these records
    assert dvc["pixels_seen"]["diff"] == pytest.approx(0.8) and dvc["pixels_seen"]["ratio"] < 1
    assert dvc["wall_s"]["ratio"] == pytest.approx(40 / 500)
    assert _lines_with(
        v, "On pre-training wall time: direct detection pre-training (GN, 1x) minus classification", "+0.8 AP"
    )
    results = {c["claim"]: c["result"] for c in v["paper"]}
    assert results[CLAIMS["direct_vs_classify:peak_memory_mb"][2]] == "not tested"
    # The best start overall is scratch at 3x (31.0): the headline says so, with its cost.
    assert v["headline"].startswith(
        "With data 100% (10000 training images), random init (GN, 3x) reached the best bbox AP, 31.0"
    )
    assert "The best other start, direct detection pre-training (GN, 1x), reached 30.8" in v["headline"]
    # The headline's numbers are a finding like the others: the sentence is written from it.
    (top,) = v["findings"]["headline"]
    assert (top["a"], top["b"]) == (pytest.approx(31.0), pytest.approx(30.8))
    assert top["a_group"]["schedule"] == 3.0 and top["b_group"]["init"] == "direct"
    assert f"{top['a']:.1f}" in v["headline"] and f"{top['b']:.1f}" in v["headline"]


def test_numbers_one_decimal_and_json_serialisable(caught_up_arms, seed_arms, regime_arms):
    for arms in (caught_up_arms, seed_arms, regime_arms):
        v = compute_verdict(arms)
        json.dumps(v, allow_nan=False)
        for line in verdict_lines(v):
            ap_values = re.sub(r"adjusted p (< )?[\d.]+", "", line)  # p-values keep two significant digits
            assert all(len(d) == 1 for d in re.findall(r"\d\.(\d+)", ap_values)), line
        for check in v["paper"]:
            assert set(check) == {
                "claim",
                "result",
                "interval",
                "arms",
                "noise",
                "adjusted",
                "compared",
                "reason",
            }


def test_no_finding_without_arms(make_arm):
    v = compute_verdict([make_arm("r1", "random", 20.0), make_arm("r2", "random", 25.0, schedule=2.0)])
    assert not v["questions"] and {c["result"] for c in v["paper"]} == {"not tested"}
    assert verdict_lines(v)[0] == "2 of 2 arms finished with final metrics."
    assert all(x.startswith("Paper check:") for x in verdict_lines(v)[1:])
    assert "no arm has finished" in compute_verdict([])["headline"].lower()
    crashed = [make_arm(f"r{i}", "random", None, status="failed", error="boom") for i in (1, 2)]
    headline = compute_verdict(crashed)["headline"]
    assert "all 2 ended without" in headline and "yet" not in headline  # nothing left to wait for


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"init": "imagenet"}, "init must be one of"),
        ({"status": "done"}, "status must be one of"),
        ({"schedule": 0}, "schedule must be a positive"),
        ({"curve": [{"bbox_AP": 1.0}]}, "curve must be"),
        ({"per_image": {"bbox": [1, 2]}}, "per_image must map"),
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
