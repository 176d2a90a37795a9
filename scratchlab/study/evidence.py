"""Bootstrap samples of every configuration's AP, paired over the same resampled validation images.

Each finished arm keeps per-image COCO evaluation data (``per_image[task]`` for its final model, and
``curve[i]["per_image"]["bbox"]`` at each evaluation during training). For one study every arm evaluated
on the same images gets the same resampled image lists (one seed), so the samples of two arms are paired:
their difference on resample b is measured on the same images. A configuration with several seeds
resamples its seeds too (``mean_over_resampled_seeds``). Samples are computed on first use and kept.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..evaluation.bootstrap import BOOTSTRAP_METRICS, bootstrap_ap, resample_indices
from .groups import Group
from .stats import mean_over_resampled_seeds, percentile_interval

__all__ = ["Evidence"]


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
        self._arm: dict[
            tuple[str, str, float | None], tuple[tuple[int, ...], dict[str, np.ndarray]] | None
        ] = {}

    def arm(self, arm: dict[str, Any], task: str, iteration: float | None = None):
        """(image ids, {metric: samples}) of one arm, or None without per-image data."""
        key = (arm["name"], task, iteration)
        if key not in self._arm:
            data = _per_image(arm, task, iteration) if self.resamples > 0 else None
            if data is None:
                self._arm[key] = None
            else:
                images = tuple(data["image_ids"])
                if images not in self._indices:
                    self._indices[images] = resample_indices(len(images), self.resamples, self.seed)
                self._arm[key] = images, bootstrap_ap(data, self._indices[images])
        return self._arm[key]

    def group(self, group: Group, task: str, metric: str = "AP", iteration: float | None = None):
        """(image ids, samples) of a configuration: its seeds' mean on each resample; None when a seed
        lacks per-image data or the seeds were evaluated on different images."""
        if metric not in BOOTSTRAP_METRICS or not group.finished:
            return None
        found = [self.arm(a, task, iteration) for a in group.finished]
        if any(f is None for f in found) or len({f[0] for f in found}) > 1:
            return None
        rows = np.stack([f[1][metric] for f in found])
        rng = np.random.default_rng([self.seed, zlib.crc32(",".join(group.names).encode())])
        return found[0][0], mean_over_resampled_seeds(rows, rng)

    def paired(
        self, wanted: Sequence[tuple[Group, str]], task: str, iteration: float | None = None
    ) -> list[np.ndarray] | None:
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
                        m: _rounded(percentile_interval(found[1][m])) for m in BOOTSTRAP_METRICS
                    }
        return out


def _rounded(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [round(interval[0], 3), round(interval[1], 3)]
