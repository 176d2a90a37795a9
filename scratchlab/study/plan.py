"""A study's arms as a tree of shared trunks (``scratchlab study STUDY.yaml --plan``). No torch.

Two arms whose resolved configs agree on everything but the schedule's length train the same iterations
until the first iteration at which their LR differs (the shorter arm's first LR drop, or its end), and
log the same rows until the one before (a row holds the next iteration's LR): the
sampler is a pure function of (seed, iteration) and evaluation draws from its own generator. The longest
arm of such a group is the trunk; every other arm forks from the arm it shares most iterations with, at
that branch point. ``eval.period`` may differ too when the fork's evaluations before its branch point
are ones the arm it forks from makes as well (its run directory can then hold them as if it ran alone).
Each arm's run is cut into segments at the branch points of the arms forking from it; a fork's first
segment depends on the segment that ends at its branch point.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from .. import run_dir
from ..config import max_iter, schedule_steps

__all__ = [
    "ArmPlan",
    "Segment",
    "StudyPlan",
    "branch_point",
    "plan_arms",
    "format_plan",
    "segment_done",
    "sharing",
]

# Keys that set only what happens after the branch point (the schedule's length, hence its later drops).
_LENGTH_KEYS = (("solver", "schedule"), ("solver", "max_iter"))
_EVAL_PERIOD = ("eval", "period")


@dataclass(frozen=True)
class _Arm:
    name: str
    total: int
    steps: tuple[int, ...]
    eval_period: int
    batch: int
    key: str  # everything else of the config, canonically written


def _arm(name: str, config: Mapping[str, Any]) -> _Arm:
    cfg = OmegaConf.create(copy.deepcopy(dict(config)))
    rest = OmegaConf.to_container(cfg, resolve=True)
    for section, key in (*_LENGTH_KEYS, _EVAL_PERIOD):
        rest.get(section, {}).pop(key, None)
    return _Arm(
        name=name,
        total=max_iter(cfg),
        steps=tuple(schedule_steps(cfg)),
        eval_period=int(cfg.eval.period or 0),
        batch=int(cfg.solver.ims_per_batch),
        key=json.dumps(rest, sort_keys=True, default=str),
    )


def _first_lr_difference(a: _Arm, b: _Arm) -> int:
    """The first iteration at which the two LR schedules differ (their shorter length if none does)."""
    end = min(a.total, b.total)
    for i in range(max(len(a.steps), len(b.steps))):
        sa = a.steps[i] if i < len(a.steps) else a.total
        sb = b.steps[i] if i < len(b.steps) else b.total
        if sa != sb:
            return min(sa, sb, end)
    return end


def _evaluations_covered(fork: _Arm, parent: _Arm, k: int) -> bool:
    """Every evaluation the fork would make up to ``k`` is one ``parent`` makes too."""
    p, q = fork.eval_period, parent.eval_period
    if p == 0 or p > k:
        return True
    if q == 0:
        return False
    return all(m % q == 0 for m in range(p, k + 1, p))


def branch_point(fork: _Arm, parent: _Arm) -> int:
    """Iterations ``fork`` can take from ``parent``'s run: 0 when they differ in anything before. One
    before their LRs differ: the row logged at an iteration holds the LR of the next one."""
    if fork.key != parent.key:
        return 0
    k = _first_lr_difference(fork, parent) - 1
    return k if k > 0 and _evaluations_covered(fork, parent, k) else 0


@dataclass(frozen=True)
class Segment:
    """Iterations ``start`` to ``end`` of ``arm``'s run; ``after``: the segment it continues."""

    arm: str
    start: int
    end: int
    after: str | None

    @property
    def id(self) -> str:
        return f"{self.arm}@{self.start}-{self.end}"

    @property
    def iterations(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class ArmPlan:
    name: str
    total: int
    batch: int
    parent: str | None = None  # the arm it forks from (None: a trunk, or an arm that shares nothing)
    branch: int = 0  # the parent's iteration it forks at

    @property
    def runs(self) -> int:
        """Iterations this arm trains itself (its prefix is its parent's)."""
        return self.total - self.branch


@dataclass
class StudyPlan:
    arms: list[ArmPlan]
    segments: list[Segment] = field(default_factory=list)
    unplannable: dict[str, str] = field(default_factory=dict)  # arm -> why its config cannot be made

    @property
    def run_iterations(self) -> int:
        return sum(a.runs for a in self.arms)

    @property
    def sum_iterations(self) -> int:
        return sum(a.total for a in self.arms)

    @property
    def fraction(self) -> float:
        return self.run_iterations / self.sum_iterations if self.sum_iterations else 1.0

    def arm(self, name: str) -> ArmPlan:
        return next(a for a in self.arms if a.name == name)

    def keeps(self, name: str) -> tuple[int, ...]:
        """The iterations at which ``name``'s run keeps a branch checkpoint: where its forks start."""
        return tuple(sorted({a.branch for a in self.arms if a.parent == name}))

    def in_tree_order(self) -> list[str]:
        """The arms' names, every parent before the arms that fork from it (longest first, then the
        study's order: the order the tree was built in)."""
        return [a.name for a in sorted(self.arms, key=lambda a: -a.total)]

    def segment(self, segment_id: str) -> Segment:
        return next(s for s in self.segments if s.id == segment_id)


def plan_arms(
    configs: Sequence[tuple[str, Mapping[str, Any]]],
    unplannable: Mapping[str, str] | None = None,
    share: bool = True,
) -> StudyPlan:
    """The tree of ``configs`` (each arm's name and resolved config, in the study's order).
    ``unplannable``: arms whose config cannot be made (and why): each trains alone, in one segment, and
    fails with that message. ``share=False``: every arm alone (a study's ``share: false``)."""
    arms = [_arm(name, cfg) for name, cfg in configs]
    placed: list[_Arm] = []
    plans: dict[str, ArmPlan] = {}
    for arm in sorted(arms, key=lambda a: -a.total):  # stable: ties keep the study's order
        parent, k = None, 0
        for other in placed if share else ():  # the arm it shares most with; ties: the longer (placed first)
            b = branch_point(arm, other)
            if b > k:
                parent, k = other.name, b
        plans[arm.name] = ArmPlan(arm.name, arm.total, arm.batch, parent, k)
        placed.append(arm)
    ordered = [plans[a.name] for a in arms]
    failing = [ArmPlan(name, 0, 0) for name in unplannable or {}]
    return StudyPlan(ordered + failing, _segments(ordered + failing), dict(unplannable or {}))


def _segments(arms: list[ArmPlan]) -> list[Segment]:
    cuts: dict[str, set[int]] = {a.name: set() for a in arms}
    for a in arms:
        if a.parent is not None:
            cuts[a.parent].add(a.branch)
    ends: dict[tuple[str, int], str] = {}  # (arm, end) -> id of the segment ending there
    segments: list[Segment] = []
    for a in sorted(arms, key=lambda a: -a.total):  # parents before their forks
        points = sorted({a.branch, *(c for c in cuts[a.name] if a.branch < c < a.total), a.total})
        after = ends.get((a.parent, a.branch)) if a.parent is not None else None
        segs = []
        for start, end in zip(points, points[1:], strict=False):
            seg = Segment(a.name, start, end, after)
            ends[(a.name, end)] = after = seg.id
            segs.append(seg)
        if not segs:  # an arm of no iterations (one that cannot be planned): it fails with its message
            segs = [Segment(a.name, a.branch, a.total, after)]
        segments += segs
    return segments


def segment_done(study_dir: Path, plan: StudyPlan, seg: Segment) -> bool:
    """``seg``'s arm finished, or kept its state at the segment's end (a branch point its forks start
    from): what a launcher waits for before the segments that continue it."""
    run = Path(study_dir) / run_dir.ARMS / seg.arm
    if run_dir.is_finished(run):
        return True
    return seg.end < plan.arm(seg.arm).total and run_dir.branch_checkpoint(run, seg.end).is_file()


def format_plan(plan: StudyPlan, name: str, study_dir: Path | None = None) -> str:
    """The tree, the segments with their dependencies (and, for a started study, which are done), each
    arm's iterations and images, and last the line ``iterations: RUN of SUM (P%)``."""
    trunks = [a for a in plan.arms if a.parent is None and any(b.parent == a.name for b in plan.arms)]
    lines = [f"plan of {name}: {len(plan.arms)} arms, {len(trunks)} shared trunk(s)"]
    for trunk in trunks:
        lines.append(f"trunk {trunk.name} ({trunk.total} iterations)")
        lines += _fork_lines(plan, trunk.name, "  ")
    alone = [a.name for a in plan.arms if a.parent is None and a not in trunks]
    if alone:
        lines.append(f"alone (share nothing): {', '.join(alone)}")
    lines += [f"cannot plan {name}: {why}" for name, why in plan.unplannable.items()]
    lines.append("segments:")
    for s in plan.segments:
        state = ""
        if study_dir is not None:
            state = "  [done]" if segment_done(study_dir, plan, s) else "  [to run]"
        lines.append(f"  {s.id}  ({s.iterations} it)  after: {s.after or '-'}{state}")
    lines.append(f"{'arm':<40} {'iterations':>10} {'images seen':>12} {'runs':>10}  from")
    for a in plan.arms:
        source = f"{a.parent} @ {a.branch}" if a.parent else "-"
        lines.append(f"{a.name:<40} {a.total:>10} {a.total * a.batch:>12} {a.runs:>10}  {source}")
    lines.append(f"iterations: {plan.run_iterations} of {plan.sum_iterations} ({100 * plan.fraction:.1f}%)")
    return "\n".join(lines)


def _fork_lines(plan: StudyPlan, parent: str, indent: str) -> list[str]:
    lines = []
    for a in sorted((a for a in plan.arms if a.parent == parent), key=lambda a: -a.branch):
        lines.append(f"{indent}fork {a.name} at {a.branch} ({a.total} iterations, runs {a.runs})")
        lines += _fork_lines(plan, a.name, indent + "  ")
    return lines


def sharing(arms: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the study's forks saved, from its arms' records (study.json's ``sharing``): iterations its
    arms ran against their sum, and the trunks' training wall time the forks did not pay again (each
    arm's ``cost`` stays what it would cost alone)."""
    ran = [a for a in arms if a.get("max_iter") and a.get("status") == "finished"]
    forks = [a["forked"] for a in ran if a.get("forked")]
    total = sum(int(a["max_iter"]) for a in ran)
    saved = sum(int(f["iteration"]) for f in forks)
    alone = sum(float((a.get("cost") or {}).get("wall_s") or 0.0) for a in ran)
    saved_wall = sum(float(f.get("wall_s") or 0.0) for f in forks)
    return {
        "iterations_run": total - saved,
        "iterations_sum": total,
        "saved_iterations": saved,
        "saved_wall_s": saved_wall,
        "wall_s_alone": alone,
        "wall_s_run": alone - saved_wall,
    }
