"""Refuse a box-only annotation file for a mask config from the JSON alone, before the data check.

The data check decodes every image (minutes on COCO); a Mask R-CNN config on box-only data (converted from
VOC or YOLO) is wrong whatever the images hold, so the user hears that first. A file whose annotations all
lack segmentation is box-only for any ``data.subset``; data with masks on some annotations only is judged
later, image by image of the chosen subset, by :func:`~scratchlab.engine.data.require_masks`. A file this
read cannot make sense of is left to the data check, which names what is wrong with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ..config import MASK_ARCHS
from .data import DatasetError

__all__ = ["read_annotation_file", "refuse_box_only"]


def read_annotation_file(ann_file: str | Path) -> dict[str, Any] | None:
    """The parsed JSON of ``ann_file``; None when it is not readable as a JSON object (the data check then
    names what is wrong with it)."""
    try:
        with open(ann_file) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _instances(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The non-crowd annotation records of a parsed COCO file; None when it has no annotation list."""
    anns = data.get("annotations")
    if not isinstance(anns, list):
        return None
    return [a for a in anns if isinstance(a, dict) and not a.get("iscrowd", 0)]


def refuse_box_only(cfg: DictConfig, ann_file: str | Path, data: dict[str, Any]) -> None:
    """Raise :class:`DatasetError` when ``cfg`` trains masks and ``data`` (the parsed ``ann_file``) has
    instances but no segmentation on any of them."""
    if cfg.model.arch not in MASK_ARCHS:
        return
    instances = _instances(data)
    if instances and not any(a.get("segmentation") for a in instances):
        raise DatasetError(
            f"{ann_file}: none of its {len(instances)} annotation(s) has a segmentation (e.g. id "
            f"{instances[0].get('id')}): box-only data cannot train Mask R-CNN "
            f"(model.arch={cfg.model.arch}). Train a box detector: a faster_rcnn config "
            "(e.g. configs/mini/faster_rcnn_gn_scratch.yaml) or model.arch=faster_rcnn"
        )
