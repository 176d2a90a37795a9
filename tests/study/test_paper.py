from scratchlab.study.paper import paper_check


def _result(checks, word):
    return next(c["result"] for c in checks if word in c["claim"])


def test_claims_from_findings():
    findings = {
        "early": [{"task": "bbox", "points": [{"diff": 2.0, "inconclusive": False}]},
                  {"task": "segm", "points": [{"diff": -1.0, "inconclusive": False}]}],  # segm is not judged
        "catch_up": [{"task": "bbox", "caught_up": False, "inconclusive": False}],
        "localisation": [{"task": "bbox", "scratch_better_at_AP75": True, "inconclusive": False},
                         {"task": "bbox", "scratch_better_at_AP75": False, "inconclusive": False}],
        "normalisation": [{"bad": False, "diff": -3.0, "inconclusive": False}],
        "direct_vs_classify": [{"diff": 1.0, "pixels_ratio": 2.0, "inconclusive": True}],
    }
    checks = paper_check(findings)
    assert _result(checks, "early convergence") == "reproduced"
    assert _result(checks, "catches up") == "not reproduced"
    assert _result(checks, "AP75") == "mixed"
    assert _result(checks, "GN/SyncBN") == "reproduced"
    assert _result(checks, "direct") == "not tested"  # only an inconclusive row


def test_nothing_measured_is_not_tested():
    assert {c["result"] for c in paper_check({})} == {"not tested"}
