"""The claims read off AP-vs-iteration curves (He et al. 2019, Figures 1 and 5), as numbers.

* **early**: pre-training and random init trained at the same schedule, compared over every evaluation
  both made before the first LR drop (a window of the curves, not one point): the window-mean AP gap,
  and how many iterations random init needs to reach the pre-trained AP at the window's last
  evaluation.
* **localisation**: AP75 at matched AP50: each start's AP75 read off its own AP75-vs-AP50 curve
  (evaluations during training and the final one), at levels of AP50 both curves pass through. Two
  starts with the same IoU profile give zero whatever their overall AP; a plain (AP75 gap - AP50 gap)
  would not. Curves that never meet cannot be compared: "not testable here".

Intervals: the paired bootstrap over validation images where the curve points have per-image data,
with training noise of each configuration's per-run statistic (its seeds' spread, else the calibrated
sigma of the metric at one point, which errs wide for a mean over points).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .curves import (
    arm_points,
    common_iterations,
    final_iteration,
    first_reach,
    matched,
    matched_gap,
    overlap,
    window_end,
)
from .evidence import Evidence, Samples, Statistic
from .findings import Finding, best_group, reference_random, signal_of, tested, untestable
from .groups import Group
from .stats import bias_corrected_bounds, combined_interval, direction

__all__ = ["early", "localisation", "MIN_EARLY_POINTS"]

MIN_EARLY_POINTS = 2  # evaluations before the first LR drop that make a curve of it


def _key(g: Group, it: float) -> float | None:
    """The evidence key of an iteration of ``g``'s curve: None for its final evaluation."""
    return None if it == final_iteration(g.finished[0]) else it


def _alone(g: Group, arm: dict) -> Group:
    """One run of ``g`` as a configuration of its own (for its per-run statistic)."""
    return replace(g, arms=[arm])


def _mean_at(g: Group, task: str, metric: str, its: Sequence[float], final: bool = True) -> list[float]:
    """The configuration's mean over seeds at each of ``its``."""
    points = [arm_points(a, task, metric, final) for a in g.finished]
    return [float(np.mean([p[i] for p in points])) for i in its]


def _statistic(estimate: float, image: Samples | None, terms: tuple) -> Statistic:
    interval = None if image is None else image.interval()
    if image is not None and image.estimate is not None:
        estimate = image.estimate
    combined = combined_interval(estimate, interval, terms)
    basis = "images" if interval is not None else "seeds" if combined is not None else "none"
    return Statistic(estimate, combined, basis, terms)


# ---------------------------------------------------------------------------------------------- early


def _window_gap(ev: Evidence, pt: Group, rd: Group, task: str, its: Sequence[float]) -> Statistic:
    """Mean over ``its`` of pre-trained minus random AP: the paired bootstrap sums the resampled gaps
    point by point (the same resampled images at every point); each side's training noise is the spread
    of its runs' window means."""
    seeds = [
        [float(np.mean(_mean_at(_alone(g, a), task, "AP", its, False))) for a in g.finished] for g in (pt, rd)
    ]
    estimate = float(np.mean(seeds[0]) - np.mean(seeds[1]))
    pairs = [ev.paired([(pt, "AP"), (rd, "AP")], task, it) for it in its]
    image = None
    if all(p is not None for p in pairs):
        image = pairs[0][0] - pairs[0][1]
        for p in pairs[1:]:
            image = image + (p[0] - p[1])
        image = image * (1 / len(its))
    terms = tuple(ev.derived_term(v, task, ("AP",)) for v in seeds)
    return _statistic(estimate, image, terms)


def _reach(ev: Evidence, pt: Group, rd: Group, task: str, at: float) -> dict:
    """Iterations random init's curve (its final evaluation included) needs to reach the pre-trained AP
    at iteration ``at``: the point value and, with per-image data along both curves, its interval over
    the resampled images (training noise not included: nothing here measures a run's spread in
    iterations)."""
    target = _mean_at(pt, task, "AP", [at], final=False)[0]
    its = common_iterations([rd], task)
    point = float(first_reach(its, np.array([_mean_at(rd, task, "AP", its)]).T, np.array([target]))[0])
    out = {
        "reach_at": at,
        "reach_target": target,
        "reach_iteration": None if np.isnan(point) else point,
        "reach_interval": None,
        "reach_basis": "point",
    }
    base = ev.group(pt, task, "AP", at)
    curve = [ev.group(rd, task, "AP", _key(rd, i)) for i in its]
    if base is None or any(c is None or c[0] != base[0] for c in curve):
        return out
    draws = first_reach(its, np.stack([c[1].draws for c in curve]), base[1].draws)
    bounds = bias_corrected_bounds(draws, None if np.isnan(point) else point)
    if bounds is not None:
        out["reach_interval"], out["reach_basis"] = (
            [round(b, 1) if b is not None else None for b in bounds],
            "images",
        )
    return out


def early(ev: Evidence, rg: Sequence[Group], pt_kind: str, task: str) -> Finding | None:
    """Pre-trained minus random AP, averaged over the evaluations both made before the first LR drop,
    at the longest schedule both starts trained and evaluated during training. Claim: positive."""
    pts = [g for g in rg if g.kind == pt_kind and g.mean(task) is not None]
    rands = [g for g in reference_random(rg) if g.mean(task) is not None]
    if not pts or not rands:
        return None

    def curved(gs: list[Group]) -> list[Group]:
        return [g for g in gs if common_iterations([g], task, final=False)]

    shared = {g.schedule for g in curved(pts)} & {g.schedule for g in curved(rands)}
    if not shared:
        return untestable(
            "early",
            task,
            best_group(pts, task),
            best_group(rands, task),
            "no_equal_schedule_curves",
            pretrained_curves=sorted({g.schedule for g in curved(pts)}),
            random_curves=sorted({g.schedule for g in curved(rands)}),
        )
    s = max(shared)
    pt = best_group([g for g in curved(pts) if g.schedule == s], task)
    rd = best_group([g for g in curved(rands) if g.schedule == s], task)
    end, is_drop = window_end(pt.finished + rd.finished)
    its = [i for i in common_iterations([pt, rd], task, final=False) if i <= end]
    window = {"schedule": s, "window_end": end, "window_is_lr_drop": is_drop}
    if len(its) < MIN_EARLY_POINTS:
        return untestable(
            "early",
            task,
            pt,
            rd,
            "too_few_early_evaluations",
            evaluations=len(its),
            needed=MIN_EARLY_POINTS,
            **window,
        )
    stat = _window_gap(ev, pt, rd, task, its)
    va = float(np.mean(_mean_at(pt, task, "AP", its, False)))
    vb = float(np.mean(_mean_at(rd, task, "AP", its, False)))
    f = tested(Finding("early", pt.data, task, pt, rd, {"a": va, "b": vb, "diff": stat.estimate}), stat)
    f.outcome = signal_of(direction(f.interval, +1), va, vb)
    f.extra = {"iterations": its, **window, **_reach(ev, pt, rd, task, its[-1])}
    return f


# --------------------------------------------------------------------------------------- localisation


def _profile(ev: Evidence, g: Group, task: str) -> tuple[list[float], np.ndarray, np.ndarray, list]:
    """(iterations, mean AP50, mean AP75) of ``g``'s curve where every seed has both, and the bootstrap
    samples of each point ([AP50 Samples, AP75 Samples] per iteration; empty without per-image data)."""
    its = [i for i in common_iterations([g], task, "AP50") if i in set(common_iterations([g], task, "AP75"))]
    x, y = _curve(g, task)
    samples = [[ev.group(g, task, m, _key(g, i)) for m in ("AP50", "AP75")] for i in its]
    ok = its and all(s is not None for pair in samples for s in pair)
    return its, x, y, ([[s[1] for s in pair] for pair in samples] if ok else [])


def _curve(g: Group, task: str) -> tuple[np.ndarray, np.ndarray]:
    its = [i for i in common_iterations([g], task, "AP50") if i in set(common_iterations([g], task, "AP75"))]
    return np.array(_mean_at(g, task, "AP50", its)), np.array(_mean_at(g, task, "AP75", its))


def _seed_gaps(g: Group, task: str, other: tuple[np.ndarray, np.ndarray], first: bool) -> list[float]:
    """The statistic with each of ``g``'s runs alone against the other side's mean curve (``first``: g is
    the random side)."""
    out = []
    for a in g.finished:
        own = _curve(_alone(g, a), task)
        gap = matched_gap(*own, *other) if first else matched_gap(*other, *own)
        if np.isfinite(gap):
            out.append(float(gap))
    return out


def _estimates(s: list, k: int) -> np.ndarray:
    return np.array([p[k].estimate for p in s], dtype=float)


def localisation(ev: Evidence, rg: Sequence[Group], pt_kind: str, task: str) -> Finding | None:
    """Random minus pre-trained AP75 at matched AP50 along both curves (mean over the AP50 range both
    pass through). Claim: positive (scratch localises better at the same AP50). Not testable here when
    the curves' AP50 ranges never overlap."""
    pt = best_group([g for g in rg if g.kind == pt_kind], task)
    rd = best_group(reference_random(rg), task)
    if pt is None or rd is None:
        return None
    (its_r, x_r, y_r, s_r), (its_p, x_p, y_p, s_p) = _profile(ev, rd, task), _profile(ev, pt, task)
    if not its_r or not its_p:
        return None
    met = overlap(x_r, x_p)
    if met is None:
        ranges = {
            "a_ap50": [float(x_r.min()), float(x_r.max())],
            "b_ap50": [float(x_p.min()), float(x_p.max())],
        }
        return untestable(
            "localisation", task, rd, pt, "curves_never_meet", points=[len(its_r), len(its_p)], **ranges
        )
    estimate = matched_gap(x_r, y_r, x_p, y_p)
    image = None
    if s_r and s_p:

        def draws(s: list) -> tuple[np.ndarray, np.ndarray]:
            return np.stack([p[0].draws for p in s]), np.stack([p[1].draws for p in s])

        (dx_r, dy_r), (dx_p, dy_p) = draws(s_r), draws(s_p)
        per = np.array(
            [matched_gap(dx_r[:, b], dy_r[:, b], dx_p[:, b], dy_p[:, b]) for b in range(dx_r.shape[1])]
        )
        est = matched_gap(_estimates(s_r, 0), _estimates(s_r, 1), _estimates(s_p, 0), _estimates(s_p, 1))
        image = Samples(est if np.isfinite(est) else None, per)
    terms = (
        ev.derived_term(_seed_gaps(rd, task, (x_p, y_p), True), task, ("AP75",)),
        ev.derived_term(_seed_gaps(pt, task, (x_r, y_r), False), task, ("AP75",)),
    )
    stat = _statistic(estimate, image, terms)
    va, vb = matched(x_r, y_r, x_p, y_p)
    f = Finding("localisation", pt.data, task, rd, pt, {"a": va, "b": vb, "diff": stat.estimate})
    tested(f, stat)
    f.outcome = signal_of(direction(f.interval, +1), float(x_r.max()), float(x_p.max()))
    f.extra = {"matched_ap50": [round(met[0], 3), round(met[1], 3)], "points": [len(its_r), len(its_p)]}
    if image is not None:
        f.extra["unmet_share"] = round(float(np.mean(~np.isfinite(image.draws))), 4)
    return f
