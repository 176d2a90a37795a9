"""A run forked from a longer run's branch checkpoint is the run trained alone, bit for bit."""

from __future__ import annotations

import json

import pytest
import torch

from scratchlab import run_dir
from scratchlab.engine import train
from scratchlab.engine.fork import fork_run, is_seeded
from tests.conftest import differing_tensors

# The tiny recipe's 1x (6 iterations) drops its LR at 4 and 5, its 2x (12) at 8 and 10: they train the
# same 4 iterations and log the same rows to 3 (the row at 4 holds the next iteration's LR).
BRANCH = 3
TIMING = {"time", "data_time", "max_mem_mb"}  # wall-clock columns: never the same twice


def _cfg(tiny_cfg, schedule: int):
    cfg = tiny_cfg.copy()
    cfg.device, cfg.seed, cfg.solver.schedule = "cpu", 1, schedule
    return cfg


def _rows(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in run_dir.read_metrics(run)]


def _weights(run):
    return torch.load(run / run_dir.MODEL_FINAL, weights_only=True)["model"]


@pytest.fixture
def trunk(tmp_path, tiny_cfg):
    """The 2x run trained in two segments (stopped at the branch point, then resumed), keeping the branch."""
    out = tmp_path / "trunk"
    stopped = train(_cfg(tiny_cfg, 2), out, stop_at=BRANCH, keep=[BRANCH])
    assert stopped == {"iteration": BRANCH, "stopped": True}
    assert not run_dir.is_finished(out)
    train(_cfg(tiny_cfg, 2), out, resume=True)
    return out


def test_a_forked_run_is_the_run_trained_alone(tmp_path, tiny_cfg, trunk):
    alone, fork = tmp_path / "alone", tmp_path / "fork"
    train(_cfg(tiny_cfg, 1), alone)
    fork_run(trunk, "trunk", fork, BRANCH, _cfg(tiny_cfg, 1))
    assert is_seeded(fork)
    train(_cfg(tiny_cfg, 1), fork, resume=True)
    assert differing_tensors(_weights(alone), _weights(fork)) == []
    assert _rows(fork) == _rows(alone)  # the trunk's rows up to the branch, then its own
    for m in (3, 6):  # the evaluation at the branch point, taken from the trunk, and its own final one
        assert run_dir.detections_file(fork, m).read_bytes() == run_dir.detections_file(alone, m).read_bytes()
    a, f = (json.loads((d / run_dir.FINAL_METRICS).read_text()) for d in (alone, fork))
    assert (a["bbox"], a["segm"], a["train_images"]) == (f["bbox"], f["segm"], f["train_images"])
    assert {k: a["cost"][k] for k in ("images_seen", "pixels_seen", "instances_seen")} == {
        k: f["cost"][k] for k in ("images_seen", "pixels_seen", "instances_seen")
    }
    assert run_dir.read_forked(fork)["from"] == "trunk" and run_dir.read_forked(fork)["iteration"] == BRANCH


def test_a_trunk_trained_in_segments_is_the_trunk_trained_at_once(tmp_path, tiny_cfg, trunk):
    whole = tmp_path / "whole"
    train(_cfg(tiny_cfg, 2), whole)
    assert differing_tensors(_weights(whole), _weights(trunk)) == []
    assert _rows(whole) == _rows(trunk)
    assert run_dir.branch_checkpoint(trunk, BRANCH).is_file()
    assert torch.load(run_dir.branch_checkpoint(trunk, BRANCH), weights_only=True)["iteration"] == BRANCH


def test_a_segment_already_past_its_end_trains_nothing(tmp_path, tiny_cfg, trunk):
    before = (trunk / run_dir.METRICS).read_bytes()
    (trunk / run_dir.FINAL_METRICS).unlink()
    assert train(_cfg(tiny_cfg, 2), trunk, resume=True, stop_at=BRANCH) == {"iteration": 12, "stopped": True}
    assert (trunk / run_dir.METRICS).read_bytes() == before


def test_fork_without_its_branch_checkpoint_names_the_file(tmp_path, tiny_cfg):
    with pytest.raises(FileNotFoundError, match="branch_0000003.pth"):
        fork_run(tmp_path / "trunk", "trunk", tmp_path / "fork", BRANCH, _cfg(tiny_cfg, 1))
    assert not is_seeded(tmp_path / "fork")


def test_stop_at_outside_the_run_is_refused(tmp_path, tiny_cfg):
    with pytest.raises(ValueError, match="stop_at=7 is outside this run's iterations 1..6"):
        train(_cfg(tiny_cfg, 1), tmp_path, stop_at=7)


def test_starting_over_discards_the_kept_branch_checkpoints(tmp_path, tiny_cfg):
    train(_cfg(tiny_cfg, 1), tmp_path, stop_at=2, keep=[2])
    assert run_dir.branch_checkpoints(tmp_path)
    train(_cfg(tiny_cfg, 1), tmp_path, stop_at=2)
    assert run_dir.branch_checkpoints(tmp_path) == []
