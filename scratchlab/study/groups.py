"""What the verdict and the report share: arm validation, groups of seeds, data regimes, labels, formats.

Arms with the same (data, init, norm, schedule, weights, model) but different seeds form one *group*; a
group's value is the mean over its finished seeds, with the sample std as its spread. Published weights (init
"weights") are told apart source by source: a group's ``kind`` is its provenance label for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .provenance import external_cost, pretraining_label

__all__ = [
    "INITS",
    "LAUNCHERS",
    "PRETRAINED",
    "UNDECIDED",
    "TASKS",
    "METRICS",
    "WELL_NORMED",
    "POORLY_NORMED",
    "INIT_PHRASE",
    "Group",
    "group_arms",
    "validate_arms",
    "regime_sizes",
    "regime_order",
    "sched_label",
    "fmt_count",
    "fmt_ap",
    "fmt_interval",
    "finished",
    "phrase",
    "pretrained_kinds",
]

# "weights": published weights (``weights: NAME_OR_PATH``); each source is compared as its own kind.
INITS = ("random", "classify", "direct", "weights")
# How a study runs its arms: in this process, or each a submitit job (this machine, or Slurm).
LAUNCHERS = ("inline", "local", "slurm")
PRETRAINED = ("classify", "direct")
STATUSES = ("finished", "failed", "diverged", "pending", "running")
UNDECIDED = ("pending", "running")  # statuses of arms that may still finish
# keypoints: keypoint AP (OKS) of a detector with a keypoint head, a task beside boxes and masks
TASKS = ("bbox", "segm", "keypoints")
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
WELL_NORMED = {"gn", "syncbn"}
POORLY_NORMED = {"bn", "frozenbn"}
INIT_PHRASE = {
    "random": "random init",
    "classify": "classification pre-training",
    "direct": "direct detection pre-training",
}
_REQUIRED = ("name", "init", "norm", "schedule", "data", "status")


def phrase(kind: str) -> str:
    """A start (a group's ``kind``) in a sentence; published weights are named by their provenance label."""
    return INIT_PHRASE.get(kind, f"pre-training on {kind}")


def validate_arms(arms: Sequence[dict[str, Any]]) -> None:
    """Raise ``ValueError`` naming the arm (index and name) for a record the verdict cannot use."""
    if not isinstance(arms, Sequence) or isinstance(arms, (str, bytes)):
        raise ValueError(f"arms must be a list of arm records, got {type(arms).__name__}")
    for i, arm in enumerate(arms):
        if not isinstance(arm, dict):
            raise ValueError(f"arm #{i}: must be a mapping, got {type(arm).__name__}")
        where = f"arm #{i} ({arm.get('name', '?')!r})"
        missing = [k for k in _REQUIRED if k not in arm]
        if missing:
            raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
        if arm["init"] not in INITS:
            raise ValueError(f"{where}: init must be one of {INITS}, got {arm['init']!r}")
        if arm["status"] not in STATUSES:
            raise ValueError(f"{where}: status must be one of {STATUSES}, got {arm['status']!r}")
        if not isinstance(arm["schedule"], (int, float)) or arm["schedule"] <= 0:
            raise ValueError(f"{where}: schedule must be a positive number, got {arm['schedule']!r}")
        final = arm.get("final")
        if final is not None and not isinstance(final, dict):
            raise ValueError(f"{where}: final must be null or a mapping")
        for task in TASKS:
            if final and final.get(task) is not None and not isinstance(final[task], dict):
                raise ValueError(f"{where}: final.{task} must be a mapping of metric -> AP")
        curve = arm.get("curve") or []
        if not isinstance(curve, list) or any(not isinstance(p, dict) or "iteration" not in p for p in curve):
            raise ValueError(f"{where}: curve must be a list of {{'iteration': ..., ...}} points")
        per_image = arm.get("per_image") or {}
        if not isinstance(per_image, dict) or any(
            not isinstance(v, dict) or not {"image_ids", "cells"} <= set(v) for v in per_image.values()
        ):
            raise ValueError(f"{where}: per_image must map a task to per-image evaluation data")


def finished(arm: dict[str, Any]) -> bool:
    """Finished with final metrics: the only arms whose AP counts."""
    return arm["status"] == "finished" and bool(arm.get("final"))


def sched_label(schedule: float) -> str:
    """``3.0`` -> ``3x``."""
    return f"{float(schedule):g}x"


@dataclass
class Group:
    """Arms sharing (data, init, norm, schedule, weights): the seeds of one configuration."""

    data: str
    init: str
    norm: str
    schedule: float
    arms: list[dict[str, Any]]
    weights: str | None = None

    @property
    def kind(self) -> str:
        """``init``, except that published weights are told apart by what they are (their label)."""
        return pretraining_label(self.arms[0]) if self.init == "weights" else self.init

    @property
    def external_pretraining(self) -> bool:
        """Its pre-training was paid for elsewhere and is in none of its cost figures."""
        return bool(self.finished) and all(external_cost(a) for a in self.finished)

    model: str = ""  # the detector (arm record "model"); "" for records written before it was kept
    show_model: bool = False  # the study has arms of several models: labels name it

    @property
    def finished(self) -> list[dict[str, Any]]:
        return [a for a in self.arms if finished(a)]

    @property
    def names(self) -> list[str]:
        """Names of the finished arms: those a comparison uses."""
        return [a["name"] for a in self.finished]

    def values(self, task: str, metric: str = "AP") -> list[float]:
        """``final[task][metric]`` of every finished seed that has it."""
        vals = [(a["final"].get(task) or {}).get(metric) for a in self.finished]
        return [float(v) for v in vals if v is not None]

    def mean(self, task: str, metric: str = "AP") -> float | None:
        vals = self.values(task, metric)
        return float(np.mean(vals)) if vals else None

    def cost(self, key: str, part: str = "total") -> float | None:
        """Mean over finished seeds of ``cost[part][key]``; None unless every finished seed has it."""
        vals = [((a.get("cost") or {}).get(part) or {}).get(key) for a in self.finished]
        if not vals or any(v is None for v in vals):
            return None
        return float(np.mean(vals))

    def label(self) -> str:
        """Short human label, e.g. ``random init (GN, 2x, 3 seeds)``."""
        n = len(self.finished)
        seeds = f", {n} seeds" if n > 1 else ""
        name = phrase(self.kind)
        data = (self.arms[0].get("provenance") or {}).get("data")
        if (
            self.init in PRETRAINED and data
        ):  # e.g. "classification pre-training on generated shapes, 8 classes"
            name += f" on {data}"
        model = f"{self.model}, " if self.show_model else ""
        return f"{name} ({model}{self.norm}, {sched_label(self.schedule)}{seeds})"

    def key(self) -> dict[str, Any]:
        """Machine-readable identity of the group."""
        key = {
            "data": self.data,
            "init": self.init,
            "pretrained_on": pretraining_label(self.arms[0]),
            "norm": self.norm,
            "schedule": self.schedule,
            "arms": [a["name"] for a in self.arms],
        }
        return {**key, "model": self.model} if self.model else key


def group_arms(arms: Iterable[dict[str, Any]]) -> list[Group]:
    """Group arms by (data, init, norm, schedule, weights, model), keeping first-seen order."""
    groups: dict[tuple[Any, ...], Group] = {}
    for a in arms:
        k = (a["data"], a["init"], a["norm"], float(a["schedule"]), a.get("weights"), a.get("model", ""))
        if k not in groups:
            groups[k] = Group(
                a["data"], a["init"], a["norm"], float(a["schedule"]), [], weights=k[-2], model=k[-1]
            )
        groups[k].arms.append(a)
    several = len({g.model for g in groups.values()}) > 1
    for g in groups.values():
        g.show_model = several
    return list(groups.values())


def pretrained_kinds(groups: Sequence[Group]) -> list[str]:
    """classify, direct, then each source of published weights in the order the study lists them."""
    return [*PRETRAINED, *dict.fromkeys(g.kind for g in groups if g.init == "weights")]


def regime_sizes(arms: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Training images per data regime (0 where unknown)."""
    sizes: dict[str, int] = {}
    for a in arms:
        sizes[a["data"]] = max(sizes.get(a["data"], 0), int(a.get("data_images") or 0))
    return sizes


def regime_order(arms: Iterable[dict[str, Any]]) -> list[str]:
    """Data regimes, most data first (as in the paper's figures)."""
    sizes = regime_sizes(arms)
    return sorted(sizes, key=lambda d: -sizes[d])


def fmt_count(n: float | None) -> str:
    """``1234567`` -> ``1.2M``: counts of images/pixels with one decimal."""
    if n is None:
        return "n/a"
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def fmt_interval(interval: Sequence[float] | None, signed: bool = False) -> str:
    """``[29.8, 32.5]`` (``[+0.8, +3.9]`` for a difference, ``signed``); ``n/a`` without one. Every interval
    a report or verdict prints is written here."""
    if interval is None:
        return "n/a"
    f = "+.1f" if signed else ".1f"
    return f"[{interval[0]:{f}}, {interval[1]:{f}}]"


def fmt_ap(value: float | None, interval: Sequence[float] | None = None) -> str:
    """``31.2 [29.8, 32.5]``: an AP with its 95% interval where there is one."""
    if value is None:
        return "n/a"
    return f"{value:.1f}" if interval is None else f"{value:.1f} {fmt_interval(interval)}"
