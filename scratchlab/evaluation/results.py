"""COCO result records made ready for COCOeval: copies shaped for an IoU type, and ``loadRes`` (with a
bulk path for masks). No torch: the study's bootstrap loads results through this module."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import faster_coco_eval
import pycocotools.mask as mask_util

from .ground_truth import coco_apis

__all__ = ["detections_for", "mask_results", "load_results"]


def detections_for(
    iou_type: str, results: Sequence[Mapping[str, Any]], keypoint_cats: Iterable[int] = ()
) -> list[dict[str, Any]]:
    """Copies of ``results`` ready for ``loadRes`` as ``iou_type`` (loadRes writes area/id into each);
    for ``keypoints`` only those of ``keypoint_cats``, each with its box (as Detectron2: the box area
    places a detection in an area range)."""
    dts = [dict(r) for r in results]
    if iou_type == "keypoints":
        cats = set(keypoint_cats)
        dts = [r for r in dts if r["category_id"] in cats]
        for i, r in enumerate(dts):
            if "keypoints" not in r:
                raise ValueError(
                    f"keypoints evaluation: result #{i} (image {r.get('image_id')}) has no keypoints"
                )
    if iou_type == "segm":
        for i, r in enumerate(dts):
            if "segmentation" not in r:
                raise ValueError(
                    f"segm evaluation: result #{i} (image {r.get('image_id')}) has no segmentation"
                )
            # With a bbox present loadRes takes the box area as the instance area; drop it so the
            # small/medium/large split uses the mask area (as Detectron2 does).
            r.pop("bbox", None)
    return dts


def mask_results(results: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """``results`` for mask evaluation, checked to carry masks (read as they are, not copied: the mask
    area is the instance area whatever ``bbox`` they also have, as :func:`detections_for` arranges)."""
    for i, r in enumerate(results):
        if not isinstance(r.get("segmentation"), Mapping):
            raise ValueError(
                f"segm evaluation: result #{i} (image {r.get('image_id')}) has no segmentation RLE "
                "({'size': [h, w], 'counts': ...}), as COCO results carry"
            )
    return results


def _load_mask_results(gt: Any, results: list[dict[str, Any]]) -> Any:
    """faster-coco-eval's ``loadRes`` for mask results (the first record has ``segmentation`` and no
    ``bbox``), with the mask areas and boxes computed in one call each rather than two calls per record
    (most of ``loadRes``'s time on thousands of masks). Each record gets what loadRes gives it: ``area``
    (mask area), ``bbox`` when it has none (the box enclosing the mask), ``id`` (1-based position) and
    ``iscrowd`` 0."""
    masks = [r["segmentation"] for r in results]
    areas = faster_coco_eval.mask.area(masks).tolist()
    boxes = mask_util.toBbox(masks).tolist()  # pycocotools': the same boxes in half the time
    for k, (r, area, box) in enumerate(zip(results, areas, boxes, strict=True)):
        r.update(area=area, id=k + 1, iscrowd=0)
        r.setdefault("bbox", box)
    dt = faster_coco_eval.COCO()
    dt.dataset = {
        "info": copy.deepcopy(gt.dataset.get("info", {})),
        "images": list(gt.dataset["images"]),
        "categories": copy.deepcopy(gt.dataset["categories"]),
        "annotations": results,
    }
    with contextlib.redirect_stdout(io.StringIO()):
        dt.createIndex()
    return dt


def load_results(gt: Any, results: list[dict[str, Any]], backend: str) -> Any:
    """``gt.loadRes(results)``, also for an empty list (pycocotools' loadRes indexes ``anns[0]``).
    loadRes takes the kind of results from the first record; so does the bulk path for masks."""
    if (
        results
        and backend == "faster_coco_eval"
        and "segmentation" in results[0]
        and "bbox" not in results[0]
    ):
        return _load_mask_results(gt, results)
    if results:
        with contextlib.redirect_stdout(io.StringIO()):
            return gt.loadRes(results)
    dt = coco_apis(backend)[0]()
    dt.dataset = {
        "images": list(gt.dataset["images"]),
        "categories": gt.dataset["categories"],
        "annotations": [],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        dt.createIndex()
    return dt
