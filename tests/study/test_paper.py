from scratchlab.study.paper import CLAIMS, paper_check


def _row(outcome, init="classify", task="bbox", interval=(1.0, 2.0), arms=("a", "b"), kind="early"):
    group = {"norm": "GN", "schedule": 1.0}
    return {
        "kind": kind,
        "task": task,
        "outcome": outcome,
        "interval": list(interval),
        "arms": list(arms),
        "a_group": {"init": init, **group},
        "b_group": {"init": "random", **group},
    }


def _result(checks, kind):
    return next(c for c in checks if c["claim"] == CLAIMS[kind][2])


def test_claims_from_findings():
    findings = {
        "early": [
            _row("reproduced", interval=(0.5, 3.0)),
            _row("not reproduced", task="segm"),
        ],  # segm not judged
        "catch_up": [
            _row("not reproduced", kind="catch_up"),
            _row("reproduced", init="direct", kind="catch_up"),
        ],  # classify findings speak
        "localisation": [
            _row("reproduced", kind="localisation"),
            _row("not reproduced", kind="localisation"),
        ],
        "normalisation": [_row("inconclusive", init="random", kind="normalisation")],
        "direct_vs_classify": [
            {**_row("inconclusive", kind="direct_vs_classify"), "cost": "pixels_seen"},
            {**_row("reproduced", kind="direct_vs_classify"), "cost": "wall_s"},
        ],
    }
    checks = paper_check(findings)
    early = _result(checks, "early")
    assert early == {
        "claim": CLAIMS["early"][2],
        "result": "reproduced",
        "interval": [0.5, 3.0],
        "arms": ["a", "b"],
        "noise": {"kind": "none", "seeds": 0, "sigma": None},
        "adjusted": "holm",
        "compared": "classification pre-training (GN, 1x) - random init (GN, 1x), window-mean bbox AP over "
        "the evaluations before the first LR drop, same schedule",
        "reason": None,
    }
    assert _result(checks, "catch_up")["result"] == "not reproduced"
    assert _result(checks, "localisation")["result"] == "mixed"
    assert _result(checks, "normalisation")["result"] == "inconclusive"
    # One claim per pre-training cost: each decided on its own finding.
    assert _result(checks, "direct_vs_classify:pixels_seen")["result"] == "inconclusive"
    assert _result(checks, "direct_vs_classify:wall_s")["result"] == "reproduced"
    assert _result(checks, "direct_vs_classify:peak_memory_mb")["result"] == "not tested"


def test_nothing_measured_is_not_tested():
    checks = paper_check({})
    assert {c["result"] for c in checks} == {"not tested"}
    assert all(c["interval"] is None and c["arms"] == [] for c in checks)
