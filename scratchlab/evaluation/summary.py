"""COCOeval runs and their summaries: AP/AR in percent from the accumulated tables, per category, and
precision-recall curves, through faster-coco-eval or pycocotools.

Keypoint AP is COCOeval's ``keypoints`` iouType (OKS matching, 20 detections per image, areas all /
medium / large) over the categories that define ``keypoints``; its per-keypoint OKS sigmas are COCO
person's for a 17-keypoint set, else the caller's (``eval.keypoint_oks_sigmas``).

Metrics are in percent (0-100, like Detectron2). A metric with no ground truth to measure (e.g. APl
when no object is large: COCOeval's -1) is ``None`` rather than NaN, so the returned dict is valid JSON.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .ground_truth import check_image_ids, coco_apis, keypoint_category_ids, load_coco_gt
from .mask_eval import PreparedMaskEval
from .results import detections_for, load_results, mask_results

__all__ = [
    "IOU_TYPES",
    "DEFAULT_IOU_TYPES",
    "Metrics",
    "mean_ap",
    "evaluate_predictions",
    "accumulated",
    "precision_recall_curves",
    "keypoint_sigmas",
    "KEYPOINT_MAX_DETS",
]

_log = logging.getLogger(__name__)

IOU_TYPES = ("bbox", "segm", "keypoints")
DEFAULT_IOU_TYPES = ("bbox", "segm")  # keypoints only when asked for (a keypoint model's evaluation)
KEYPOINT_MAX_DETS = 20  # COCO's keypoint benchmark (Params.setKpParams)
# Summary key -> (IoU threshold or None for 0.50:0.95, area range label), as in COCOeval.summarize().
_SUMMARY = {
    "AP": (None, "all"),
    "AP50": (0.5, "all"),
    "AP75": (0.75, "all"),
    "APs": (None, "small"),
    "APm": (None, "medium"),
    "APl": (None, "large"),
}
Metrics = dict[str, dict[str, float | None]]


def mean_ap(precision: np.ndarray) -> float | None:
    """Mean of the valid (> -1) precision entries in percent; None when nothing had ground truth."""
    valid = precision[precision > -1]
    return float(valid.mean() * 100) if valid.size else None


def _recall(coco_eval: Any, max_dets: int) -> dict[str, float | None]:
    """COCOeval.summarize()'s recall stats from ``eval['recall']`` [T, K, A, M]: AR at each of its
    detection limits (all areas; AR1, AR10, AR100 for COCO's) and ARs/ARm/ARl at ``max_dets``."""
    p = coco_eval.params
    recall = np.asarray(coco_eval.eval["recall"])
    areas = list(p.areaRngLbl)
    out = {f"AR{m}": mean_ap(recall[:, :, areas.index("all"), j]) for j, m in enumerate(p.maxDets)}
    at_max = recall[..., list(p.maxDets).index(max_dets)]
    for key, area in (("ARs", "small"), ("ARm", "medium"), ("ARl", "large")):
        if area in areas:
            out[key] = mean_ap(at_max[:, :, areas.index(area)])
    return out


def _summarize(
    coco_eval: Any, gt: Any, max_dets: int, per_category: bool, recall: bool = False
) -> dict[str, float | None]:
    """AP summaries from ``coco_eval.eval['precision']`` [T, R, K, A, M] at ``max_dets`` detections
    (and with ``recall`` the AR summaries of :func:`_recall`).

    Read directly rather than via ``summarize()``: pycocotools' summarize() hard-codes maxDets=100
    (wrong for another ``max_dets``) and prints; this is its own averaging over the accumulated
    precision table, the same for both backends, and it also yields Detectron2's per-category AP.
    """
    p = coco_eval.params
    precision = np.asarray(coco_eval.eval["precision"])[..., list(p.maxDets).index(max_dets)]
    out: dict[str, float | None] = {}
    for key, (iou, area) in _SUMMARY.items():
        if area not in p.areaRngLbl:  # keypoints have no "small" range
            continue
        s = precision[..., list(p.areaRngLbl).index(area)]
        if iou is not None:
            s = s[np.isclose(p.iouThrs, iou)]
        out[key] = mean_ap(s)
    if per_category:
        for k, cat_id in enumerate(p.catIds):
            name = gt.cats[cat_id].get("name", str(cat_id))
            out[f"AP-{name}"] = mean_ap(precision[:, :, k, 0])
    if recall:
        out.update(_recall(coco_eval, max_dets))
    return out


def evaluate_predictions(
    coco_gt: str | Path | Mapping[str, Any] | Any,
    results: Sequence[Mapping[str, Any]],
    iou_types: Iterable[str] = DEFAULT_IOU_TYPES,
    *,
    backend: str = "faster_coco_eval",
    max_dets: int = 100,
    img_ids: Iterable[int] | None = None,
    per_category: bool = False,
    oks_sigmas: Sequence[float] | None = None,
    recall: bool = False,
) -> Metrics:
    """Run COCOeval for each IoU type on COCO-format ``results``; returns ``{iou_type: {AP, AP50, ...}}``.

    ``coco_gt`` is a JSON path, a dict, or an already loaded COCO object of ``backend``. ``img_ids``
    restricts evaluation to those images (default: every GT image). Values are percent, None where
    COCOeval has no ground truth to measure. ``segm`` needs ``segmentation`` in every result;
    ``keypoints`` needs ``keypoints`` in the results of keypoint categories and uses ``oks_sigmas`` (one
    per keypoint; None = COCO person's, for 17 keypoints). ``recall`` adds COCOeval's recall stats
    (``AR1``, ``AR10``, ``AR<max_dets>``, ``ARs``, ``ARm``, ``ARl``; keypoints: ``AR20``, ``ARm``, ``ARl``).
    """
    iou_types = list(iou_types)
    if isinstance(max_dets, bool) or not isinstance(max_dets, int) or max_dets < 1:
        raise ValueError(f"max_dets must be a positive int, got {max_dets!r}")
    for t in iou_types:
        if t not in IOU_TYPES:
            raise ValueError(f"unknown iou type {t!r}; expected a subset of {IOU_TYPES}")
    coco_cls = coco_apis(backend)[0]
    gt = coco_gt if isinstance(coco_gt, coco_cls) else load_coco_gt(coco_gt, backend, "segm" in iou_types)
    check_image_ids(gt, results)
    metrics: Metrics = {}
    for iou_type in iou_types:
        coco_eval = accumulated(gt, results, iou_type, backend, max_dets, img_ids, oks_sigmas)
        dets = KEYPOINT_MAX_DETS if iou_type == "keypoints" else max_dets
        metrics[iou_type] = _summarize(coco_eval, gt, dets, per_category, recall)
    return metrics


def keypoint_sigmas(gt: Any, cats: list[int], sigmas: Sequence[float] | None) -> np.ndarray:
    """Per-keypoint OKS sigmas for the keypoint categories ``cats`` of ``gt``."""
    if not cats:
        raise ValueError("keypoints evaluation: no category of the ground truth defines 'keypoints'")
    names = gt.cats[cats[0]]["keypoints"]
    if sigmas is None:
        if len(names) != 17:
            raise ValueError(
                f"keypoints evaluation: the ground truth has {len(names)} keypoints ({names}); COCO's "
                "OKS sigmas are for 17. Give one sigma per keypoint (eval.keypoint_oks_sigmas)"
            )
        return (
            np.array(
                [
                    0.26,
                    0.25,
                    0.25,
                    0.35,
                    0.35,
                    0.79,
                    0.79,
                    0.72,
                    0.72,
                    0.62,
                    0.62,
                    1.07,
                    1.07,
                    0.87,
                    0.87,
                    0.89,
                    0.89,
                ]
            )
            / 10
        )
    if len(sigmas) != len(names) or min(sigmas) <= 0:
        raise ValueError(
            f"eval.keypoint_oks_sigmas: {len(names)} positive values needed (one per keypoint: "
            f"{names}), got {list(sigmas)}"
        )
    return np.array([float(v) for v in sigmas])


def accumulated(
    gt: Any,
    results: Sequence[Mapping[str, Any]],
    iou_type: str,
    backend: str,
    max_dets: int,
    img_ids: Iterable[int] | None,
    oks_sigmas: Sequence[float] | None = None,
) -> Any:
    """A COCOeval of ``backend`` for ``iou_type`` after evaluate() and accumulate()."""
    keypoint_cats = keypoint_category_ids(gt) if iou_type == "keypoints" else []
    sigmas = keypoint_sigmas(gt, keypoint_cats, oks_sigmas) if iou_type == "keypoints" else None
    # One IoU worker: faster-coco-eval's mask IoU holds the GIL, so its default 8 threads only add
    # scheduling (docs/notes/performance.md, "Evaluation and inference speed").
    extra = {"print_function": _log.debug, "rle_iou_max_workers": 1} if backend == "faster_coco_eval" else {}
    if iou_type == "segm" and backend == "faster_coco_eval":
        # The same COCOeval_faster, fed from the records in bulk and the ground truth prepared once.
        coco_eval = PreparedMaskEval(gt, mask_results(results), **extra)
    else:
        dt = load_results(gt, detections_for(iou_type, results, keypoint_cats), backend)
        coco_eval = coco_apis(backend)[1](gt, dt, iou_type, **extra)
    if iou_type == "keypoints":
        coco_eval.params.kpt_oks_sigmas = sigmas
        coco_eval.params.catIds = keypoint_cats
        coco_eval.params.maxDets = [KEYPOINT_MAX_DETS]
    else:
        # Sorted and unique, as COCOeval expects (faster-coco-eval sorts them itself).
        coco_eval.params.maxDets = sorted({1, 10, max_dets})
    if img_ids is not None:
        coco_eval.params.imgIds = sorted({int(i) for i in img_ids})
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_eval.evaluate()
        coco_eval.accumulate()
    return coco_eval


def precision_recall_curves(
    coco_gt: str | Path | Mapping[str, Any] | Any,
    results: Sequence[Mapping[str, Any]],
    iou_type: str = "bbox",
    iou: float = 0.5,
    *,
    backend: str = "faster_coco_eval",
    max_dets: int = 100,
    img_ids: Iterable[int] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Per-category precision-recall curves at IoU ``iou`` (all areas, ``max_dets`` detections): COCOeval's
    accumulated precision at its 101 recall thresholds, ``{name: {"recall": [...], "precision": [...]}}``.
    A category without ground truth in the evaluated images is left out."""
    if iou_type not in IOU_TYPES:
        raise ValueError(f"unknown iou type {iou_type!r}; expected one of {IOU_TYPES}")
    coco_cls = coco_apis(backend)[0]
    gt = coco_gt if isinstance(coco_gt, coco_cls) else load_coco_gt(coco_gt, backend, iou_type == "segm")
    coco_eval = accumulated(gt, results, iou_type, backend, max_dets, img_ids)
    p = coco_eval.params
    t = int(np.argmin(np.abs(np.asarray(p.iouThrs) - iou)))
    if not np.isclose(p.iouThrs[t], iou):
        raise ValueError(f"IoU {iou} is not one of COCOeval's thresholds {list(p.iouThrs)}")
    precision = np.asarray(coco_eval.eval["precision"])[
        t, :, :, list(p.areaRngLbl).index("all"), list(p.maxDets).index(max_dets)
    ]
    curves = {}
    for k, cat_id in enumerate(p.catIds):
        if (precision[:, k] > -1).any():
            curves[gt.cats[cat_id].get("name", str(cat_id))] = {
                "recall": [float(r) for r in p.recThrs],
                "precision": precision[:, k].clip(0).tolist(),
            }
    return curves
