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

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from ..data.categories import CategoryMismatch, compare_categories, used_category_ids
from .box_only import read_annotation_file, refuse_box_only
from .data import DatasetError

__all__ = [
    "checkpoint_categories",
    "check_val_categories",
    "check_annotation_files",
    "category_ids",
    "refuse_changed_categories",
]

log = logging.getLogger("scratchlab")
Categories = list[dict[str, Any]]


def category_ids(categories: Categories) -> list[int]:
    """The COCO category id of each label 1..K, in label order."""
    return [int(c["id"]) for c in categories]


def _categories_and_annotations(data: dict[str, Any] | None) -> tuple[Categories, list[dict]] | None:
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


def check_annotation_files(cfg: DictConfig) -> None:
    """Before training, from the annotation JSON alone (each file parsed once, before the data check decodes
    any image): with ``data.check``, a box-only file for a mask config
    (:func:`~scratchlab.engine.box_only.refuse_box_only`); always, :func:`check_val_categories` of
    ``data.val_json`` against ``data.train_json``."""
    train_categories: Categories | None = None
    for role, ann in (("train", cfg.data.train_json), ("val", cfg.data.val_json)):
        data = read_annotation_file(ann) if ann else None
        if data is None:
            continue
        if cfg.data.check:
            refuse_box_only(cfg, ann, data)
        found = _categories_and_annotations(data)
        if found is None:
            continue
        if role == "train":
            train_categories = found[0]
        elif train_categories is not None:
            check_val_categories(train_categories, str(cfg.data.train_json), found[0], found[1], str(ann))


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
    found = _categories_and_annotations(read_annotation_file(train_json)) if train_json else None
    if found is None:
        raise DatasetError(
            f"{weights}: carries no category list (a model_final.pth or checkpoints/last.pth of `scratchlab "
            "train` does), and no readable data.train_json names the categories the model was trained on; "
            "set data.train_json to that file, so that the labels map to its categories"
        )
    return found[0], f"{train_json} (data.train_json)"


def refuse_changed_categories(
    saved: list[int] | None, labels: list[int], checkpoint: Path, train_json: str
) -> None:
    """``--resume``: the checkpoint's labels must still mean the training file's categories (``saved``: the
    checkpoint's ``category_ids``, None in a checkpoint from before they were saved). A file whose ids
    changed since would go on training each label as another class."""
    if saved is not None and list(saved) != labels:
        raise DatasetError(
            f"{checkpoint}: its run trained on category ids {_abridged(saved)}, but {train_json} now gives "
            f"{_abridged(labels)}; resume with the training file the run started with, or start over "
            "without --resume"
        )


def _abridged(ids: list[int], shown: int = 12) -> str:
    return (
        str(list(ids)) if len(ids) <= shown else f"[{', '.join(map(str, ids[:shown]))}, ... ({len(ids)} ids)]"
    )
