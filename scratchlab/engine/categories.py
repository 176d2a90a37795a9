"""The model's categories, and the check that a validation file means the same by them.

Evaluation maps a detector's label k to the k-th of the model's own categories: the training file's
(sorted by id) while training, the ones a checkpoint carries (``category_ids`` / ``classes``, written by
``train`` into ``model_final.pth`` and ``checkpoints/last.pth``) afterwards. Never the validation file's
list: a file that lists its categories in another order, with other entries or only those present in its
split would otherwise shift every label onto another class. :func:`check_val_categories` refuses a
validation file that names an id differently or annotates a category the model does not know
(:func:`~scratchlab.data.categories.compare_categories`), before training or evaluating.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from ..data.categories import CategoryMismatch, compare_categories, used_category_ids
from .data import DatasetError

__all__ = [
    "checkpoint_categories",
    "check_val_categories",
    "categories_and_annotations",
    "category_ids",
    "read_annotation_file",
]

log = logging.getLogger("scratchlab")
Categories = list[dict[str, Any]]


def read_annotation_file(ann_file: str | Path) -> dict[str, Any] | None:
    """The parsed JSON of ``ann_file``; None when it is not readable as a JSON object (the data check then
    names what is wrong with it)."""
    try:
        with open(ann_file) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def category_ids(categories: Categories) -> list[int]:
    """The COCO category id of each label 1..K, in label order."""
    return [int(c["id"]) for c in categories]


def categories_and_annotations(data: dict[str, Any] | None) -> tuple[Categories, list[dict]] | None:
    """(categories sorted by id, annotations) of a parsed COCO file; None when it does not hold them that
    way (the data check, or the dataset's loader, says what is wrong with it)."""
    try:
        categories = sorted((dict(c) for c in data["categories"]), key=lambda c: int(c["id"]))
        annotations = [a for a in data.get("annotations", []) if "category_id" in a]
        return categories, annotations
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def check_val_categories(
    model: Categories, model_source: str, val: Categories, val_annotations: list[dict], val_source: str
) -> None:
    """Raise :class:`~scratchlab.engine.data.DatasetError` when the validation categories contradict the
    model's; log once which of the model's categories the validation file has no annotation of."""
    try:
        unseen = compare_categories(model, val, used_category_ids(val_annotations), model_source, val_source)
    except CategoryMismatch as err:
        raise DatasetError(str(err)) from err
    if unseen:
        names = ", ".join(f"{c.get('name', c['id'])!r} (id {c['id']})" for c in unseen)
        log.info(
            "%s has no annotation of %d of the model's %d categories: %s; COCOeval skips a category without "
            "ground truth, so AP is the mean over the other %d",
            val_source,
            len(unseen),
            len(model),
            names,
            len(model) - len(unseen),
        )


def checkpoint_categories(weights: str | Path, cfg: DictConfig) -> tuple[Categories, str]:
    """(the model's categories in label order, where they come from) for a whole-detector checkpoint: its
    own ``category_ids`` / ``classes``; for a file without them, the categories of ``data.train_json``
    (the training file the run's config.yaml names)."""
    try:  # mmap: the metadata without reading every tensor
        ckpt = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not a zip checkpoint (a .pkl, ...): the weights loader reads it
        ckpt = None
    if isinstance(ckpt, dict) and isinstance(ckpt.get("category_ids"), list):
        names = ckpt.get("classes") or [str(i) for i in ckpt["category_ids"]]
        cats = [{"id": int(i), "name": str(n)} for i, n in zip(ckpt["category_ids"], names, strict=True)]
        return cats, f"{weights} (its category_ids)"
    train_json = cfg.data.train_json
    found = categories_and_annotations(read_annotation_file(train_json)) if train_json else None
    if found is None:
        raise DatasetError(
            f"{weights}: carries no category list (a model_final.pth or checkpoints/last.pth of `scratchlab "
            "train` does), and no readable data.train_json names the categories the model was trained on; "
            "set data.train_json to that file, so that the labels map to its categories"
        )
    return found[0], f"{train_json} (data.train_json)"
