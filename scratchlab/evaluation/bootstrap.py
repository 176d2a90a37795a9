"""Per-image COCO evaluation data, and AP recomputed on resamples of the validation images.

faster-coco-eval evaluates in two steps: ``COCOevalEvaluateImages`` matches detections to ground truth
separately for every (category, area range, image), and ``COCOevalAccumulate`` sorts the matched
detections of a list of such per-image results into precision/recall curves. The bootstrap runs the
first step once, keeps its results in a compact JSON form (``per_image_eval``), and on each resample
hands the real accumulator the resampled list (``ap_on_images``): an image drawn twice is in that list
twice, so its detections and ground truth count twice, exactly as if the set held two copies of it.

Only the "all" area range and one ``max_dets`` are kept: the bootstrap serves AP, AP50 and AP75.
Keypoint AP is matched as COCOeval's ``keypoints`` iouType does it (OKS over the categories that define
keypoints, 20 detections per image), with the same sigmas as the whole-set keypoint AP.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import faster_coco_eval
import faster_coco_eval.faster_eval_api_cpp as _C
import numpy as np

from .ground_truth import keypoint_category_ids, load_coco_gt
from .results import detections_for, load_results
from .summary import KEYPOINT_MAX_DETS, keypoint_sigmas, mean_ap

__all__ = [
    "BOOTSTRAP_METRICS",
    "PerImageAP",
    "per_image_eval",
    "ap_on_images",
    "resample_indices",
    "bootstrap_ap",
]

BOOTSTRAP_METRICS = ("AP", "AP50", "AP75")
_ALL_AREAS = [0.0, 1e10]  # COCO's "all" range


def _bits(flags: np.ndarray) -> list[int]:
    """[T, D] booleans -> one int per detection, bit t set when threshold t's flag is set."""
    weights = 1 << np.arange(flags.shape[0], dtype=np.int64)
    return [int(v) for v in (flags.astype(np.int64) * weights[:, None]).sum(0)]


def _cell(evaluation: Any, n_thr: int) -> list[Any] | None:
    """[valid ground truths, scores, match bits(, ignore bits)] of one image x category; None if empty."""
    matches, _, scores, gt_ignores, dt_ignores, _ = evaluation.__getstate__()
    n_gt = sum(not g for g in gt_ignores)
    if not scores and not n_gt:
        return None
    shape = (n_thr, len(scores))
    matched = np.asarray(matches, dtype=np.int64).reshape(shape) > 0  # > 0: a GT id, as COCOeval reads it
    ignored = np.asarray(dt_ignores, dtype=bool).reshape(shape)
    cell = [n_gt, list(scores), _bits(matched)]
    return cell + [_bits(ignored)] if ignored.any() else cell  # ignores only occur with crowd GT


def _rank_scores(cells: list[list[Any]]) -> None:
    """Replace scores by their dense rank over the whole evaluation (1 = lowest): the accumulator only
    sorts by score, ties included, so ranks give the same AP in a fraction of the JSON."""
    flat = np.asarray([s for c in cells for s in c[3]], dtype=np.float64)
    ranks = (np.unique(flat, return_inverse=True)[1] + 1).tolist() if flat.size else []
    at = 0
    for c in cells:
        c[3], at = ranks[at : at + len(c[3])], at + len(c[3])


def per_image_eval(
    coco_gt: str | Path | Mapping[str, Any] | Any,
    results: Sequence[Mapping[str, Any]],
    iou_type: str = "bbox",
    *,
    max_dets: int | None = None,
    img_ids: Iterable[int] | None = None,
    oks_sigmas: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Match ``results`` (COCO records) to ``coco_gt`` image by image; return the JSON-able data the
    bootstrap needs: ``{"iou_type", "max_dets", "iou_thresholds", "image_ids", "category_ids", "cells"}``
    where each cell is ``[image_index, category_index, n_valid_gt, score_ranks, match_bits]`` plus
    ``ignore_bits`` when a detection is ignored (bit t of a detection's match/ignore int: matched/ignored
    at IoU (OKS for keypoints) threshold t). ``img_ids``: the evaluated images (default: every GT image).
    ``max_dets``: default 100, 20 for keypoints; ``oks_sigmas``: one per keypoint, needed
    unless the set has COCO's 17."""
    gt = coco_gt if isinstance(coco_gt, faster_coco_eval.COCO) else load_coco_gt(coco_gt)
    for i, r in enumerate(results):
        if r.get("image_id") not in gt.imgs:
            raise ValueError(f"result #{i}: image_id {r.get('image_id')!r} is not in the COCO ground truth")
    keypoints = iou_type == "keypoints"
    cats = keypoint_category_ids(gt) if keypoints else []
    sigmas = keypoint_sigmas(gt, cats, oks_sigmas) if keypoints else None
    if max_dets is None:
        max_dets = KEYPOINT_MAX_DETS if keypoints else 100
    dt = load_results(gt, detections_for(iou_type, results, cats), "faster_coco_eval")
    ev = faster_coco_eval.COCOeval_faster(
        gt, dt, iou_type, separate_eval=True, print_function=lambda *_: None
    )
    p = ev.params
    if keypoints:
        p.kpt_oks_sigmas, p.catIds = sigmas, cats
    p.areaRng, p.areaRngLbl, p.maxDets = [_ALL_AREAS], ["all"], [int(max_dets)]
    p.imgIds = sorted({int(i) for i in (gt.getImgIds() if img_ids is None else img_ids)})
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
    # The per-image results of the C++ evaluator; indexed category-major, then area, then image.
    evaluations, n_img, n_thr = ev._evalImgs_cpp, len(p.imgIds), len(p.iouThrs)
    cells = []
    for k in range(len(p.catIds)):
        for i in range(n_img):
            cell = _cell(evaluations[k * n_img + i], n_thr)
            if cell is not None:
                cells.append([i, k, *cell])
    _rank_scores(cells)
    return {
        "iou_type": iou_type,
        "max_dets": int(max_dets),
        "iou_thresholds": [round(float(t), 4) for t in p.iouThrs],
        "image_ids": [int(i) for i in p.imgIds],
        "category_ids": [int(c) for c in p.catIds],
        "cells": cells,
    }


class _Params:
    """What ``COCOevalAccumulate`` reads of COCOeval's params (it takes only the length of imgIds)."""

    def __init__(self, data: Mapping[str, Any], n_images: int) -> None:
        self.iouThrs = list(data["iou_thresholds"])
        self.recThrs = list(np.linspace(0.0, 1.00, 101))  # COCO's 101 recall points
        self.maxDets = [int(data["max_dets"])]
        self.catIds = list(data["category_ids"])
        self.areaRng = [_ALL_AREAS]
        self.useCats = 1
        self.imgIds = [0] * n_images


def _table(data: Mapping[str, Any]) -> list[list[Any]]:
    """[category][image] -> faster-coco-eval ImageEvaluation rebuilt from the compact cells."""
    n_thr, n_img = len(data["iou_thresholds"]), len(data["image_ids"])
    empty = _C.ImageEvaluation()
    table = [[empty] * n_img for _ in data["category_ids"]]
    thr = np.arange(n_thr, dtype=np.int64)[:, None]
    for i, k, n_gt, scores, match_bits, *ignore_bits in data["cells"]:
        m = (np.asarray(match_bits, dtype=np.int64)[None, :] >> thr) & 1
        g = (
            np.asarray(ignore_bits[0] if ignore_bits else [0] * len(scores), dtype=np.int64)[None, :] >> thr
        ) & 1
        e = _C.ImageEvaluation.__new__(_C.ImageEvaluation)  # pybind11 unpickling: setstate on a new object
        state = (
            m.ravel().tolist(),
            [],
            [float(s) for s in scores],
            [False] * n_gt,
            g.astype(bool).ravel().tolist(),
            [],
        )
        e.__setstate__(state)
        table[k][i] = e
    return table


def _summary(precision: np.ndarray, iou_thresholds: Sequence[float]) -> dict[str, float | None]:
    """AP, AP50, AP75 (percent) from the accumulator's precision [T, R, K, 1, 1]."""
    thr = np.asarray(iou_thresholds)
    return {
        "AP": mean_ap(precision),
        "AP50": mean_ap(precision[np.isclose(thr, 0.5)]),
        "AP75": mean_ap(precision[np.isclose(thr, 0.75)]),
    }


class PerImageAP:
    """One evaluation's per-image data with its per-image results rebuilt once, so its AP on the whole
    set and on every resample come from the same table."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data, self._table = data, _table(data)

    def on_images(self, indices: Sequence[int]) -> dict[str, float | None]:
        """AP/AP50/AP75 over the images ``indices`` (positions in ``data["image_ids"]``; a repeated
        position counts as often as it appears), accumulated by faster-coco-eval."""
        evaluations = [row[i] for row in self._table for i in indices]
        out = _C.COCOevalAccumulate(_Params(self.data, len(indices)), evaluations)
        return _summary(np.asarray(out["precision"]), self.data["iou_thresholds"])

    def bootstrap(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Each metric of ``BOOTSTRAP_METRICS`` on every resample (rows of ``indices``), NaN where no
        drawn image has ground truth. Pass every arm the same ``indices`` to pair them."""
        out = {m: np.full(len(indices), np.nan) for m in BOOTSTRAP_METRICS}
        for b, row in enumerate(indices):
            for m, v in self.on_images(row).items():
                if v is not None:
                    out[m][b] = v
        return out


def ap_on_images(data: Mapping[str, Any], indices: Sequence[int]) -> dict[str, float | None]:
    """AP/AP50/AP75 over the images ``indices`` (see :meth:`PerImageAP.on_images`)."""
    return PerImageAP(data).on_images(indices)


def resample_indices(n_images: int, n_resamples: int, seed: int) -> np.ndarray:
    """[n_resamples, n_images] image positions drawn with replacement; the same seed, the same draws."""
    if n_images < 1 or n_resamples < 1:
        raise ValueError(f"bootstrap needs images and resamples, got {n_images} and {n_resamples}")
    return np.random.default_rng(seed).integers(0, n_images, size=(n_resamples, n_images))


def bootstrap_ap(data: Mapping[str, Any], indices: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric on every resample (see :meth:`PerImageAP.bootstrap`)."""
    return PerImageAP(data).bootstrap(indices)
