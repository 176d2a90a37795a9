"""Mask (``segm``) COCOeval on faster-coco-eval with its Python glue done in bulk.

The matching and the precision/recall tables stay faster-coco-eval's: :class:`PreparedMaskEval` is a
``COCOeval_faster`` whose ``evaluate()`` and ``accumulate()`` run unchanged (its C++
``COCOevalEvaluateAccumulate``, or ``COCOevalEvaluateImages`` + ``COCOevalAccumulate`` with
``separate_eval``, over the IoU lists and instance datasets). Only the two per-record Python steps it
calls are replaced, by what they compute (for COCO's settings: categories used, no LVIS, no boundary
IoU; other settings are refused):

- ``_prepare``: the ground truth side (each annotation's ``ignore`` = ``iscrowd``, its mask converted
  to RLE by faster-coco-eval's own ``calculateRleForAllAnnotations``, the C++ instance dataset) is
  built once per loaded ground-truth object and reused, since a training run evaluates the same ground
  truth again and again. The detection side is built from the result records in one pass: the
  records ``loadRes`` would make (``id`` = 1-based position, ``area`` = mask area from bulk
  ``mask.area`` calls, ``iscrowd`` 0), grouped per (image, category) in result order, as
  ``getAnnIds``/``append_ref`` order them, and loaded into the C++ dataset in one ``load_tuple`` call.
- ``computeIoU``: the same per-(image, category) mask IoU (detections stably sorted by descending score,
  the first ``maxDets[-1]``, crowd ground truth with crowd IoU) through faster-coco-eval's ``mask.iou``,
  reading the grouped lists instead of converting the C++ dataset back to Python per pair.

tests/evaluation/test_mask_eval.py checks the precision/recall tables are identical to
faster-coco-eval's own path and the summaries to pycocotools'.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import faster_coco_eval
import faster_coco_eval.faster_eval_api_cpp as _C
import numpy as np
import pycocotools.mask as pycocotools_mask
from faster_coco_eval.core import mask as mask_api

__all__ = ["PreparedMaskEval", "prepared_mask_gt"]

_CACHE_ATTR = "_scratchlab_prepared_segm"


class _PreparedGT:
    """faster-coco-eval's ``_prepare`` of a whole ground truth for ``segm``, done once."""

    def __init__(self, gt: Any) -> None:
        anns = list(gt.anns.values())
        sizes = {i: (img["height"], img["width"]) for i, img in gt.imgs.items()}
        for ann in anns:
            ann["ignore"] = int(ann.get("iscrowd", 0))  # as _prepare: iscrowd wins over a given ignore
        mask_api.calculateRleForAllAnnotations(anns, sizes, True, False, 0.02, 1)
        self.dataset = _C.Dataset()
        self.groups: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        for ann in anns:
            self.dataset.append_ref(ann["image_id"], ann["category_id"], ann)
            self.groups[ann["image_id"], ann["category_id"]].append(ann)
        self.rles = {k: [a["rle"] for a in v] for k, v in self.groups.items()}
        self.iscrowd = {k: [int(a.get("iscrowd", 0)) for a in v] for k, v in self.groups.items()}
        self.n_anns = len(anns)


def prepared_mask_gt(gt: Any) -> _PreparedGT:
    """The ground truth prepared for mask evaluation, cached on ``gt`` (rebuilt if its annotations
    changed in number, e.g. after a new ``createIndex``)."""
    cached = getattr(gt, _CACHE_ATTR, None)
    if cached is None or cached.n_anns != len(gt.anns):
        cached = _PreparedGT(gt)
        setattr(gt, _CACHE_ATTR, cached)
    return cached


def _mask_areas(masks: list[Mapping[str, Any]]) -> list[int]:
    """Pixel areas of RLE ``masks``: pycocotools' ``mask.area`` (a third of faster-coco-eval's time
    here), called on at most 255 masks at a time because pycocotools sizes its result array as uint8."""
    return [int(a) for k in range(0, len(masks), 255) for a in pycocotools_mask.area(masks[k : k + 255])]


def _detections_by_pair(results: Sequence[Mapping[str, Any]]) -> dict[tuple[int, int], list[dict[str, Any]]]:
    """What loadRes makes of each mask result, as far as the C++ evaluation reads it (``id`` =
    1-based position, ``area`` = mask area, ``iscrowd`` 0, ``score``; ``segmentation`` for the IoU),
    per (image, category) in result order."""
    areas = _mask_areas([r["segmentation"] for r in results])
    groups: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for k, (r, area) in enumerate(zip(results, areas, strict=True)):
        groups[r["image_id"], r["category_id"]].append(
            {"id": k + 1, "area": area, "iscrowd": 0, "score": r["score"], "segmentation": r["segmentation"]}
        )
    return groups


class PreparedMaskEval(faster_coco_eval.COCOeval_faster):
    """``COCOeval_faster(gt, <loadRes(results)>, "segm")`` without building the detection COCO object.

    ``results`` are COCO mask results (``image_id``, ``category_id``, ``score``, ``segmentation`` RLE).
    Set ``params`` as for COCOeval, then call ``evaluate()`` and ``accumulate()``.
    """

    def __init__(self, gt: Any, results: Sequence[Mapping[str, Any]], **kwargs: Any) -> None:
        super().__init__(gt, None, "segm", **kwargs)
        self._results = results

    def _prepare(self) -> None:
        p = self.params
        if not p.useCats or self.lvis_style or p.iouType != "segm":
            raise ValueError("PreparedMaskEval evaluates COCO segm with categories (useCats=1, no LVIS)")
        prepared = prepared_mask_gt(self.cocoGt)
        self.gt_dataset, self._gt = prepared.dataset, prepared
        img_ids, cat_ids = set(p.imgIds), set(p.catIds)
        self._dts = {
            pair: dts
            for pair, dts in _detections_by_pair(self._results).items()
            if pair[0] in img_ids and pair[1] in cat_ids
        }
        self.dt_dataset = _C.Dataset()  # loaded per (image, category) in one call
        self.dt_dataset.load_tuple(
            (len(self._dts), [(float(i), float(c), d) for (i, c), d in self._dts.items()])
        )
        self._nonempty_iou_pairs = {pair for pair in self._dts if pair in prepared.groups}

    def computeIoU(self, imgId: int, catId: int) -> list[float] | np.ndarray:
        dts = self._dts.get((imgId, catId), [])
        gt_rles = self._gt.rles.get((imgId, catId), [])
        if not dts or not gt_rles:
            return []
        # Python's sort is stable: the order of np.argsort(-score, kind="mergesort").
        dts = sorted(dts, key=_negative_score)[: self.params.maxDets[-1]]
        return mask_api.iou([d["segmentation"] for d in dts], gt_rles, self._gt.iscrowd[imgId, catId])


def _negative_score(dt: Mapping[str, Any]) -> float:
    return -dt["score"]
