import json

import pytest

from scratchlab.cli import main
from scratchlab.study.verdict import verdict_lines


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    study = json.loads((out / "study.json").read_text())
    names = [a["name"] for a in study["arms"]]
    assert names == [
        "scratch_gn_1x",
        "scratch_gn_3x",
        "classify_gn_1x",
        "classify_gn_3x",
        "direct_gn_1x",
        "scratch_bn_1x",
    ]
    forked = {a["name"]: a.get("forked", {}).get("from") for a in study["arms"]}
    assert forked["scratch_gn_1x"] == "scratch_gn_3x" and forked["classify_gn_1x"] == "classify_gn_3x"
    assert "noise" not in study  # the calibration is of the mini recipe, not of --quick's
    assert all(a["status"] in ("finished", "diverged") for a in study["arms"])
    inits = {a["init"] for a in study["arms"]}
    assert inits == {"random", "classify", "direct"}
    assert (out / "pretrain" / "classify_gn" / "backbone.pth").is_file()
    assert (out / "pretrain" / "direct_gn_100pct" / "stage1" / "model_final.pth").is_file()
    for name in ("report.html", "report.md"):
        assert (out / name).is_file()
    assert list((out / "figures").glob("*.png"))
    printed = capsys.readouterr().out
    assert "report:" in printed and verdict_lines(study["verdict"])[0] in printed


def test_each_demo_job_gets_its_share_of_the_cores_unless_the_user_chose(monkeypatch):
    import os

    from scratchlab.study.demo import _threads_per_job

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with _threads_per_job(2):
        assert os.environ["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in os.environ
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    with _threads_per_job(2):
        assert os.environ["OMP_NUM_THREADS"] == "3"
    assert os.environ["OMP_NUM_THREADS"] == "3"


def test_the_noise_calibration_runs_every_arm_at_three_seeds_with_its_pretraining(monkeypatch, tmp_path):
    from scratchlab.study import demo
    from scratchlab.study.arms import expand_arms

    calibration = demo.demo_study(calibration=True)
    arms = expand_arms(calibration["arms"])
    assert len(arms) == 3 * len(demo.ARMS) and {a.seed for a in arms} == {0, 1, 2}
    assert calibration["pretrain"]["vary_seed"] is True and "noise" not in calibration
    noise = tmp_path / "noise.yaml"
    noise.write_text("noise:\n  sigma: {bbox: {AP: 0.5}}\n  df: 12\n  from: runs/calibration\n")
    monkeypatch.setattr(demo, "NOISE", noise)
    assert demo.demo_study()["noise"] == {
        "sigma": {"bbox": {"AP": 0.5}},
        "df": 12,
        "from": "runs/calibration",
    }
    monkeypatch.setattr(demo, "NOISE", tmp_path / "missing.yaml")
    assert "noise" not in demo.demo_study()
