from scratchlab.study.paper import CLAIMS, paper_check


def _row(outcome, init="classify", task="bbox", interval=(1.0, 2.0), arms=("a", "b")):
    return {
        "task": task,
        "outcome": outcome,
        "interval": list(interval),
        "arms": list(arms),
        "a_group": {"init": init},
        "b_group": {"init": "random"},
    }


def _result(checks, kind):
    return next(c for c in checks if c["claim"] == CLAIMS[kind])


def test_claims_from_findings():
    findings = {
        "early": [
            _row("reproduced", interval=(0.5, 3.0)),
            _row("not reproduced", task="segm"),
        ],  # segm not judged
        "catch_up": [_row("not reproduced"), _row("reproduced", init="direct")],  # classify findings speak
        "localisation": [_row("reproduced"), _row("not reproduced")],
        "normalisation": [_row("inconclusive", init="random")],
        "direct_vs_classify": [_row("inconclusive"), _row("reproduced")],
    }
    checks = paper_check(findings)
    early = _result(checks, "early")
    assert early == {
        "claim": CLAIMS["early"],
        "result": "reproduced",
        "interval": [0.5, 3.0],
        "arms": ["a", "b"],
        "noise": {"kind": "none", "seeds": 0, "sigma": None},
        "adjusted": "holm",
    }
    assert _result(checks, "catch_up")["result"] == "not reproduced"
    assert _result(checks, "localisation")["result"] == "mixed"
    assert _result(checks, "normalisation")["result"] == "inconclusive"
    assert _result(checks, "direct_vs_classify")["result"] == "mixed"


def test_nothing_measured_is_not_tested():
    checks = paper_check({})
    assert {c["result"] for c in checks} == {"not tested"}
    assert all(c["interval"] is None and c["arms"] == [] for c in checks)
