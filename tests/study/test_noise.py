"""Training-noise calibration: the pooled spread of seeds, the study file's block, and its effect."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from scratchlab.cli import main
from scratchlab.study.findings import Finding, decide
from scratchlab.study.groups import group_arms
from scratchlab.study.noise import Calibration, calibrate
from scratchlab.study.stats import NOT_REPRODUCED, REPRODUCED, Combined
from scratchlab.study.verdict import compute_verdict


def test_calibrate_pools_the_spread_within_configurations(seed_arms):
    """Random 29/31/30 (variance 1) and classify 31.1/30.1/30.6 (variance 0.25), two df each."""
    cal = calibrate(seed_arms, "runs/noise")
    assert cal.of("bbox", "AP") == pytest.approx(math.sqrt((2 * 1.0 + 2 * 0.25) / 4), abs=1e-4)
    assert cal.df == 4 and cal.source == "runs/noise"
    assert Calibration.from_block(cal.as_block()) == cal


def test_calibrate_needs_two_seeds_of_a_configuration(caught_up_arms):
    with pytest.raises(ValueError, match="two or more finished seeds"):
        calibrate(caught_up_arms)


@pytest.mark.parametrize(
    ("block", "names"),
    [
        ({"df": 3}, "needs 'sigma"),
        ({"sigma": {"masks": {"AP": 1.0}}, "df": 3}, r"noise\.sigma: tasks are"),
        ({"sigma": {"bbox": {"AP90": 1.0}}, "df": 3}, r"noise\.sigma\.bbox\.AP90"),
        ({"sigma": {"bbox": {"AP": -1.0}}, "df": 3}, r"noise\.sigma\.bbox\.AP:"),
        ({"sigma": {"bbox": {"AP": 1.0}}, "df": 0}, r"noise\.df"),
    ],
)
def test_a_bad_noise_block_names_its_key(block, names):
    with pytest.raises(ValueError, match=names):
        Calibration.from_block(block)


def test_one_run_per_arm_gets_the_calibrated_noise(never_arms):
    """Classify 30.0 against scratch 2x 25.0, one run each, no per-image data: the calibration alone
    gives the interval, -5 +- t(10) * sqrt(2) * sigma (the schedule-against-schedule line: no claim)."""
    assert compute_verdict(never_arms)["findings"]["catch_up_schedules"][0]["interval"] is None
    block = {"sigma": {"bbox": {"AP": 1.0}}, "df": 10}
    cu = compute_verdict(never_arms, noise=block)["findings"]["catch_up_schedules"][0]
    half = 2.228139 * math.sqrt(2)
    assert cu["interval"] == pytest.approx([-5 - half, -5 + half], abs=1e-3)
    assert cu["noise"] == {"kind": "calibrated", "seeds": 1, "sigma": 1.0}
    assert cu["basis"] == "seeds" and cu["outcome"] is None


def _finding(estimate: float, se: float, outcome: str, group) -> Finding:
    f = Finding("early", "100%", "bbox", group, None, {"a": estimate, "b": 0.0, "diff": estimate})
    f.test, f.outcome = Combined(estimate, se, se, np.inf), outcome
    f.noise = {"kind": "seeds", "seeds": 3, "sigma": se}
    return f


def test_claims_are_decided_together_holm_adjusted(make_arm):
    """Two claims at z = 2.2 (p 0.028 each) and one at z = 4: alone each would be decided; Holm keeps
    the strong one (3 x p) and leaves the two at 2 x 0.028 = 0.056 undecided."""
    (group,) = group_arms([make_arm("a", "random", 1.0)])
    found = [
        _finding(2.2, 1.0, REPRODUCED, group),
        _finding(-2.2, 1.0, NOT_REPRODUCED, group),
        _finding(4.0, 1.0, REPRODUCED, group),
    ]
    decide(found)
    assert [f.outcome for f in found] == ["inconclusive", "inconclusive", "reproduced"]
    assert found[0].p == pytest.approx(0.0278, abs=1e-4)
    assert found[0].p_adjusted == pytest.approx(2 * found[0].p)
    assert found[2].p_adjusted == pytest.approx(3 * found[2].p)


def test_an_untested_claim_stays_out_of_the_family(make_arm):
    (group,) = group_arms([make_arm("a", "random", 1.0)])
    cost_only = _finding(-9.0, 1.0, NOT_REPRODUCED, group)
    cost_only.tested = False
    found = [_finding(2.2, 1.0, REPRODUCED, group), cost_only]
    decide(found)
    assert found[0].outcome == "reproduced" and found[0].p_adjusted == found[0].p
    assert cost_only.outcome == "not reproduced" and cost_only.p is None


def test_calibrate_noise_command_writes_the_block(tmp_path, seed_arms, capsys):
    (tmp_path / "study.json").write_text(json.dumps({"arms": seed_arms}))
    assert main(["study", "--calibrate-noise", str(tmp_path)]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == yaml.safe_load((tmp_path / "noise.yaml").read_text())
    cal = Calibration.from_block(printed["noise"])
    assert cal.df == 4 and cal.source == str(tmp_path)
