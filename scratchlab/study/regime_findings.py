"""The claims across data regimes (He et al. 2019, Section 5.3) and across pre-training costs (Li et al.
2021), as numbers.

* **data_regime**: pre-training's lead grows as training data shrinks. The interaction (pre-trained -
  random at the least data) - (the same at the most data), one statistic over four configurations
  evaluated on the same validation images, so the paired bootstrap resamples all four together.
  The same two configurations (norm, schedule, detector) are held at both regimes where they exist.
* **crossover**: the smallest data share down to which random init stays within the margin of
  pre-training, regime by regime from the most data (each regime's interval unadjusted; no claim rests
  on it: it says where the claim above bites). Its share has an interval of its own: on each paired
  image resample, with a draw of training noise added per regime, the share where that resample's
  difference first falls below the margin; the 95% range of those shares (open-ended where resamples
  stay within at every regime, or are within at none).
* **direct_vs_classify**: direct detection pre-training at equal or better AP (within the margin) than
  classification pre-training, at a lower cost of pre-training, decided separately for each cost the
  study measured (images, pixels, wall time, peak memory). Cost figures are point values (counts are
  exact; wall time and memory are one measurement each); the AP comparison is one hypothesis however
  many costs it is judged on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .evidence import Evidence
from .findings import (
    Finding,
    best_group,
    compare,
    reference_random,
    signal_of,
    tested,
    untestable,
)
from .groups import Group
from .stats import (
    NOT_REPRODUCED,
    REPRODUCED,
    crossover_share_interval,
    crossover_shares,
    direction,
    noise_kind,
    with_training_noise,
    within_margin,
)

__all__ = ["data_regime", "crossover", "direct_vs_classify", "PRETRAIN_COSTS"]

# The cost record's keys of what pre-training spent (``cost.pretrain``), each a claim of its own.
PRETRAIN_COSTS = ("images_seen", "pixels_seen", "wall_s", "peak_memory_mb")


def _config(g: Group) -> tuple:
    return g.init, g.norm, g.schedule, g.model, g.kind


def _held(groups: Sequence[Group], regimes: Sequence[str], task: str) -> Group | None:
    """Among ``groups``, the configuration (at the first regime) that exists with AP at every regime of
    ``regimes``; the longest schedule, then the best AP at the first regime."""
    at = {d: {_config(g): g for g in groups if g.data == d and g.mean(task) is not None} for d in regimes}
    both = [at[regimes[0]][c] for c in at[regimes[0]] if all(c in at[d] for d in regimes)]
    return max(both, key=lambda g: (g.schedule, g.mean(task))) if both else None


def _at(g: Group, groups: Sequence[Group], data: str) -> Group:
    return next(h for h in groups if h.data == data and _config(h) == _config(g))


def data_regime(
    ev: Evidence, groups: Sequence[Group], regimes: Sequence[str], pt_kind: str, task: str
) -> Finding | None:
    """(pre-trained - random at ``regimes[-1]``) - (the same at ``regimes[0]``). Claim: positive."""
    if len(regimes) < 2:
        return None
    full, small = regimes[0], regimes[-1]
    pt = _held([g for g in groups if g.kind == pt_kind], (full, small), task)
    rd = _held(reference_random(groups), (full, small), task)
    if pt is None or rd is None:
        return None
    pt_s, rd_s = _at(pt, groups, small), _at(rd, groups, small)
    parts = [(pt_s, "AP", 1.0), (rd_s, "AP", -1.0), (pt, "AP", -1.0), (rd, "AP", 1.0)]
    stat = ev.statistic(parts, task)
    small_gap, full_gap = pt_s.mean(task) - rd_s.mean(task), pt.mean(task) - rd.mean(task)
    values = {"a": small_gap, "b": full_gap, "diff": small_gap - full_gap}
    f = tested(Finding("data_regime", small, task, pt_s, rd_s, values, others=[pt, rd]), stat)
    f.outcome = signal_of(direction(f.interval, +1), *(g.mean(task) for g in (pt_s, rd_s, pt, rd)))
    f.extra = {"small": small, "full": full}
    return f


def crossover(
    ev: Evidence,
    groups: Sequence[Group],
    regimes: Sequence[str],
    sizes: dict[str, int],
    pt_kind: str,
    task: str,
    margin: float,
) -> Finding | None:
    """Random minus pre-trained at each regime (the same configurations throughout, where they exist),
    most data first; the crossover is the last regime of the run, from the most data down, where the
    interval lies above ``-margin``. ``extra.share`` is its share of the most data (None: not within
    the margin even with the most data), ``extra.below`` the next smaller regime (where it was not).
    ``extra.share_estimate`` is where the estimates themselves cross (no interval test), and
    ``extra.share_interval`` the 95% range of where the resamples cross (see ``stats``)."""
    if len(regimes) < 2 or not all(sizes.get(d) for d in regimes):
        return None
    pt = _held([g for g in groups if g.kind == pt_kind], regimes, task)
    rd = _held(reference_random(groups), regimes, task)
    if pt is None or rd is None:
        return None
    pairs = [(_at(rd, groups, d), _at(pt, groups, d)) for d in regimes]
    rows = [compare("crossover", ev, r, p, task) for r, p in pairs]
    within = [within_margin(r.interval, margin) for r in rows]
    shares = [sizes[d] / sizes[regimes[0]] for d in regimes]
    reached = next((i for i, w in enumerate(within) if w != REPRODUCED), len(rows))
    f = rows[max(reached - 1, 0)]
    f.extra = {
        "margin": margin,
        "share": sizes[regimes[reached - 1]] / sizes[regimes[0]] if reached else None,
        "below": regimes[reached] if reached < len(rows) else None,
        "share_interval": _share_interval(ev, pairs, shares, task, margin),
        "share_estimate": _finite(crossover_shares([[r.values["diff"]] for r in rows], shares, margin)[0]),
        "regimes": [
            {
                "data": d,
                "share": round(sizes[d] / sizes[regimes[0]], 4),
                "diff": round(r.values["diff"], 4),
                "interval": None if r.interval is None else [round(x, 3) for x in r.interval],
                "within_margin": w,
            }
            for d, r, w in zip(regimes, rows, within, strict=True)
        ],
    }
    return f


def _finite(x: float) -> float | None:
    return float(x) if x != float("inf") else None


def _share_interval(
    ev: Evidence, pairs: Sequence[tuple[Group, Group]], shares: Sequence[float], task: str, margin: float
) -> dict | None:
    """The crossover share's interval from the regimes' paired resamples, each with its training noise
    (drawn independently per regime: other runs); None unless every regime has per-image data on the
    same images."""
    diffs, kinds = [], []
    for i, (rd, pt) in enumerate(pairs):
        samples = ev.paired([(rd, "AP"), (pt, "AP")], task)
        if samples is None:
            return None
        terms = [ev.term(rd, task), ev.term(pt, task)]
        kinds += terms
        diffs.append(with_training_noise((samples[0] - samples[1]).draws, terms, [ev.seed, i]))
    found = crossover_share_interval(diffs, shares, margin)
    return None if found is None else {**found, "noise": noise_kind(kinds)}


def direct_vs_classify(ev: Evidence, rg: Sequence[Group], margin: float) -> list[Finding]:
    """Direct minus classification pre-training bbox AP, judged once per pre-training cost both record:
    reproduced when the AP is within ``margin`` or better and the cost lower; not reproduced when direct
    is worse beyond the margin or costs as much or more. Both fine-tuned on the same schedule, as the
    paper compares them (1x each): a classification arm trained longer is not the comparison."""
    d = best_group([g for g in rg if g.init == "direct"])
    classify = [g for g in rg if g.init == "classify"]
    c = best_group([g for g in classify if g.schedule == d.schedule]) if d is not None else None
    if c is None:
        other = best_group(classify)
        if d is None or other is None:
            return []
        why = "no_classify_at_schedule"
        return [untestable("direct_vs_classify", "bbox", d, other, why, schedule=d.schedule, margin=margin)]
    ap = compare("direct_vs_classify", ev, d, c, "bbox")
    ap.null = -margin
    judged = signal_of(within_margin(ap.interval, margin), ap.values["a"], ap.values["b"])
    out = []
    for key in PRETRAIN_COSTS:
        dc, cc = d.cost(key, "pretrain"), c.cost(key, "pretrain")
        if not dc or not cc:
            continue
        ratio = dc / cc
        extra = {
            "cost": key,
            "ratio": round(ratio, 4),
            "direct_cost": dc,
            "classify_cost": cc,
            "margin": margin,
        }
        cheaper = ratio < 1
        out.append(replace(ap, extra=extra, outcome=judged if cheaper else NOT_REPRODUCED, tested=cheaper))
    if not out:
        return [untestable("direct_vs_classify", "bbox", d, c, "no_pretraining_cost", margin=margin)]
    return out
