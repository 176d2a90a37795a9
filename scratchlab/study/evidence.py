"""Bootstrap samples of every configuration's AP, paired over the same resampled validation images.

Each finished arm keeps per-image COCO evaluation data (``per_image[task]`` for its final model, and
``curve[i]["per_image"]["bbox"]`` at each evaluation during training). For one study every arm evaluated
on the same images gets the same resampled image lists (one seed), so the samples of two arms are paired:
their difference on resample b is measured on the same images. A configuration with several seeds
takes their mean on each resample: the samples carry image sampling only, and training noise is added
to their interval by :meth:`Evidence.statistic` (the seeds' spread, or a calibrated sigma; ``stats.py``).
Samples are computed on first use and kept, each with the statistic on the validation set itself, which
the bias-corrected interval centres on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..evaluation.bootstrap import BOOTSTRAP_METRICS, PerImageAP, resample_indices
from .groups import Group
from .noise import Calibration
from .stats import Combined, NoiseTerm, bias_corrected_interval, combined_interval, noise_term

__all__ = ["Evidence", "Samples", "Statistic"]


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

    def __mul__(self, c: float) -> Samples:
        return Samples(None if self.estimate is None else c * self.estimate, c * self.draws)

    def __add__(self, other: Samples) -> Samples:
        return self - other * -1.0


@dataclass(frozen=True)
class Statistic:
    """A linear combination of configuration means with its spread: ``combined`` (None when nothing
    measures it), ``basis`` ("images": the paired bootstrap, "seeds": training runs only, "none") and
    the training-noise ``terms`` of its configurations."""

    estimate: float
    combined: Combined | None
    basis: str
    terms: tuple[NoiseTerm, ...]

    @property
    def interval(self) -> tuple[float, float] | None:
        return None if self.combined is None else self.combined.interval


def _seed_values(group: Group, task: str, metric: str, iteration: float | None) -> list[float]:
    """Each finished seed's AP at the end (``iteration`` None) or at one evaluation of its curve."""
    if iteration is None:
        return group.values(task, metric)
    key = f"{task}_{metric}"
    points = [
        next((p for p in a.get("curve") or [] if p["iteration"] == iteration), {}) for a in group.finished
    ]
    return [float(p[key]) for p in points if p.get(key) is not None]


def _per_image(arm: dict[str, Any], task: str, iteration: float | None) -> dict[str, Any] | None:
    if iteration is None:
        return (arm.get("per_image") or {}).get(task)
    point = next((p for p in arm.get("curve") or [] if p["iteration"] == iteration), None)
    return ((point or {}).get("per_image") or {}).get(task)


class Evidence:
    """Paired bootstrap samples for a study's arms (``resamples=0``: none, intervals come from seeds)."""

    def __init__(self, resamples: int, seed: int, noise: Calibration | None = None) -> None:
        self.resamples, self.seed, self.noise = int(resamples), int(seed), noise
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
        """(image ids, Samples) of a configuration: its seeds' mean on the images and on each resample
        (image sampling only); None when a seed lacks per-image data or the seeds were evaluated on
        different images."""
        if metric not in BOOTSTRAP_METRICS or not group.finished:
            return None
        found = [self.arm(a, task, iteration) for a in group.finished]
        if any(f is None for f in found) or len({f[0] for f in found}) > 1:
            return None
        seeds = [f[1][metric] for f in found]
        estimates = [s.estimate for s in seeds]
        estimate = None if None in estimates else float(np.mean(estimates))
        return found[0][0], Samples(estimate, np.mean(np.stack([s.draws for s in seeds]), axis=0))

    def term(self, group: Group, task: str, metric: str = "AP", iteration: float | None = None) -> NoiseTerm:
        """Training noise of the configuration's mean: its seeds' spread, else the calibration's sigma."""
        sigma = None if self.noise is None else self.noise.of(task, metric)
        df = np.inf if self.noise is None else self.noise.df
        return noise_term(_seed_values(group, task, metric, iteration), sigma, df)

    def derived_term(self, values: Sequence[float], task: str, metrics: Sequence[str]) -> NoiseTerm:
        """Training noise of a per-run quantity made of several metrics (e.g. AP75 - AP50): its seeds'
        spread, else the metrics' calibrated sigmas added as if independent (which errs wide)."""
        sigmas = [None if self.noise is None else self.noise.of(task, m) for m in metrics]
        sigma = None if None in sigmas else float(np.sqrt(sum(s * s for s in sigmas)))
        return noise_term(values, sigma, np.inf if self.noise is None else self.noise.df)

    def statistic(
        self, parts: Sequence[tuple[Group, str, float]], task: str, iteration: float | None = None
    ) -> Statistic | None:
        """sum of c x mean(group, metric) over ``parts`` (group, metric, c), with image sampling (the
        paired bootstrap, where every part has per-image data on the same images) and training noise;
        None when a part has no value."""
        means = [_seed_values(g, task, m, iteration) for g, m, _ in parts]
        if any(not v for v in means):
            return None
        estimate = float(sum(c * np.mean(v) for (_, _, c), v in zip(parts, means, strict=True)))
        terms = tuple(self.term(g, task, m, iteration) for g, m, _ in parts)
        scaled = tuple(
            NoiseTerm(c * c * t.var, t.df, t.kind, t.runs, t.sigma)
            for (_, _, c), t in zip(parts, terms, strict=True)
        )
        samples = self.paired([(g, m) for g, m, _ in parts], task, iteration)
        image = None
        if samples is not None:
            total = samples[0] * parts[0][2]
            for s, (_, _, c) in zip(samples[1:], parts[1:], strict=True):
                total = total + s * c
            image = total.interval()
            estimate = total.estimate if total.estimate is not None else estimate
        combined = combined_interval(estimate, image, scaled)
        basis = "images" if image is not None else "seeds" if combined is not None else "none"
        return Statistic(estimate, combined, basis, terms)

    def paired(
        self, wanted: Sequence[tuple[Group, str]], task: str, iteration: float | None = None
    ) -> list[Samples] | None:
        """Samples of each (group, metric), aligned resample by resample; None unless all exist on the
        same images."""
        found = [self.group(g, task, m, iteration) for g, m in wanted]
        if any(f is None for f in found) or len({f[0] for f in found}) > 1:
            return None
        return [f[1] for f in found]

    def arm_intervals(self, groups: Sequence[Group], tasks: Sequence[str]) -> dict[str, Any]:
        """``{arm: {task: {metric: [low, high]}}}`` for every finished arm with per-image data: its own
        images' bootstrap with one training run's noise (its configuration's seeds, else the calibration)."""
        out: dict[str, Any] = {}
        for g in groups:
            for a in g.finished:
                for task in tasks:
                    found = self.arm(a, task)
                    if found is None:
                        continue
                    cells = {}
                    for m in BOOTSTRAP_METRICS:
                        mean = self.term(g, task, m)
                        one_run = NoiseTerm(mean.var * mean.runs, mean.df, mean.kind, 1, mean.sigma)
                        s = found[1][m]
                        c = (
                            None
                            if s.estimate is None
                            else combined_interval(s.estimate, s.interval(), [one_run])
                        )
                        cells[m] = _rounded(None if c is None else c.interval)
                    out.setdefault(a["name"], {})[task] = cells
        return out


def _rounded(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [round(interval[0], 3), round(interval[1], 3)]
