"""The study's findings as numbers: which configurations, their values, the deciding difference with its
95% interval, and the outcome. No English here (``verdict.py`` writes it from these).

The questions are those of He, Girshick & Dollar, "Rethinking ImageNet Pre-training" (ICCV 2019) and of
direct detection pre-training (Li, Zhang & Zhang 2021). Each finding is only computed when the arms it
needs exist. Its interval comes from the paired bootstrap over validation images (seeds resampled too),
or, without per-image data, from the seeds alone; with neither it is None and the finding cannot decide.

* Pre-trained starts are chosen by ``Group.kind`` (``pt_kind``): classify, direct, or one source of
  published weights, named by its provenance label.
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
    combined_interval,
    direction,
    holm,
    noise_kind,
    within_margin,
)

__all__ = [
    "Finding",
    "early",
    "catch_up",
    "regime_gap",
    "localisation",
    "normalisation",
    "direct_vs_classify",
    "cost",
    "best_group",
    "compare",
    "headline",
    "decide",
    "KINDS",
    "CONSISTENT",
    "INCONSISTENT",
]

# Every kind a Finding can have, in the order a verdict lists them (study.json's "findings" keys).
KINDS = (
    "headline",
    "early",
    "catch_up",
    "regime_gap",
    "localisation",
    "normalisation",
    "direct_vs_classify",
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

    @property
    def arms(self) -> list[str]:
        """The arms it compares, ``a`` side first: the finished seeds (every seed of a side that has none
        finished, e.g. a BN group that diverged)."""
        sides = [g for g in (self.a, self.b) if g is not None]
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

# ------------------------------------------------------------------------------------------- helpers


def best_group(groups: Sequence[Group], task: str = "bbox") -> Group | None:
    """The configuration with the highest mean final AP on ``task`` (None if none has it)."""
    cands = [g for g in groups if g.mean(task) is not None]
    return max(cands, key=lambda g: g.mean(task)) if cands else None


def _reference_random(groups: Sequence[Group]) -> list[Group]:
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


def _tested(f: Finding, stat: Statistic | None) -> Finding:
    """``f`` with the statistic's interval, basis, noise and test."""
    if stat is not None:
        f.interval, f.basis, f.noise, f.test = stat.interval, stat.basis, _noise(stat), stat.combined
    return f


def compare(kind: str, ev: Evidence, a: Group, b: Group, task: str, metric: str = "AP") -> Finding:
    """a - b on final ``task`` ``metric``, with its interval (no outcome: the caller judges it)."""
    va, vb = a.mean(task, metric), b.mean(task, metric)
    stat = ev.statistic([(a, metric, 1.0), (b, metric, -1.0)], task)
    return _tested(Finding(kind, a.data, task, a, b, {"a": va, "b": vb, "diff": va - vb}), stat)


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


def _strictness(arm: dict[str, Any], task: str) -> float:
    final = arm["final"][task]
    return (final.get("AP75") or 0) - (final.get("AP50") or 0)


def _signal(outcome: str, *values: float | None) -> str:
    """Inconclusive when every side is at 0 AP: nothing was learned, so a zero-width interval around an
    exact tie says nothing about the claim."""
    return INCONCLUSIVE if all(v == 0 for v in values) else outcome


def _curve_value(g: Group, task: str, iteration: float) -> float | None:
    vals = [
        next((p.get(f"{task}_AP") for p in a.get("curve") or [] if p["iteration"] == iteration), None)
        for a in g.finished
    ]
    return None if not vals or any(v is None for v in vals) else sum(vals) / len(vals)


def _evaluated(g: Group, task: str) -> set[float]:
    """Iterations at which every finished seed of ``g`` has a ``task`` AP."""
    sets = [
        {p["iteration"] for p in a.get("curve") or [] if p.get(f"{task}_AP") is not None} for a in g.finished
    ]
    return set.intersection(*sets) if sets else set()


def _early_window(arms: Sequence[dict[str, Any]]) -> tuple[float, bool]:
    """End of the 'early' window and whether it is an LR drop (else half the run: the LR never drops)."""
    drops = [min(a["lr_drops"]) for a in arms if a.get("lr_drops")]
    if drops:
        return float(min(drops)), True
    last = [a.get("max_iter") or max((p["iteration"] for p in a.get("curve") or []), default=0) for a in arms]
    return float(min(last) // 2), False


# ------------------------------------------------------------------------------------------ findings


def early(ev: Evidence, rg: Sequence[Group], pt_kind: str, task: str) -> Finding | None:
    """Pre-trained minus random AP at the last iteration both evaluated before the first LR drop.
    Claim: positive (pre-training is ahead early)."""
    pts = [g for g in rg if g.kind == pt_kind and _evaluated(g, task)]
    rands = [g for g in _reference_random(rg) if _evaluated(g, task)]
    if not pts or not rands:
        return None
    pt = best_group(pts, task) or pts[0]
    # The longest random schedule has the longest stretch at base LR before its first drop.
    rd = max(rands, key=lambda g: (g.schedule, g.mean(task) or -1.0))
    end, is_drop = _early_window(pt.finished + rd.finished)
    common = sorted(i for i in _evaluated(pt, task) & _evaluated(rd, task) if i <= end)
    if not common:
        return None
    it = common[-1]
    va, vb = _curve_value(pt, task, it), _curve_value(rd, task, it)
    stat = ev.statistic([(pt, "AP", 1.0), (rd, "AP", -1.0)], task, iteration=it)
    f = _tested(Finding("early", pt.data, task, pt, rd, {"a": va, "b": vb, "diff": va - vb}), stat)
    f.outcome = _signal(direction(f.interval, +1), va, vb)
    f.extra = {"iteration": it, "window_end": end, "window_is_lr_drop": is_drop}
    return f


def catch_up(ev: Evidence, rg: Sequence[Group], pt_kind: str, task: str, margin: float) -> Finding | None:
    """Random init at its longest schedule minus the best pre-trained AP. Claim: at worst ``-margin``."""
    pt = best_group([g for g in rg if g.kind == pt_kind], task)
    rands = [g for g in _reference_random(rg) if g.mean(task) is not None]
    if pt is None or not rands:
        return None
    longest = max(g.schedule for g in rands)
    rd = best_group([g for g in rands if g.schedule == longest], task)
    f = compare("catch_up", ev, rd, pt, task)
    f.outcome = _signal(within_margin(f.interval, margin), f.values["a"], f.values["b"])
    f.extra, f.null = {"margin": margin}, -margin
    return f


def regime_gap(ev: Evidence, rg: Sequence[Group], pt_kind: str, task: str) -> Finding | None:
    """Best pre-trained minus best random final AP at one data regime (no claim on its own)."""
    pt, rd = best_group([g for g in rg if g.kind == pt_kind], task), best_group(_reference_random(rg), task)
    if pt is None or rd is None:
        return None
    f = compare("regime_gap", ev, pt, rd, task)
    f.outcome = None
    f.extra = {"ahead": direction(f.interval, +1)}
    return f


def localisation(ev: Evidence, rg: Sequence[Group], pt_kind: str, task: str) -> Finding | None:
    """(random - pre-trained at AP75) - (random - pre-trained at AP50). Claim: positive (scratch holds up
    better at the strict IoU)."""
    pt, rd = best_group([g for g in rg if g.kind == pt_kind], task), best_group(_reference_random(rg), task)
    if pt is None or rd is None:
        return None
    v = {(g, m): grp.mean(task, m) for g, grp in (("pt", pt), ("rd", rd)) for m in ("AP50", "AP75")}
    if any(x is None for x in v.values()):
        return None
    gap50, gap75 = v["rd", "AP50"] - v["pt", "AP50"], v["rd", "AP75"] - v["pt", "AP75"]
    s = ev.paired([(rd, "AP75"), (pt, "AP75"), (rd, "AP50"), (pt, "AP50")], task)
    image = None if s is None else ((s[0] - s[1]) - (s[2] - s[3])).interval()
    # Training noise of each side's AP75 - AP50, run by run (the two move together within a run).
    terms = tuple(
        ev.derived_term([_strictness(a, task) for a in g.finished], task, ("AP75", "AP50")) for g in (rd, pt)
    )
    combined = combined_interval(gap75 - gap50, image, terms)
    basis = "images" if image is not None else "seeds" if combined is not None else "none"
    values = {"a": gap75, "b": gap50, "diff": gap75 - gap50, **{f"{g}_{m}": x for (g, m), x in v.items()}}
    f = Finding("localisation", pt.data, task, rd, pt, values)
    _tested(f, Statistic(gap75 - gap50, combined, basis, terms))
    f.outcome = _signal(direction(f.interval, +1), v["rd", "AP50"], v["pt", "AP50"])
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
        f.outcome, f.extra = _signal(direction(f.interval, -1), f.values["a"], f.values["b"]), extra
        out.append(f)
    return out


def direct_vs_classify(ev: Evidence, rg: Sequence[Group]) -> Finding | None:
    """Direct minus classification pre-training bbox AP, with their total pixels (pre-training included).
    Claim: positive at fewer total pixels (Li et al.)."""
    d = best_group([g for g in rg if g.init == "direct"])
    c = best_group([g for g in rg if g.init == "classify"])
    if d is None or c is None or not d.cost("pixels_seen") or not c.cost("pixels_seen"):
        return None
    f = compare("direct_vs_classify", ev, d, c, "bbox")
    ratio = d.cost("pixels_seen") / c.cost("pixels_seen")
    f.extra = {
        "pixels_ratio": round(ratio, 4),
        "direct_pixels": d.cost("pixels_seen"),
        "classify_pixels": c.cost("pixels_seen"),
    }
    ap = _signal(direction(f.interval, +1), f.values["a"], f.values["b"])
    f.outcome = NOT_REPRODUCED if ratio >= 1 or ap == NOT_REPRODUCED else ap
    f.tested = ratio < 1
    return f


def cost(ev: Evidence, rg: Sequence[Group], pt_kind: str, rd: Group | None) -> Finding | None:
    """Best pre-trained configuration vs scratch (``rd``, else the best reference random): bbox AP against
    everything seen, pre-training included."""
    pt = best_group([g for g in rg if g.kind == pt_kind])
    rd = rd or best_group(_reference_random(rg))
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
    the claim's null), Holm-adjusted across every claim, task and data regime of the study; a claim
    whose adjusted p-value is not below 1 - LEVEL is inconclusive. A decided claim whose statistic
    includes no training noise is only "consistent" / "inconsistent" with the claim in this one run."""
    family = [f for f in found if f.outcome is not None and f.tested and f.test is not None]
    ps = [f.test.p_value(f.null) for f in family]
    for f, p, adjusted in zip(family, ps, holm(ps), strict=True):
        f.p, f.p_adjusted = p, adjusted
        if adjusted >= 1 - LEVEL and f.outcome in (REPRODUCED, NOT_REPRODUCED):
            f.outcome = INCONCLUSIVE
    for f in found:
        if f.outcome in (REPRODUCED, NOT_REPRODUCED) and f.tested and (f.noise or {}).get("kind") == "none":
            f.outcome = CONSISTENT if f.outcome == REPRODUCED else INCONSISTENT
