"""Evaluation: the DatasetEvaluator seam and COCO box/mask/keypoint AP (faster-coco-eval or pycocotools).

Names are imported on first use: the study's pure modules read ground truth and results through the
torch-free submodules (ground_truth, results, summary, bootstrap) without loading the evaluator's torch."""

from importlib import import_module
from typing import Any

_HOMES = {
    "COCOEvaluator": "coco_evaluator",
    "instances_to_coco_results": "coco_evaluator",
    "DatasetEvaluator": "evaluator",
    "evaluate_predictions": "summary",
    "precision_recall_curves": "summary",
    "load_coco_gt": "ground_truth",
}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
