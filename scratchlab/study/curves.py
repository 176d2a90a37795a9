"""AP-vs-iteration curves of a study's arms, as numbers: the evaluations each run made, the stretch of
training before its first LR drop, where a curve first reaches a given AP, and one metric read at
matched values of another (AP75 at the same AP50). Pure functions of arm records and arrays; no torch.

A curve holds the evaluations during training (``curve``, ``{task}_{metric}`` keys) and the final
evaluation (``final``, at ``final.iteration`` or the arm's ``max_iter``): the last point of training is
on the curve too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .groups import Group

__all__ = [
    "arm_points",
    "final_iteration",
    "common_iterations",
    "window_end",
    "first_reach",
    "matched",
    "matched_gap",
    "overlap",
    "GRID",
]

GRID = 9  # matched levels at which two curves are compared over the range they share


def final_iteration(arm: dict[str, Any]) -> float | None:
    """The iteration of the final evaluation: as recorded, else the run's length."""
    it = (arm.get("final") or {}).get("iteration", arm.get("max_iter"))
    return None if it is None else float(it)


def arm_points(arm: dict[str, Any], task: str, metric: str = "AP", final: bool = True) -> dict[float, float]:
    """``{iteration: value}`` of one arm's ``task`` ``metric``: every evaluation during training that
    recorded it and, with ``final``, the final evaluation."""
    key = f"{task}_{metric}"
    out = {float(p["iteration"]): float(p[key]) for p in arm.get("curve") or [] if p.get(key) is not None}
    value = ((arm.get("final") or {}).get(task) or {}).get(metric)
    it = final_iteration(arm)
    if final and value is not None and it is not None:
        out[it] = float(value)
    return out


def common_iterations(
    groups: Sequence[Group], task: str, metric: str = "AP", final: bool = True
) -> list[float]:
    """Iterations at which every finished seed of every group has a value, in order."""
    sets = [set(arm_points(a, task, metric, final)) for g in groups for a in g.finished]
    return sorted(set.intersection(*sets)) if sets else []


def window_end(arms: Sequence[dict[str, Any]]) -> tuple[float, bool]:
    """End of the stretch at base LR that all ``arms`` trained through: the earliest first LR drop of
    any of them (from each run's own schedule as it trained), else, when none drops, the shortest
    run's final iteration (its whole run is at base LR). Second value: whether it is an LR drop."""
    drops = [min(a["lr_drops"]) for a in arms if a.get("lr_drops")]
    if drops:
        return float(min(drops)), True
    ends = [
        final_iteration(a) or max((p["iteration"] for p in a.get("curve") or []), default=0) for a in arms
    ]
    return float(min(ends)), False


def first_reach(iterations: Sequence[float], values: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Where a curve first reaches ``target``, for each column: ``values`` is [points, columns] (a curve
    per bootstrap resample, or one column), ``target`` [columns]. Between two evaluations the curve is
    read as a straight line; a curve already at the target at its first evaluation gives that
    iteration (nothing is known before it: an upper bound); nan where it never reaches it."""
    its = np.asarray(iterations, dtype=float)
    v = np.asarray(values, dtype=float).reshape(len(its), -1)
    t = np.broadcast_to(np.asarray(target, dtype=float), v.shape[1:])
    out = np.full(v.shape[1], np.nan)
    for j in range(v.shape[1]):
        hit = np.flatnonzero(v[:, j] >= t[j])
        if not hit.size:
            continue
        k = hit[0]
        if k == 0:
            out[j] = its[0]
            continue
        lo, hi = v[k - 1, j], v[k, j]
        out[j] = its[k - 1] + (its[k] - its[k - 1]) * (t[j] - lo) / (hi - lo)
    return out


def matched(x_a: np.ndarray, y_a: np.ndarray, x_b: np.ndarray, y_b: np.ndarray) -> tuple[float, float]:
    """Mean y of each curve at matched x, over ``GRID`` levels spanning the x range both curves cover
    (each curve's y read off the straight lines between its points, ordered by x); nan when the ranges
    do not overlap in more than a point."""
    met = overlap(x_a, x_b)
    if met is None:
        return float("nan"), float("nan")
    grid = np.linspace(*met, GRID)
    return float(np.mean(_read(x_a, y_a, grid))), float(np.mean(_read(x_b, y_b, grid)))


def matched_gap(x_a: np.ndarray, y_a: np.ndarray, x_b: np.ndarray, y_b: np.ndarray) -> float:
    """Mean of y_a - y_b at matched x (:func:`matched`); nan when the curves never meet."""
    a, b = matched(x_a, y_a, x_b, y_b)
    return a - b


def _read(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    return np.interp(at, np.asarray(x, dtype=float)[order], np.asarray(y, dtype=float)[order])


def overlap(x_a: Sequence[float], x_b: Sequence[float]) -> tuple[float, float] | None:
    """The x range two curves share, or None when they never meet."""
    lo, hi = max(min(x_a), min(x_b)), min(max(x_a), max(x_b))
    return (float(lo), float(hi)) if hi > lo else None
