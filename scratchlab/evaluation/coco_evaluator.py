"""COCO box, mask and keypoint AP for torchvision detection outputs, through faster-coco-eval or
pycocotools.

Keypoint AP is COCOeval's ``keypoints`` iouType (OKS matching, 20 detections per image, areas all /
medium / large) over the categories that define ``keypoints``; its per-keypoint OKS sigmas are COCO
person's for a 17-keypoint set, else the caller's (``eval.keypoint_oks_sigmas``).

Metrics are in percent (0-100, like Detectron2). A metric with no ground truth to measure (e.g. APl
when no object is large: COCOeval's -1) is ``None`` rather than NaN, so the returned dict is valid JSON.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import operator
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import faster_coco_eval
import numpy as np
import pycocotools.coco
import pycocotools.cocoeval
import pycocotools.mask as mask_util
import torch

from ..utils.dist import all_gather_objects, get_world_size, is_main_process
from ..utils.io import write_json
from .evaluator import DatasetEvaluator
from .mask_eval import PreparedMaskEval

__all__ = [
    "COCOEvaluator",
    "evaluate_predictions",
    "precision_recall_curves",
    "instances_to_coco_results",
    "load_coco_gt",
]

_log = logging.getLogger(__name__)

BACKENDS = ("faster_coco_eval", "pycocotools")
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


def _apis(backend: str) -> tuple[type, type]:
    """(COCO class, COCOeval class) of ``backend``."""
    if backend == "faster_coco_eval":
        return faster_coco_eval.COCO, faster_coco_eval.COCOeval_faster
    if backend == "pycocotools":
        return pycocotools.coco.COCO, pycocotools.cocoeval.COCOeval
    raise ValueError(f"unknown COCO eval backend {backend!r}; expected one of {BACKENDS}")


def _validate_gt(data: Any, where: str, require_segm: bool) -> None:
    """Raise ValueError naming ``where`` and the record when ``data`` is not a usable COCO GT dict."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: COCO ground truth must be a JSON object, got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{where}: missing or non-list {key!r}")
    images = {}
    for i, img in enumerate(data["images"]):
        if not all(k in img for k in ("id", "height", "width")):
            raise ValueError(f"{where}: images[{i}] needs 'id', 'height' and 'width': {img}")
        images[img["id"]] = img
    cat_ids = {c.get("id") for c in data["categories"]}
    needed = ("id", "image_id", "category_id", "bbox", "area") + (("segmentation",) if require_segm else ())
    for i, ann in enumerate(data["annotations"]):
        missing = [k for k in needed if k not in ann]
        if missing:
            raise ValueError(f"{where}: annotations[{i}] (id {ann.get('id')}) lacks {missing}")
        if ann["image_id"] not in images:
            raise ValueError(
                f"{where}: annotations[{i}] (id {ann['id']}) has unknown image_id {ann['image_id']}"
            )
        if ann["category_id"] not in cat_ids:
            raise ValueError(
                f"{where}: annotations[{i}] (id {ann['id']}) has unknown category_id {ann['category_id']}"
            )
        if len(ann["bbox"]) != 4:
            raise ValueError(f"{where}: annotations[{i}] (id {ann['id']}) bbox must be [x, y, w, h]")


def load_coco_gt(
    source: str | Path | Mapping[str, Any], backend: str = "faster_coco_eval", require_segm: bool = False
) -> Any:
    """Load and validate a COCO ground truth (JSON path or dict) as ``backend``'s COCO object.

    The dict is deep-copied: COCOeval writes flags (``ignore``) into GT annotations, and the caller's
    data must not change. Annotations without ``iscrowd`` get the COCO default 0.
    """
    coco_cls, _ = _apis(backend)
    if isinstance(source, (str, Path)):
        where = str(source)
        try:
            data = json.loads(Path(source).read_text())
        except FileNotFoundError as exc:
            raise ValueError(f"{where}: COCO ground-truth file not found") from exc
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON: {exc}") from exc
    elif isinstance(source, Mapping):
        where, data = "<coco_gt dict>", copy.deepcopy(dict(source))
    else:
        raise TypeError(f"coco_gt must be a JSON path, a dict or a {backend} COCO object, got {type(source)}")
    _validate_gt(data, where, require_segm)
    for ann in data["annotations"]:
        ann.setdefault("iscrowd", 0)
    gt = coco_cls()
    gt.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints "creating index..."
        gt.createIndex()
    return gt


def _category_lookup(label_to_category_id: Mapping[int, int] | Sequence[int] | None) -> dict[int, int] | None:
    """Normalise the label mapping: a sequence lists category ids in label order (label k -> seq[k-1])."""
    if label_to_category_id is None:
        return None  # identity
    if isinstance(label_to_category_id, Mapping):
        return {int(k): int(v) for k, v in label_to_category_id.items()}
    return {i + 1: int(c) for i, c in enumerate(label_to_category_id)}


def instances_to_coco_results(
    image_id: int,
    output: Mapping[str, torch.Tensor],
    label_to_category_id: Mapping[int, int] | Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Convert one image's torchvision detection output to COCO result records.

    ``output`` has ``boxes`` [N,4] xyxy, ``scores`` [N], ``labels`` [N] (contiguous 1..K) and optionally
    ``masks`` [N,1,H,W] (or [N,H,W]) probabilities or booleans (already thresholded) and ``keypoints``
    [N,K,3], all at the original image size. Each record gets ``bbox`` (xywh floats), with masks
    ``segmentation`` (RLE of ``mask > 0.5``, counts as str) and with keypoints ``keypoints`` ([x, y, 1]
    per keypoint; the record's score is the box score, Detectron's KEYPOINT_CONFIDENCE ``bbox``).
    """
    lookup = _category_lookup(label_to_category_id)
    boxes = output["boxes"].detach().cpu().to(torch.float64).reshape(-1, 4)
    scores = output["scores"].detach().cpu().tolist()
    labels = output["labels"].detach().cpu().tolist()
    if not (len(boxes) == len(scores) == len(labels)):
        raise ValueError(
            f"image {image_id}: boxes/scores/labels lengths differ ({len(boxes)}, {len(scores)}, {len(labels)})"
        )
    boxes[:, 2:] -= boxes[:, :2]  # xyxy -> xywh
    rles: list[dict[str, Any]] | None = None
    if "masks" in output:
        masks = output["masks"].detach().cpu()
        masks = masks[:, 0] if masks.dim() == 4 else masks
        if masks.dim() != 3 or len(masks) != len(boxes):
            raise ValueError(
                f"image {image_id}: masks must be [N,1,H,W] with N={len(boxes)}, got {tuple(masks.shape)}"
            )
        binary = masks if masks.dtype == torch.bool else masks > 0.5
        # pycocotools wants an H x W x N Fortran-ordered uint8 array: a view of masks laid out so
        # (engine.inference pastes them that way), else one copy.
        rles = mask_util.encode(np.asfortranarray(binary.permute(1, 2, 0).numpy().view(np.uint8)))
        for rle in rles:
            rle["counts"] = rle["counts"].decode("utf-8")  # bytes are not JSON
    keypoints = None
    if "keypoints" in output:
        kp = output["keypoints"].detach().cpu().to(torch.float64)
        if kp.dim() != 3 or kp.shape[-1] != 3 or len(kp) != len(boxes):
            raise ValueError(
                f"image {image_id}: keypoints must be [N,K,3] with N={len(boxes)}, got {tuple(kp.shape)}"
            )
        kp[..., 2] = 1.0
        keypoints = kp.reshape(len(kp), -1).tolist()
    results = []
    for i, (box, score, label) in enumerate(zip(boxes.tolist(), scores, labels, strict=True)):
        if lookup is None:
            category_id = int(label)
        elif int(label) in lookup:
            category_id = lookup[int(label)]
        else:
            raise ValueError(f"image {image_id}: label {label} has no entry in label_to_category_id")
        rec = {"image_id": int(image_id), "category_id": category_id, "bbox": box, "score": float(score)}
        if rles is not None:
            rec["segmentation"] = rles[i]
        if keypoints is not None:
            rec["keypoints"] = keypoints[i]
        results.append(rec)
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


def _load_results(gt: Any, results: list[dict[str, Any]], backend: str) -> Any:
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
    dt = _apis(backend)[0]()
    dt.dataset = {
        "images": list(gt.dataset["images"]),
        "categories": gt.dataset["categories"],
        "annotations": [],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        dt.createIndex()
    return dt


def keypoint_category_ids(gt: Any) -> list[int]:
    """The ground truth's categories that define keypoints (the only ones keypoint AP is measured on)."""
    return sorted(c for c, cat in gt.cats.items() if cat.get("keypoints"))


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


def _mask_results(results: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """``results`` for mask evaluation, checked to carry masks (read as they are, not copied: the mask
    area is the instance area whatever ``bbox`` they also have, as :func:`detections_for` arranges)."""
    for i, r in enumerate(results):
        if not isinstance(r.get("segmentation"), Mapping):
            raise ValueError(
                f"segm evaluation: result #{i} (image {r.get('image_id')}) has no segmentation RLE "
                "({'size': [h, w], 'counts': ...}), as COCO results carry"
            )
    return results


def _mean_ap(precision: np.ndarray) -> float | None:
    """Mean of the valid (> -1) precision entries in percent; None when nothing had ground truth."""
    valid = precision[precision > -1]
    return float(valid.mean() * 100) if valid.size else None


def _recall(coco_eval: Any, max_dets: int) -> dict[str, float | None]:
    """COCOeval.summarize()'s recall stats from ``eval['recall']`` [T, K, A, M]: AR at each of its
    detection limits (all areas; AR1, AR10, AR100 for COCO's) and ARs/ARm/ARl at ``max_dets``."""
    p = coco_eval.params
    recall = np.asarray(coco_eval.eval["recall"])
    areas = list(p.areaRngLbl)
    out = {f"AR{m}": _mean_ap(recall[:, :, areas.index("all"), j]) for j, m in enumerate(p.maxDets)}
    at_max = recall[..., list(p.maxDets).index(max_dets)]
    for key, area in (("ARs", "small"), ("ARm", "medium"), ("ARl", "large")):
        if area in areas:
            out[key] = _mean_ap(at_max[:, :, areas.index(area)])
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
        out[key] = _mean_ap(s)
    if per_category:
        for k, cat_id in enumerate(p.catIds):
            name = gt.cats[cat_id].get("name", str(cat_id))
            out[f"AP-{name}"] = _mean_ap(precision[:, :, k, 0])
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
    coco_cls = _apis(backend)[0]
    gt = coco_gt if isinstance(coco_gt, coco_cls) else load_coco_gt(coco_gt, backend, "segm" in iou_types)
    _check_image_ids(gt, results)
    metrics: Metrics = {}
    for iou_type in iou_types:
        coco_eval = _accumulated(gt, results, iou_type, backend, max_dets, img_ids, oks_sigmas)
        dets = KEYPOINT_MAX_DETS if iou_type == "keypoints" else max_dets
        metrics[iou_type] = _summarize(coco_eval, gt, dets, per_category, recall)
    return metrics


def _check_image_ids(gt: Any, results: Sequence[Mapping[str, Any]]) -> None:
    """Raise ValueError naming the first result whose image is not in ``gt`` (a set difference first:
    the per-record loop only runs to find the culprit)."""
    try:
        if not set(map(operator.itemgetter("image_id"), results)) - gt.imgs.keys():
            return
    except (KeyError, TypeError):  # a record without image_id, or an unhashable one
        pass
    for i, r in enumerate(results):
        if r.get("image_id") not in gt.imgs:
            raise ValueError(f"result #{i}: image_id {r.get('image_id')!r} is not in the COCO ground truth")


def _oks_sigmas(gt: Any, cats: list[int], sigmas: Sequence[float] | None) -> np.ndarray:
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


def _accumulated(
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
    sigmas = _oks_sigmas(gt, keypoint_cats, oks_sigmas) if iou_type == "keypoints" else None
    # One IoU worker: faster-coco-eval's mask IoU holds the GIL, so its default 8 threads only add
    # scheduling (docs/notes/performance.md, "Evaluation and inference speed").
    extra = {"print_function": _log.debug, "rle_iou_max_workers": 1} if backend == "faster_coco_eval" else {}
    if iou_type == "segm" and backend == "faster_coco_eval":
        # The same COCOeval_faster, fed from the records in bulk and the ground truth prepared once.
        coco_eval = PreparedMaskEval(gt, _mask_results(results), **extra)
    else:
        dt = _load_results(gt, detections_for(iou_type, results, keypoint_cats), backend)
        coco_eval = _apis(backend)[1](gt, dt, iou_type, **extra)
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
    coco_cls = _apis(backend)[0]
    gt = coco_gt if isinstance(coco_gt, coco_cls) else load_coco_gt(coco_gt, backend, iou_type == "segm")
    coco_eval = _accumulated(gt, results, iou_type, backend, max_dets, img_ids)
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


class COCOEvaluator(DatasetEvaluator):
    """COCO AP for torchvision detectors (boxes; masks too when the outputs carry them).

    ``process(targets, outputs)``: ``targets[i]["image_id"]`` names the image of ``outputs[i]``
    (a torchvision eval-mode output at the original image size). ``label_to_category_id`` maps the
    contiguous training labels 1..K to COCO category ids (a dict, or a sequence listing the category
    ids in label order); None means label == category id. Detections of a category the ground truth does
    not list are left out (nothing scores them; Detectron2's evaluator ignores them too). Only processed images are evaluated, so a
    partial pass (e.g. ``eval.max_images``) is not penalised for images it never saw. ``output_file``:
    where ``evaluate`` also writes the COCO-format detections (the main process; Detectron2's
    ``coco_instances_results.json``), e.g. for a bootstrap over the images later.
    """

    def __init__(
        self,
        coco_gt: str | Path | Mapping[str, Any],
        iou_types: Iterable[str] = DEFAULT_IOU_TYPES,
        backend: str = "faster_coco_eval",
        max_dets: int = 100,
        label_to_category_id: Mapping[int, int] | Sequence[int] | None = None,
        per_category: bool = False,
        output_file: str | Path | None = None,
        oks_sigmas: Sequence[float] | None = None,
    ) -> None:
        self.oks_sigmas = None if oks_sigmas is None else [float(v) for v in oks_sigmas]
        self.output_file = None if output_file is None else Path(output_file)
        self.iou_types = tuple(iou_types)
        for t in self.iou_types:
            if t not in IOU_TYPES:
                raise ValueError(f"unknown iou type {t!r}; expected a subset of {IOU_TYPES}")
        self.backend, self.max_dets, self.per_category = backend, max_dets, per_category
        self._gt = load_coco_gt(coco_gt, backend, require_segm="segm" in self.iou_types)
        self._lookup = _category_lookup(label_to_category_id)
        # A model's category the ground truth does not list has nothing to be scored against (COCOeval
        # scores the ground truth's categories only): its detections are left out, not an error.
        self._unscored = set() if self._lookup is None else set(self._lookup.values()) - set(self._gt.cats)
        if self._lookup and self._unscored == set(self._lookup.values()):  # a mapping for another file
            raise ValueError(
                f"label_to_category_id maps to category ids {sorted(self._unscored)}, none of them in the "
                "ground truth"
            )
        self.reset()

    def reset(self) -> None:
        """Drop all processed predictions."""
        self._image_ids: list[int] = []
        self._predictions: list[dict[str, Any]] = []
        self._has_masks: bool | None = None  # unknown until the first output

    def process(self, inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]) -> None:
        """Convert a batch of outputs to COCO records (on CPU, so GPU memory is not held)."""
        if len(inputs) != len(outputs):
            raise ValueError(f"process: {len(inputs)} targets but {len(outputs)} outputs")
        for target, output in zip(inputs, outputs, strict=True):
            if "image_id" not in target:
                raise ValueError(f"process: target has no 'image_id' (keys: {sorted(target)})")
            image_id = int(target["image_id"])
            if image_id not in self._gt.imgs:
                raise ValueError(f"process: image_id {image_id} is not in the COCO ground truth")
            has_masks = "masks" in output
            if self._has_masks is not None and has_masks != self._has_masks:
                raise ValueError(f"process: image {image_id}: some outputs have 'masks' and some do not")
            self._has_masks = has_masks
            if has_masks:
                img = self._gt.imgs[image_id]
                if tuple(output["masks"].shape[-2:]) != (img["height"], img["width"]):
                    raise ValueError(
                        f"process: image {image_id}: masks are {tuple(output['masks'].shape[-2:])}, "
                        f"the image is {(img['height'], img['width'])} (map outputs to the original size)"
                    )
            records = instances_to_coco_results(image_id, output, self._lookup)
            records = [r for r in records if r["category_id"] not in self._unscored]
            for rec in records:
                if rec["category_id"] not in self._gt.cats:
                    raise ValueError(
                        f"process: image {image_id}: category id {rec['category_id']} not in the GT"
                    )
            self._image_ids.append(image_id)
            self._predictions.extend(records)

    def _gather(self) -> tuple[list[int], list[dict[str, Any]]]:
        """All processed image ids and COCO records. Under torch.distributed every rank gets the union
        of all ranks' shares (so any rank can report the same metrics); on one process, its own state."""
        if get_world_size() == 1:
            return self._image_ids, self._predictions
        parts = all_gather_objects((self._image_ids, self._predictions, self._has_masks))
        self._has_masks = any(p[2] for p in parts)
        return [i for p in parts for i in p[0]], [r for p in parts for r in p[1]]

    def evaluate(self) -> Metrics:
        """``{"bbox": {...}, "segm": {...}}`` in percent; ``segm`` only when the outputs had masks."""
        image_ids, predictions = self._gather()
        if not image_ids:
            _log.warning("COCOEvaluator.evaluate: no images were processed; returning no metrics")
            return {}
        if self.output_file is not None and is_main_process():
            write_json(self.output_file, predictions)
        iou_types = [t for t in self.iou_types if t != "segm" or self._has_masks]
        return evaluate_predictions(
            self._gt,
            predictions,
            iou_types,
            backend=self.backend,
            max_dets=self.max_dets,
            img_ids=image_ids,
            per_category=self.per_category,
            oks_sigmas=self.oks_sigmas,
        )

    def precision_recall_curves(
        self, iou_type: str = "bbox", iou: float = 0.5
    ) -> dict[str, dict[str, list[float]]]:
        """:func:`precision_recall_curves` of everything processed since the last :meth:`reset`."""
        image_ids, predictions = self._gather()
        return precision_recall_curves(
            self._gt,
            predictions,
            iou_type,
            iou,
            backend=self.backend,
            max_dets=self.max_dets,
            img_ids=image_ids,
        )

    def write_results(self, path: str | Path) -> Path:
        """Dump the COCO-format detections (bbox, and segmentation when present) as JSON."""
        return write_json(path, self._gather()[1])
