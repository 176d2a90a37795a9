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

__all__ = ["refuse_box_only_files"]


def _instances(ann_file: Path) -> list[dict[str, Any]] | None:
    """The non-crowd annotation records of ``ann_file``; None when it is not a readable COCO file."""
    try:
        with open(ann_file) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    anns = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(anns, list):
        return None
    return [a for a in anns if isinstance(a, dict) and not a.get("iscrowd", 0)]


def refuse_box_only_files(cfg: DictConfig) -> None:
    """Raise :class:`DatasetError` when ``cfg`` trains masks and its train or val annotation file has
    instances but no segmentation on any of them."""
    if cfg.model.arch not in MASK_ARCHS:
        return
    for ann in (cfg.data.train_json, cfg.data.val_json):
        instances = _instances(Path(ann)) if ann else None
        if instances and not any(a.get("segmentation") for a in instances):
            raise DatasetError(
                f"{ann}: none of its {len(instances)} annotation(s) has a segmentation (e.g. id "
                f"{instances[0].get('id')}): box-only data cannot train Mask R-CNN "
                f"(model.arch={cfg.model.arch}). Train a box detector: a faster_rcnn config "
                "(e.g. configs/mini/faster_rcnn_gn_scratch.yaml) or model.arch=faster_rcnn"
            )
