"""An arm forked from another arm's run at a branch point: its run directory seeded as if it ran alone.

Two runs whose configs agree on everything but what happens after iteration ``k`` (a longer schedule's
later LR drops, say) compute the same iterations up to ``k``: the sampler is a pure function of (seed,
iteration), evaluation draws from its own generator and resume is bit-exact. So the shorter run can start
from the longer one's checkpoint at ``k`` (``train(keep=[k])`` kept it) and ``train(resume=True)`` from
there: :func:`fork_run` gives its folder that checkpoint as ``checkpoints/last.pth``, the trunk's
``metrics.jsonl`` rows up to ``k`` (loss rows, and the evaluations this run makes itself), their
detections in ``inference/`` and the TensorBoard events (the resumed writer hides those after ``k``), and
``forked.json`` saying where it came from. The checkpoint is copied last: a fork interrupted while being
seeded has no ``last.pth`` and is seeded again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from omegaconf import DictConfig

from .. import run_dir
from ..config import evaluates_at
from ..utils.io import write_json, write_text
from .checkpoint import keep_copy

__all__ = ["fork_run", "is_seeded"]


def is_seeded(fork: Path) -> bool:
    """``fork`` already holds a training state (seeded, or trained since): it resumes, never reseeds."""
    ckpt = Path(fork) / run_dir.CHECKPOINTS
    return (ckpt / run_dir.LAST).is_file() or (ckpt / run_dir.PREVIOUS).is_file()


def fork_run(parent: Path, parent_name: str, fork: Path, k: int, cfg: DictConfig) -> None:
    """Seed ``fork`` (the run of ``cfg``) with ``parent``'s state at iteration ``k``."""
    parent, fork = Path(parent), Path(fork)
    source = run_dir.branch_checkpoint(parent, k)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: the branch checkpoint to fork {fork.name} from is missing")
    state = torch.load(source, map_location="cpu", weights_only=True)
    if int(state["iteration"]) != k:
        raise ValueError(f"{source} is at iteration {state['iteration']}, not the branch point {k}")
    evaluations = {m for m in range(1, k + 1) if evaluates_at(cfg, m)}
    fork.mkdir(parents=True, exist_ok=True)
    rows = [
        r
        for r in run_dir.read_metrics(parent)
        if int(r.get("iteration", 0)) <= k and ("loss" in r or int(r["iteration"]) in evaluations)
    ]
    write_text(fork / run_dir.METRICS, "".join(json.dumps(r) + "\n" for r in rows))
    for m in sorted(evaluations):
        detections = run_dir.detections_file(parent, m)
        if detections.is_file():
            run_dir.detections_file(fork, m).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(detections, run_dir.detections_file(fork, m))
    for events in parent.glob("events.out.tfevents.*"):
        shutil.copyfile(events, fork / events.name)
    wall = float(state.get("cost", {}).get("wall_s", 0.0))
    write_json(fork / run_dir.FORKED, {"from": parent_name, "iteration": k, "wall_s": wall}, indent=2)
    (fork / run_dir.CHECKPOINTS).mkdir(exist_ok=True)
    keep_copy(source, fork / run_dir.CHECKPOINTS / run_dir.LAST)
