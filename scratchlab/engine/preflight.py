"""Every check a run makes before its first iteration, in the order it makes them.

Each refuses, with a message that says what to change, something that would otherwise fail much later (at
the first evaluation, hours in) or, worse, train without a word into numbers that mean something else.
:func:`preflight` runs the data checks and builds the datasets between them; :func:`check_resume` the
checks of a checkpoint ``--resume`` continues. The data layer's checks (:mod:`scratchlab.data.check`,
:mod:`scratchlab.data.categories`) know nothing of configs or runs; these apply them to a run's config.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf

from ..config import MASK_ARCHS
from ..data.check import Problem, check_dataset, format_report
from ..data.coco import CocoDetection
from ..utils.dist import get_world_size, is_main_process
from ..utils.io import write_json
from .categories import Categories, categories_and_annotations, check_val_categories, read_annotation_file
from .data import DatasetError, build_datasets

__all__ = [
    "preflight",
    "check_resume",
    "check_annotation_files",
    "refuse_box_only",
    "validate_data",
    "check_cache_dir",
    "require_masks",
    "require_class_count",
    "with_keypoint_count",
    "refuse_changed_categories",
    "refuse_past_the_end",
]

# Part of every cache key: bump it when data/check.py learns a new check, so that verdicts reached
# without that check are not trusted any more.
CHECK_CACHE_VERSION = 2
# How long the other ranks wait for rank 0's first check: decoding COCO's 123k images takes minutes,
# longer than NCCL's default collective timeout (10 minutes).
VERDICT_WAIT = timedelta(hours=6)

log = logging.getLogger("scratchlab")


def preflight(cfg: DictConfig) -> tuple[DictConfig, CocoDetection, CocoDetection | None]:
    """Check the data ``cfg`` names, cheapest first, and build its datasets; return the config with what
    the data decides filled in (the keypoint count), the training set and the validation set (or None).

    1. :func:`check_annotation_files`: from the JSON alone, before any image is decoded: a box-only file
       for a mask config; validation categories that contradict the training file's.
    2. :func:`validate_data` (``data.check``): every image decoded once, every record checked; what would
       crash a loader worker or corrupt COCO evaluation mid-run.
    3. On the built datasets: :func:`require_masks` (annotations without masks, for the chosen subset),
       :func:`require_class_count` (a ``model.num_classes`` the data contradicts) and
       :func:`with_keypoint_count` (the keypoint head's size, from the data).
    """
    check_annotation_files(cfg)
    if cfg.data.check:
        validate_data(cfg)
    train_set, val_set = build_datasets(cfg)
    require_masks(cfg, train_set, val_set)
    require_class_count(cfg, train_set)
    return with_keypoint_count(cfg, train_set), train_set, val_set


def check_resume(ckpt: dict[str, Any], path: Path, labels: list[int], total: int, train_json: str) -> None:
    """Before ``--resume`` loads ``ckpt`` (read from ``path``): its labels still mean the training file's
    categories (:func:`refuse_changed_categories`) and this config's schedule reaches its iteration
    (:func:`refuse_past_the_end`)."""
    refuse_changed_categories(ckpt.get("category_ids"), labels, path, train_json)
    refuse_past_the_end(int(ckpt["iteration"]), total, path)


def check_annotation_files(cfg: DictConfig) -> None:
    """Before training, from the annotation JSON alone (each file parsed once, before the data check decodes
    any image): with ``data.check``, a box-only file for a mask config (:func:`refuse_box_only`); always,
    :func:`~scratchlab.engine.categories.check_val_categories` of ``data.val_json`` against
    ``data.train_json``."""
    train_categories: Categories | None = None
    for role, ann in (("train", cfg.data.train_json), ("val", cfg.data.val_json)):
        data = read_annotation_file(ann) if ann else None
        if data is None:
            continue
        if cfg.data.check:
            refuse_box_only(cfg, ann, data)
        found = categories_and_annotations(data)
        if found is None:
            continue
        if role == "train":
            train_categories = found[0]
        elif train_categories is not None:
            check_val_categories(train_categories, str(cfg.data.train_json), found[0], found[1], str(ann))


def _instances(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The non-crowd annotation records of a parsed COCO file; None when it has no annotation list."""
    anns = data.get("annotations")
    if not isinstance(anns, list):
        return None
    return [a for a in anns if isinstance(a, dict) and not a.get("iscrowd", 0)]


def refuse_box_only(cfg: DictConfig, ann_file: str | Path, data: dict[str, Any]) -> None:
    """Raise :class:`DatasetError` when ``cfg`` trains masks and ``data`` (the parsed ``ann_file``) has
    instances but no segmentation on any of them.

    A Mask R-CNN config on box-only data (converted from VOC or YOLO) is wrong whatever the images hold, so
    the user hears it before the data check decodes them (minutes on COCO). A file whose annotations all
    lack segmentation is box-only for any ``data.subset``; one with masks on some annotations only is
    judged later, on the chosen subset, by :func:`require_masks`."""
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


def check_cache_dir() -> Path:
    """Where clean data-check verdicts are kept: ``$SCRATCHLAB_CACHE_DIR/data_check``, else
    ``$XDG_CACHE_HOME/scratchlab/data_check``, else ``~/.cache/scratchlab/data_check``. A user cache
    rather than the run folder, so that other runs on the same data (study arms, direct pre-training
    stages, a second experiment) find the verdict too."""
    root = os.environ.get("SCRATCHLAB_CACHE_DIR")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scratchlab"
    return Path(root) / "data_check"


def _image_stamps(ann_bytes: bytes, folder: Path) -> str:
    """Size and modification time of every image the annotation file names: an image rewritten in place
    (the folder's own mtime unchanged) is a different dataset. Empty for a file the checker will refuse."""
    try:
        images = json.loads(ann_bytes).get("images", [])
    except (ValueError, AttributeError):
        return ""
    stamps = []
    for img in images if isinstance(images, list) else []:
        name = img.get("file_name") if isinstance(img, dict) else None
        try:
            st = (folder / name).stat() if isinstance(name, str) else None
        except (OSError, ValueError):
            st = None
        stamps.append(f"{name}\0{st.st_size}\0{st.st_mtime_ns}" if st else f"{name}\0-")
    return "\0".join(stamps)


def _check_key(ann: Path, images: Path) -> str:
    """sha256 of the annotation file's bytes, the image folder (resolved path and modification time:
    adding or removing images changes it), each listed image's size and mtime and
    :data:`CHECK_CACHE_VERSION`."""
    ann_bytes = ann.read_bytes()
    folder = images.resolve()
    mtime = folder.stat().st_mtime_ns if folder.is_dir() else -1
    digest = hashlib.sha256(ann_bytes)
    digest.update(f"\0{folder}\0{mtime}\0{CHECK_CACHE_VERSION}\0".encode())
    digest.update(_image_stamps(ann_bytes, folder).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _write_verdict(path: Path, record: dict) -> None:
    try:
        write_json(path, record, indent=2)
    except OSError as err:  # a read-only home must not stop training: the next run checks again
        log.warning("could not cache the data-check verdict in %s: %s", path, err)


def _check_split(ann: str, images: str) -> list[Problem]:
    """The errors of one (annotation file, image folder) pair; a clean result is cached, so the same
    pair is decoded only once."""
    ann_path, images_path = Path(ann), Path(images)
    if not ann_path.is_file():  # nothing to hash: let the checker say what is wrong
        return [p for p in check_dataset(ann_path, images_path) if p.severity == "error"]
    key = _check_key(ann_path, images_path)
    verdict = check_cache_dir() / f"{key}.json"
    if verdict.is_file():
        log.info(
            "data check: %s with %s was checked before (%s); not decoding the images again",
            ann,
            images,
            verdict,
        )
        return []
    log.info(
        "data check: decoding every image of %s once; a clean result is cached in %s", ann, verdict.parent
    )
    problems = check_dataset(ann_path, images_path, progress=True)
    errors = [p for p in problems if p.severity == "error"]
    if not errors:
        _write_verdict(
            verdict,
            {
                "annotations": str(ann_path.resolve()),
                "images": str(images_path.resolve()),
                "sha256_key": key,
                "warnings": len(problems),
                "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
    return errors


def _share_from_main(obj):
    """Rank 0's ``obj`` on every rank. The wait runs on its own gloo group with a long timeout, so ranks
    can wait for as long as rank 0's check takes."""
    if get_world_size() == 1:
        return obj
    group = dist.new_group(backend="gloo", timeout=VERDICT_WAIT)
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=group)
    dist.destroy_process_group(group)
    return box[0]


def validate_data(cfg: DictConfig) -> None:
    """Run ``scratchlab data check`` on every split the config names; raise on any error.

    Rank 0 checks (with a progress bar) while the other ranks wait for its verdict, which every rank
    then acts on. A clean verdict is cached under :func:`check_cache_dir`, keyed by the annotation file's
    content hash and the image folder, so resuming, the next study arm or the next pre-training stage
    on the same data skips the image decode; a changed annotation file is checked again.
    """
    report = None
    if is_main_process():
        pairs = [(cfg.data.train_json, cfg.data.train_images)]
        if cfg.data.val_json:
            pairs.append((cfg.data.val_json, cfg.data.val_images or cfg.data.train_images))
        try:
            errors = [p for ann, images in pairs for p in _check_split(ann, images)]
        except OSError as err:  # rank 0 must still reach the broadcast below, or the other ranks hang
            errors, report = [], f"the data check could not run: {err}"
        if errors:
            report = "the dataset failed validation (scratchlab data check):\n" + format_report(errors)
    report = _share_from_main(report)  # every rank waits here for rank 0's verdict
    if report:
        raise DatasetError(report)


def require_masks(cfg: DictConfig, *datasets: CocoDetection | None) -> None:
    """Refuse box-only data for a Mask R-CNN config before any training: its mask head would learn empty
    masks and mask AP would fail at the first evaluation."""
    if cfg.model.arch not in MASK_ARCHS:
        return
    for ds in (d for d in datasets if d is not None):
        if missing := ds.annotations_without_masks():
            raise DatasetError(
                f"{ds.ann_file}: {len(missing)} annotation(s) have no segmentation (e.g. id {missing[0]}): "
                f"box-only data cannot train Mask R-CNN (model.arch={cfg.model.arch}). Train a box detector: a "
                "faster_rcnn config (e.g. configs/mini/faster_rcnn_gn_scratch.yaml) or model.arch=faster_rcnn"
            )


def require_class_count(cfg: DictConfig, train_set: CocoDetection) -> None:
    """Refuse a ``model.num_classes`` that the training set contradicts: the model is built with the
    set's classes, so the setting would otherwise be dropped without a word."""
    wanted = cfg.model.num_classes
    if wanted is not None and wanted != train_set.num_classes:
        raise DatasetError(
            f"model.num_classes={wanted}, but {train_set.ann_file} has {train_set.num_classes} "
            "categories: leave model.num_classes unset (it is taken from the training set) or fix the file"
        )


def with_keypoint_count(cfg: DictConfig, dataset: CocoDetection) -> DictConfig:
    """``cfg`` with ``model.roi_keypoint_head.num_keypoints`` taken from ``dataset`` when unset (a
    keypoint_rcnn config); a set value that disagrees with the dataset is refused."""
    if cfg.model.arch != "keypoint_rcnn":
        return cfg
    if dataset.keypoints is None:
        raise DatasetError(
            f"{dataset.ann_file}: no category defines 'keypoints', which model.arch=keypoint_rcnn "
            "needs (COCO person_keypoints_*.json, or data.synth.keypoints=true)"
        )
    count, set_count = len(dataset.keypoints), cfg.model.roi_keypoint_head.num_keypoints
    if set_count is not None and int(set_count) != count:
        raise DatasetError(
            f"model.roi_keypoint_head.num_keypoints={set_count}, but {dataset.ann_file} defines "
            f"{count} keypoints ({', '.join(dataset.keypoints.names)})"
        )
    cfg = OmegaConf.create(OmegaConf.to_container(cfg))
    cfg.model.roi_keypoint_head.num_keypoints = count
    OmegaConf.set_struct(cfg, True)
    return cfg


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


def refuse_past_the_end(iteration: int, total: int, checkpoint: Path) -> None:
    """``--resume`` with a schedule shorter than the checkpoint's iteration (other overrides than the run's):
    going on would stamp the run's weights, config.yaml and final metrics with the shorter length."""
    if iteration > total:
        raise ValueError(
            f"{checkpoint} is at iteration {iteration}, past the end of this config's {total} iterations; "
            "resume with the overrides the run started with (its config.yaml), or a longer schedule"
        )
