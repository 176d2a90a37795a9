"""Bootstrap samples of every configuration's AP, paired over the same resampled validation images.

Each finished arm keeps per-image COCO evaluation data (``per_image[task]`` for its final model, and
``curve[i]["per_image"]["bbox"]`` at each evaluation during training). For one study every arm evaluated
on the same images gets the same resampled image lists (one seed), so the samples of two arms are paired:
their difference on resample b is measured on the same images. A configuration with several seeds
resamples its seeds too (``mean_over_resampled_seeds``). Samples are computed on first use and kept,
each with the statistic on the validation set itself, which the bias-corrected interval centres on.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..evaluation.bootstrap import BOOTSTRAP_METRICS, PerImageAP, resample_indices
from .groups import Group
from .stats import bias_corrected_interval, mean_over_resampled_seeds

__all__ = ["Evidence", "Samples"]


@dataclass(frozen=True)
class Samples:
    """A statistic on the validation images themselves (``estimate``; None when undefined there) and on
    each paired resample of them (``draws``). Differences of paired samples are samples of the
    difference."""

    estimate: float | None
    draws: np.ndarray

    def __sub__(self, other: Samples) -> Samples:
        both = self.estimate is not None and other.estimate is not None
        return Samples(self.estimate - other.estimate if both else None, self.draws - other.draws)

    def interval(self) -> tuple[float, float] | None:
        return bias_corrected_interval(self.draws, self.estimate)


def _per_image(arm: dict[str, Any], task: str, iteration: float | None) -> dict[str, Any] | None:
    if iteration is None:
        return (arm.get("per_image") or {}).get(task)
    point = next((p for p in arm.get("curve") or [] if p["iteration"] == iteration), None)
    return ((point or {}).get("per_image") or {}).get(task)


class Evidence:
    """Paired bootstrap samples for a study's arms (``resamples=0``: none, intervals come from seeds)."""

    def __init__(self, resamples: int, seed: int) -> None:
        self.resamples, self.seed = int(resamples), int(seed)
        self._indices: dict[tuple[int, ...], np.ndarray] = {}
        self._arm: dict[tuple[str, str, float | None], tuple[tuple[int, ...], dict[str, Samples]] | None] = {}

    def arm(self, arm: dict[str, Any], task: str, iteration: float | None = None):
        """(image ids, {metric: Samples}) of one arm, or None without per-image data."""
        key = (arm["name"], task, iteration)
        if key not in self._arm:
            data = _per_image(arm, task, iteration) if self.resamples > 0 else None
            if data is None:
                self._arm[key] = None
            else:
                images = tuple(data["image_ids"])
                if images not in self._indices:
                    self._indices[images] = resample_indices(len(images), self.resamples, self.seed)
                ap = PerImageAP(data)  # one table for the estimate and every resample
                estimates = ap.on_images(range(len(images)))
                draws = ap.bootstrap(self._indices[images])
                self._arm[key] = images, {m: Samples(estimates[m], draws[m]) for m in BOOTSTRAP_METRICS}
        return self._arm[key]

    def group(self, group: Group, task: str, metric: str = "AP", iteration: float | None = None):
        """(image ids, Samples) of a configuration: its seeds' mean on the images and on each resample;
        None when a seed lacks per-image data or the seeds were evaluated on different images."""
        if metric not in BOOTSTRAP_METRICS or not group.finished:
            return None
        found = [self.arm(a, task, iteration) for a in group.finished]
        if any(f is None for f in found) or len({f[0] for f in found}) > 1:
            return None
        seeds = [f[1][metric] for f in found]
        estimates = [s.estimate for s in seeds]
        estimate = None if None in estimates else float(np.mean(estimates))
        rng = np.random.default_rng([self.seed, zlib.crc32(",".join(group.names).encode())])
        return found[0][0], Samples(
            estimate, mean_over_resampled_seeds(np.stack([s.draws for s in seeds]), rng)
        )

    def paired(
        self, wanted: Sequence[tuple[Group, str]], task: str, iteration: float | None = None
    ) -> list[Samples] | None:
        """Samples of each (group, metric), aligned resample by resample; None unless all exist on the
        same images."""
        found = [self.group(g, task, m, iteration) for g, m in wanted]
        if any(f is None for f in found) or len({f[0] for f in found}) > 1:
            return None
        return [f[1] for f in found]

    def arm_intervals(self, arms: Sequence[dict[str, Any]], tasks: Sequence[str]) -> dict[str, Any]:
        """``{arm: {task: {metric: [low, high]}}}`` for every arm with per-image data."""
        out: dict[str, Any] = {}
        for a in arms:
            for task in tasks:
                found = self.arm(a, task) if a["status"] == "finished" else None
                if found is not None:
                    out.setdefault(a["name"], {})[task] = {
                        m: _rounded(found[1][m].interval()) for m in BOOTSTRAP_METRICS
                    }
        return out


def _rounded(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [round(interval[0], 3), round(interval[1], 3)]
