"""The arm tree of ``study --plan``: which arms share a trunk, where they fork, what the study runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from scratchlab import run_dir
from scratchlab.cli import main
from scratchlab.config import load_config
from scratchlab.study.plan import plan_arms
from scratchlab.study.runner import plan_study
from tests.conftest import MINI, ROOT

FIG1 = ROOT / "configs" / "studies" / "coco_rethinking_fig1.yaml"


def _cfg(*overrides: str) -> dict:
    """The mini recipe (1x = 200 iterations, drops at 133/178; longer: when 133 and 44 remain)."""
    return OmegaConf.to_container(load_config(MINI, ["eval.period=0", *overrides]))


def test_schedule_lengths_share_a_trunk_to_the_shorter_arms_first_drop():
    plan = plan_arms(
        [
            ("s1", _cfg("solver.schedule=1")),
            ("s3", _cfg("solver.schedule=3")),
            ("s2", _cfg("solver.schedule=2")),
        ]
    )
    s1, s3, s2 = plan.arms
    assert (s3.parent, s3.branch, s3.runs) == (None, 0, 600)
    # One before the first LR difference: the row logged there holds the next iteration's LR.
    assert (s2.parent, s2.branch) == ("s3", 400 - 133 - 1)  # 2x drops at 267; 3x at 467
    assert (s1.parent, s1.branch) == ("s3", 132)  # the 1x drops at 133, the longer ones later
    assert plan.run_iterations == 600 + 68 + 134 and plan.sum_iterations == 1200
    trunk = [s for s in plan.segments if s.arm == "s3"]
    assert [(s.start, s.end) for s in trunk] == [(0, 132), (132, 266), (266, 600)]
    first_of = {s.arm: s for s in reversed(plan.segments)}
    assert first_of["s1"].after == "s3@0-132" and first_of["s2"].after == "s3@132-266"


@pytest.mark.parametrize(
    "other",
    ["seed=1", "solver.base_lr=0.03", "data.subset=0.5", "model.init=some.pth", "solver.warmup_iters=7"],
)
def test_arms_that_differ_before_the_branch_point_never_share(other):
    plan = plan_arms([("long", _cfg("solver.schedule=3")), ("short", _cfg("solver.schedule=1", other))])
    assert all(a.parent is None for a in plan.arms)
    assert plan.run_iterations == plan.sum_iterations


def test_a_fork_evaluating_where_its_trunk_does_not_cannot_share():
    # The fork's evaluation at 100 would be missing from its run directory: it trains alone.
    alone = plan_arms(
        [("long", _cfg("solver.schedule=3")), ("short", _cfg("solver.schedule=1", "eval.period=100"))]
    )
    assert alone.arm("short").parent is None
    # One the trunk makes too (every 50) is copied with the trunk's rows: the arm shares.
    shared = plan_arms(
        [
            ("long", _cfg("solver.schedule=3", "eval.period=50")),
            ("short", _cfg("solver.schedule=1", "eval.period=100")),
        ]
    )
    assert shared.arm("short").branch == 132


def test_fig1_runs_at_most_55_percent_of_its_arms_iterations():
    # Planned from the study file alone: neither COCO nor R-50-GN.pkl is needed.
    last = plan_study(FIG1).splitlines()[-1]
    assert last == "iterations: 1470007 of 2790000 (52.7%)"


def _tiny_study(tmp_path: Path) -> Path:
    spec = {
        "name": "t",
        "base": str(MINI),
        "overrides": ["eval.period=0"],
        "arms": [{"init": "random", "norm": "GN", "schedule": [1, 3]}, {"init": "random", "norm": "BN"}],
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_cli_plan_prints_the_tree_and_which_segments_a_started_study_has_done(tmp_path, capsys):
    study, out = _tiny_study(tmp_path), tmp_path / "out"
    trunk = out / run_dir.ARMS / "random_gn_3x_100pct_s0"
    trunk.mkdir(parents=True)
    run_dir.branch_checkpoint(trunk, 132).parent.mkdir()
    run_dir.branch_checkpoint(trunk, 132).write_bytes(b"")  # the state its fork starts from: kept
    assert main(["study", str(study), "--plan", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "trunk random_gn_3x_100pct_s0 (600 iterations)" in lines
    assert any(
        line.startswith("  random_gn_3x_100pct_s0@0-132 ") and line.endswith("[done]") for line in lines
    )
    assert any(
        line.startswith("  random_gn_3x_100pct_s0@132-600 ") and line.endswith("[to run]") for line in lines
    )
    assert lines[-1] == "iterations: 868 of 1000 (86.8%)"
    assert sorted(p.name for p in out.iterdir()) == [run_dir.ARMS]  # the plan wrote nothing


def test_plan_needs_a_study_file(capsys):
    assert main(["study", "--plan"]) != 0
    assert "--plan: give the STUDY.yaml" in capsys.readouterr().err


def test_the_plan_module_imports_no_torch():
    code = "import sys, scratchlab.study.plan; assert 'torch' not in sys.modules"
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )


def test_share_false_trains_every_arm_alone(tmp_path):
    study = _tiny_study(tmp_path)
    spec = yaml.safe_load(study.read_text())
    study.write_text(yaml.safe_dump({**spec, "share": False}))
    assert plan_study(study).splitlines()[-1] == "iterations: 1000 of 1000 (100.0%)"
    study.write_text(yaml.safe_dump({**spec, "share": "no"}))
    with pytest.raises(ValueError, match="share: true .* or false, got 'no'"):
        plan_study(study)
