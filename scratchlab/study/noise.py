"""Training noise calibrated for a recipe: how far one training run's AP moves from run to run.

A study whose arms have one seed each cannot see its own training noise. A calibration measures it once
for a recipe: a study with several seeds of every arm (``pretrain.vary_seed: true``, so a pre-trained
arm's pre-training changes seed with it), pooled over its configurations::

    scratchlab study --calibrate-noise DIR          # DIR: a finished study with 2+ seeds per arm

prints a ``noise:`` block (and writes it to ``DIR/noise.yaml``) to put in a study file of that recipe::

    noise:
      sigma: {bbox: {AP: 0.61, AP50: 1.2, AP75: 0.9}, segm: {AP: 0.5, AP50: 1.1, AP75: 0.8}}
      df: 10            # degrees of freedom of the pooled estimate
      from: runs/noise  # the calibration study it was measured on

``sigma`` is the pooled within-configuration standard deviation of one run's final AP (AP points),
``df`` the sum over configurations of seeds - 1. At a curve point (an evaluation during training) the
final AP's sigma stands in. No torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .groups import METRICS, TASKS, group_arms

__all__ = ["Calibration", "calibrate"]


@dataclass(frozen=True)
class Calibration:
    """A ``noise:`` block: per-run sigma by task and metric, its degrees of freedom and its source."""

    sigma: Mapping[str, Mapping[str, float]]
    df: float
    source: str = ""

    @classmethod
    def from_block(cls, block: Any, where: str = "noise") -> Calibration | None:
        """The block of a study file (None when there is none), or a ValueError naming the bad key."""
        if block is None:
            return None
        if not isinstance(block, Mapping) or not isinstance(block.get("sigma"), Mapping):
            raise ValueError(f"{where}: needs 'sigma: {{task: {{metric: AP points}}}}' and 'df'")
        sigma: dict[str, dict[str, float]] = {}
        for task, metrics in block["sigma"].items():
            if task not in TASKS or not isinstance(metrics, Mapping):
                raise ValueError(f"{where}.sigma: tasks are {list(TASKS)}, each a mapping of metric -> sigma")
            for metric, value in metrics.items():
                ok = (
                    metric in METRICS
                    and isinstance(value, (int, float))
                    and math.isfinite(value)
                    and value >= 0
                )
                if not ok:
                    raise ValueError(
                        f"{where}.sigma.{task}.{metric}: a metric of {list(METRICS)}, sigma >= 0"
                    )
                sigma.setdefault(task, {})[metric] = float(value)
        df = block.get("df")
        if not isinstance(df, (int, float)) or not df >= 1:
            raise ValueError(f"{where}.df: the calibration's degrees of freedom, a number >= 1")
        return cls(sigma, float(df), str(block.get("from", "")))

    def of(self, task: str, metric: str) -> float | None:
        """The per-run sigma of ``task`` ``metric`` (None when the calibration did not measure it)."""
        return (self.sigma.get(task) or {}).get(metric)

    def as_block(self) -> dict[str, Any]:
        return {"sigma": {t: dict(m) for t, m in self.sigma.items()}, "df": self.df, "from": self.source}


def calibrate(arms: Sequence[dict[str, Any]], source: str = "") -> Calibration:
    """Pooled within-configuration spread of a study's finished arms, each task and metric: sum over
    configurations of (k - 1) s^2, divided by the sum of k - 1. Raises ValueError when no configuration
    has two finished seeds."""
    groups = [g for g in group_arms(arms) if len(g.finished) >= 2]
    if not groups:
        raise ValueError("a noise calibration needs a study with two or more finished seeds of an arm")
    sigma: dict[str, dict[str, float]] = {}
    df = 0
    for task in TASKS:
        for metric in METRICS:
            values = [g.values(task, metric) for g in groups]
            values = [v for v in values if len(v) >= 2]
            if not values:
                continue
            dof = sum(len(v) - 1 for v in values)
            pooled = sum((len(v) - 1) * float(np.var(v, ddof=1)) for v in values) / dof
            sigma.setdefault(task, {})[metric] = round(math.sqrt(pooled), 4)
            df = max(df, dof)
    return Calibration(sigma, float(df), source)
