"""COCO ground truth: the two backends' classes, loading with validation, and the checks results must
pass against it. No torch: the study's bootstrap reads ground truth through this module."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import operator
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import faster_coco_eval
import pycocotools.coco
import pycocotools.cocoeval

__all__ = ["BACKENDS", "coco_apis", "load_coco_gt", "keypoint_category_ids", "check_image_ids"]

BACKENDS = ("faster_coco_eval", "pycocotools")


def coco_apis(backend: str) -> tuple[type, type]:
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
    coco_cls, _ = coco_apis(backend)
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


def keypoint_category_ids(gt: Any) -> list[int]:
    """The ground truth's categories that define keypoints (the only ones keypoint AP is measured on)."""
    return sorted(c for c, cat in gt.cats.items() if cat.get("keypoints"))


def check_image_ids(gt: Any, results: Sequence[Mapping[str, Any]]) -> None:
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
