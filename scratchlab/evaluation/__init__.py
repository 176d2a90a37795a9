"""Evaluation: the DatasetEvaluator seam and COCO box/mask AP (faster-coco-eval or pycocotools)."""

from scratchlab.evaluation.coco_evaluator import (
    COCOEvaluator,
    evaluate_predictions,
    instances_to_coco_results,
    load_coco_gt,
    precision_recall_curves,
)
from scratchlab.evaluation.evaluator import DatasetEvaluator

__all__ = [
    "COCOEvaluator",
    "DatasetEvaluator",
    "evaluate_predictions",
    "instances_to_coco_results",
    "load_coco_gt",
    "precision_recall_curves",
]
