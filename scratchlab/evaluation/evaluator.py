"""The evaluator seam (Detectron2-style): the engine feeds batches, then asks for metrics.

The engine's loop is ``reset(); for batch: process(targets, outputs); metrics = evaluate()``, so any
metric (COCO AP today, something else later) plugs in without the engine knowing what it computes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

__all__ = ["DatasetEvaluator"]


class DatasetEvaluator(ABC):
    """Accumulates model outputs over a dataset and turns them into metrics."""

    @abstractmethod
    def reset(self) -> None:
        """Forget everything processed so far (called before each evaluation pass)."""

    @abstractmethod
    def process(self, inputs: Sequence[dict[str, Any]], outputs: Sequence[dict[str, Any]]) -> None:
        """Record one batch: ``inputs[i]`` describes the image whose predictions are ``outputs[i]``."""

    @abstractmethod
    def evaluate(self) -> dict[str, Any]:
        """Return the metrics for everything processed since the last :meth:`reset`."""
