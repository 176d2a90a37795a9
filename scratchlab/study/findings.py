"""The study's findings as numbers: which configurations, their values, the deciding difference with its
95% interval, and the outcome. No English here (``verdict.py`` writes it from these).

The questions are those of He, Girshick & Dollar, "Rethinking ImageNet Pre-training" (ICCV 2019) and of
direct detection pre-training (Li, Zhang & Zhang 2021). Each finding is only computed when the arms it
needs exist. Its interval comes from the paired bootstrap over validation images (seeds resampled too),
or, without per-image data, from the seeds alone; with neither it is None and the finding cannot decide.

* Pre-trained starts are chosen by ``Group.kind`` (``pt_kind``): classify, direct, or one source of
  published weights, named by its provenance label.
* A claim both starts were run for but that the study cannot test as the papers state it (no equal
  long schedule, curves that never meet) is a finding with outcome ``NOT_TESTABLE`` and its reason.
* Curve-based claims (early convergence, localisation) are in ``curve_findings.py``, the claims across
  data regimes and pre-training costs in ``regime_findings.py``.
* Random-init arms are compared with pre-trained ones using only well-normalised random arms (GN or
  SyncBN) where any exist: the paper's claim is about GN/SyncBN scratch training; BN/FrozenBN scratch
  arms are judged in the normalisation finding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .evidence import Evidence, Statistic
from .groups import POORLY_NORMED, WELL_NORMED, Group
from .stats import (
    INCONCLUSIVE,
    LEVEL,
    NOT_REPRODUCED,
    REPRODUCED,
    Combined,
    direction,
    holm,
    noise_kind,
    within_margin,
)

__all__ = [
    "Finding",
    "catch_up",
    "catch_up_schedules",
    "regime_gap",
    "normalisation",
    "cost",
    "best_group",
    "compare",
    "headline",
    "decide",
    "untestable",
    "signal_of",
    "reference_random",
    "tested",
    "KINDS",
    "CONSISTENT",
    "INCONSISTENT",
    "NOT_TESTABLE",
    "LONG_SCHEDULE",
]

# Every kind a Finding can have, in the order a verdict lists them (study.json's "findings" keys).
KINDS = (
    "headline",
    "early",
    "catch_up",
    "catch_up_schedules",
    "regime_gap",
    "data_regime",
    "crossover",
    "localisation",
    "normalisation",
    "direct_vs_classify",
    "keypoints",
    "cost",
)


@dataclass
class Finding:
    """One comparison. ``values`` holds ``a``, ``b`` and ``diff`` (= a - b, AP points) plus what the
    kind needs; ``interval`` is the 95% interval of ``diff``; ``outcome`` is reproduced / not reproduced /
    inconclusive for the claim the kind tests (None for a comparison no claim rests on)."""

    kind: str
    data: str
    task: str
    a: Group
    b: Group | None
    values: dict[str, Any]
    interval: tuple[float, float] | None = None
    basis: str = "none"  # "images" (paired bootstrap), "seeds", or "none"
    outcome: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    noise: dict[str, Any] | None = None  # {"kind": seeds | calibrated | none, "seeds", "sigma"}
    test: Combined | None = None  # the deciding statistic, for the p-value a multiplicity adjustment needs
    null: float = 0.0  # the value of ``diff`` the claim's test holds it against
    tested: bool = True  # its outcome rests on ``test`` (not, e.g., on a cost ratio alone)
    p: float | None = None
    p_adjusted: float | None = None
    others: list[Group] = field(default_factory=list)  # further configurations the statistic uses

    @property
    def arms(self) -> list[str]:
        """The arms it compares, ``a`` side first: the finished seeds (every seed of a side that has none
        finished, e.g. a BN group that diverged)."""
        sides = [g for g in (self.a, self.b, *self.others) if g is not None]
        return [n for g in sides for n in (g.names or [a["name"] for a in g.arms])]

    def as_dict(self) -> dict[str, Any]:
        def r(v: Any) -> Any:
            return round(v, 4) if isinstance(v, float) else v

        return {
            "kind": self.kind,
            "data": self.data,
            "task": self.task,
            "a_group": self.a.key(),
            "b_group": None if self.b is None else self.b.key(),
            "other_groups": [g.key() for g in self.others],
            "arms": self.arms,
            **{k: r(v) for k, v in self.values.items()},
            "interval": None if self.interval is None else [round(v, 3) for v in self.interval],
            "basis": self.basis,
            "noise": self.noise,
            "p": None if self.p is None else round(self.p, 5),
            "p_adjusted": None if self.p_adjusted is None else round(self.p_adjusted, 5),
            "outcome": self.outcome,
            **self.extra,
        }


# A claim decided on one training run per arm with no calibrated training noise: what that run shows,
# not what the recipe does.
CONSISTENT, INCONSISTENT = "consistent", "inconsistent"
# Both starts were run, but not so that the claim as the papers state it can be tested (the finding's
# ``extra.untestable`` says why).
NOT_TESTABLE = "not testable here"
# The paper's Table 1 holds pre-training against random init at the same schedule, 2x to 6x: catching up
# is a claim about long schedules.
LONG_SCHEDULE = 2.0

# ------------------------------------------------------------------------------------------- helpers


def best_group(groups: Sequence[Group], task: str = "bbox") -> Group | None:
    """The configuration with the highest mean final AP on ``task`` (None if none has it)."""
    cands = [g for g in groups if g.mean(task) is not None]
    return max(cands, key=lambda g: g.mean(task)) if cands else None


def reference_random(groups: Sequence[Group]) -> list[Group]:
    """Random-init groups that speak for scratch training: well-normalised ones where any exist."""
    rand = [g for g in groups if g.init == "random"]
    good = [g for g in rand if g.norm.lower() in WELL_NORMED]
    return good or rand


def _noise(stat: Statistic) -> dict[str, Any]:
    """What training noise a statistic includes: its kind, the fewest runs of a configuration in it, the
    per-run sigma behind it (the largest of its configurations')."""
    sigmas = [t.sigma for t in stat.terms if t.sigma is not None]
    return {
        "kind": noise_kind(stat.terms),
        "seeds": min(t.runs for t in stat.terms),
        "sigma": round(max(sigmas), 4) if sigmas else None,
    }


def tested(f: Finding, stat: Statistic | None) -> Finding:
    """``f`` with the statistic's interval, basis, noise and test."""
    if stat is not None:
        f.interval, f.basis, f.noise, f.test = stat.interval, stat.basis, _noise(stat), stat.combined
    return f


def compare(kind: str, ev: Evidence, a: Group, b: Group, task: str, metric: str = "AP") -> Finding:
    """a - b on final ``task`` ``metric``, with its interval (no outcome: the caller judges it)."""
    va, vb = a.mean(task, metric), b.mean(task, metric)
    stat = ev.statistic([(a, metric, 1.0), (b, metric, -1.0)], task)
    return tested(Finding(kind, a.data, task, a, b, {"a": va, "b": vb, "diff": va - vb}), stat)


def group_interval(ev: Evidence, g: Group, task: str, metric: str = "AP") -> tuple[float, float] | None:
    """95% interval of a configuration's mean: image sampling (the bootstrap, where it has per-image
    data) and training noise (its seeds, or the calibration)."""
    stat = ev.statistic([(g, metric, 1.0)], task)
    return None if stat is None else stat.interval


def headline(ev: Evidence, groups: Sequence[Group], regimes: Sequence[str]) -> Finding | None:
    """At the first data regime (most data first) where any configuration has bbox AP: the best one,
    held against the best of another start (``b``; None when every finished group shares one start).
    ``extra.a_interval`` is the best configuration's own interval. No claim rests on it."""
    for data in regimes:
        rg = [g for g in groups if g.data == data]
        best = best_group(rg)
        if best is None:
            continue
        other = best_group([g for g in rg if g.kind != best.kind])
        if other is None:
            v = best.mean("bbox")
            f = Finding("headline", data, "bbox", best, None, {"a": v, "b": None, "diff": None})
        else:
            f = compare("headline", ev, best, other, "bbox")
        f.extra = {"a_interval": group_interval(ev, best, "bbox")}
        return f
    return None


def untestable(kind: str, task: str, a: Group, b: Group, why: str, **details: Any) -> Finding:
    """A claim both starts exist for but that this study cannot test: ``why`` names the reason (a key of
    ``paper.UNTESTABLE``), ``details`` its numbers."""
    values = {"a": a.mean(task), "b": b.mean(task), "diff": None}
    extra = {"untestable": why, **details}
    return Finding(kind, a.data, task, a, b, values, outcome=NOT_TESTABLE, extra=extra, tested=False)


def _finished(groups: Sequence[Group], task: str) -> list[Group]:
    return [g for g in groups if g.mean(task) is not None]


# ------------------------------------------------------------------------------------------ findings


def catch_up(
    ev: Evidence,
    rg: Sequence[Group],
    pt_kind: str,
    task: str,
    margin: float,
    long_schedule: float = LONG_SCHEDULE,
    kind: str = "catch_up",
) -> Finding | None:
    """Random init minus pre-training at the same schedule, the longest both have and at least
    ``long_schedule`` (the paper's Table 1). Claim: at worst ``-margin``. Not testable here when the two
    starts share no such schedule. ``kind``: the claim it tests (keypoints: the same comparison on
    keypoint AP, at any shared schedule)."""
    pts, rands = _finished([g for g in rg if g.kind == pt_kind], task), _finished(reference_random(rg), task)
    if not pts or not rands:
        return None
    shared = sorted({g.schedule for g in pts} & {g.schedule for g in rands})
    long = [s for s in shared if s >= long_schedule]
    if not long:
        rd = max(rands, key=lambda g: (g.schedule, g.mean(task)))
        pt = max(pts, key=lambda g: (g.schedule, g.mean(task)))
        return untestable(
            kind,
            task,
            rd,
            pt,
            "no_equal_long_schedule" if shared else "no_equal_schedule",
            pretrained_schedules=sorted({g.schedule for g in pts}),
            random_schedules=sorted({g.schedule for g in rands}),
            long_schedule=long_schedule,
            margin=margin,
        )
    rd = best_group([g for g in rands if g.schedule == long[-1]], task)
    pt = best_group([g for g in pts if g.schedule == long[-1]], task)
    f = compare(kind, ev, rd, pt, task)
    f.outcome = signal_of(within_margin(f.interval, margin), f.values["a"], f.values["b"])
    f.extra, f.null = {"margin": margin, "schedule": long[-1]}, -margin
    return f


def catch_up_schedules(ev: Evidence, rg: Sequence[Group], pt_kind: str, task: str) -> Finding | None:
    """Random init at its longest schedule minus the best pre-trained configuration when that one trained
    a shorter schedule: schedule against schedule, more iterations on one side. No claim rests on it."""
    pt = best_group([g for g in rg if g.kind == pt_kind], task)
    rands = _finished(reference_random(rg), task)
    if pt is None or not rands:
        return None
    longest = max(g.schedule for g in rands)
    rd = best_group([g for g in rands if g.schedule == longest], task)
    if rd is None or rd.schedule <= pt.schedule:
        return None
    f = compare("catch_up_schedules", ev, rd, pt, task)
    f.extra = {"margin_not_applied": True}
    return f


def signal_of(outcome: str, *values: float | None) -> str:
    """Inconclusive when every side is at 0 AP: nothing was learned, so a zero-width interval around an
    exact tie says nothing about the claim."""
    return INCONCLUSIVE if all(v == 0 for v in values) else outcome


def regime_gap(ev: Evidence, rg: Sequence[Group], pt_kind: str, task: str) -> Finding | None:
    """Best pre-trained minus best random final AP at one data regime (no claim on its own)."""
    pt, rd = best_group([g for g in rg if g.kind == pt_kind], task), best_group(reference_random(rg), task)
    if pt is None or rd is None:
        return None
    f = compare("regime_gap", ev, pt, rd, task)
    f.outcome = None
    f.extra = {"ahead": direction(f.interval, +1)}
    return f


def normalisation(ev: Evidence, rg: Sequence[Group]) -> list[Finding]:
    """Each BN/FrozenBN scratch group minus the GN scratch group at the same (or nearest) schedule, bbox.
    Claim: negative (poorly normalised scratch trails), or the BN arms failed/diverged outright."""
    gn = [g for g in rg if g.init == "random" and g.norm.lower() == "gn" and g.mean("bbox") is not None]
    out = []
    for g in (g for g in rg if g.init == "random" and g.norm.lower() in POORLY_NORMED):
        if not gn:
            break
        ref = min(gn, key=lambda r: (abs(r.schedule - g.schedule), -r.schedule))
        bad = [a["status"] for a in g.arms if a["status"] in ("diverged", "failed")]
        extra = {"n_failed": len(bad), "n_arms": len(g.arms), "failed_as": sorted(set(bad))}
        if g.mean("bbox") is None:
            if not bad:
                continue  # still pending/running: nothing to say yet
            out.append(
                Finding(
                    "normalisation",
                    g.data,
                    "bbox",
                    g,
                    ref,
                    {"a": None, "b": ref.mean("bbox"), "diff": None},
                    outcome=REPRODUCED,
                    extra=extra,
                )
            )
            continue
        f = compare("normalisation", ev, g, ref, "bbox")
        f.outcome, f.extra = signal_of(direction(f.interval, -1), f.values["a"], f.values["b"]), extra
        out.append(f)
    return out


def cost(ev: Evidence, rg: Sequence[Group], pt_kind: str, rd: Group | None) -> Finding | None:
    """Best pre-trained configuration vs scratch (``rd``, else the best reference random): bbox AP against
    everything seen, pre-training included."""
    pt = best_group([g for g in rg if g.kind == pt_kind])
    rd = rd or best_group(reference_random(rg))
    keys = ("images_seen", "pixels_seen")
    if pt is None or rd is None or any(g.cost(k) is None for g in (pt, rd) for k in keys):
        return None
    f = compare("cost", ev, pt, rd, "bbox")
    f.extra = {
        f"{who}_{part}_{k}": g.cost(k, part)
        for who, g in (("a", pt), ("b", rd))
        for part in ("total", "pretrain")
        for k in keys
    }
    # Published weights: their pre-training is in no figure here (not counted: external).
    f.extra |= {f"{who}_pretrain_external": g.external_pretraining for who, g in (("a", pt), ("b", rd))}
    return f


def decide(found: Sequence[Finding]) -> None:
    """The study's claims as one family: each tested claim's p-value (of its deciding statistic against
    the claim's null), Holm-adjusted across every claim, task and data regime of the study; findings that
    rest on the same statistic (one AP comparison judged on several costs) are one hypothesis. A claim
    whose adjusted p-value is not below 1 - LEVEL is inconclusive. A decided claim whose statistic
    includes no training noise is only "consistent" / "inconsistent" with the claim in this one run."""
    family = [f for f in found if f.outcome is not None and f.tested and f.test is not None]
    tests = list({id(f.test): f for f in family}.values())
    ps = [f.test.p_value(f.null) for f in tests]
    adjusted = {id(f.test): (p, q) for f, p, q in zip(tests, ps, holm(ps), strict=True)}
    for f in family:
        f.p, f.p_adjusted = adjusted[id(f.test)]
        if f.p_adjusted >= 1 - LEVEL and f.outcome in (REPRODUCED, NOT_REPRODUCED):
            f.outcome = INCONCLUSIVE
    for f in found:
        if f.outcome in (REPRODUCED, NOT_REPRODUCED) and f.tested and (f.noise or {}).get("kind") == "none":
            f.outcome = CONSISTENT if f.outcome == REPRODUCED else INCONSISTENT
