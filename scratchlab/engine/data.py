"""The engine's view of data: resolve the dataset a config names (or generate one), validate it before
training, and build the datasets and the resumable training loader."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf

from ..config import MASK_ARCHS
from ..data.check import Problem, check_dataset, format_report
from ..data.coco import CocoDetection, collate, select_subset
from ..data.packing import PackedBatchLoader
from ..data.sampler import GroupedTrainingBatchSampler, TrainingBatchSampler
from ..data.synth import make_synth_detection
from ..data.transforms import build_transforms
from ..utils.dist import barrier, get_world_size, is_main_process
from ..utils.io import write_json
from ..utils.runtime import loader_workers

__all__ = [
    "DatasetError",
    "check_cache_dir",
    "resolve_data",
    "validate_data",
    "build_datasets",
    "build_train_set",
    "train_set_size",
    "build_val_set",
    "aspect_groups",
    "build_train_loader",
    "require_class_count",
    "require_masks",
    "with_keypoint_count",
]

# Part of every cache key: bump it when data/check.py learns a new check, so that verdicts reached
# without that check are not trusted any more.
CHECK_CACHE_VERSION = 2
# How long the other ranks wait for rank 0's first check: decoding COCO's 123k images takes minutes,
# longer than NCCL's default collective timeout (10 minutes).
VERDICT_WAIT = timedelta(hours=6)

log = logging.getLogger("scratchlab")


class DatasetError(ValueError):
    """The dataset failed validation; the message lists every problem, one line each."""


def resolve_data(cfg: DictConfig, out_dir: str | Path) -> DictConfig:
    """Return ``cfg`` with data paths filled in: when no data key is set, a generated set
    (``data.synth``) is made once under ``out_dir/data`` and used for train and val."""
    d = cfg.data
    if any(d[k] for k in ("train_json", "train_images", "val_json", "val_images")):
        if not (d.train_json and d.train_images):
            raise DatasetError("data.train_json and data.train_images must be given together")
        return cfg
    root = Path(out_dir) / "data"
    s = d.synth
    if is_main_process() and not (root / "annotations" / "instances_val.json").exists():
        log.info("no data keys given: generating a synthetic set under %s", root)
        make_synth_detection(
            root,
            s.num_train,
            s.num_val,
            s.image_size,
            s.seed,
            s.min_object_size,
            s.max_objects,
            s.object_textures,
            s.shapes,
            s.class_colours,
            s.max_object_size,
            keypoints=s.keypoints,
        )
    barrier()
    cfg = OmegaConf.create(OmegaConf.to_container(cfg))
    cfg.data.train_json = str(root / "annotations" / "instances_train.json")
    cfg.data.train_images = str(root / "train")
    cfg.data.val_json = str(root / "annotations" / "instances_val.json")
    cfg.data.val_images = str(root / "val")
    OmegaConf.set_struct(cfg, True)
    return cfg


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


def build_datasets(cfg: DictConfig) -> tuple[CocoDetection, CocoDetection | None]:
    """The training set (:func:`build_train_set`) and the validation set (original size, no masks
    needed: the evaluator reads ground truth from the JSON)."""
    return build_train_set(cfg), build_val_set(cfg) if cfg.data.val_json else None


def build_train_set(cfg: DictConfig) -> CocoDetection:
    """The training set: its transforms, the data regime's subset, images without instances dropped."""
    d = cfg.data
    keypoints = cfg.model.arch == "keypoint_rcnn"
    train = CocoDetection(
        d.train_json,
        d.train_images,
        None,
        with_masks=cfg.model.arch in MASK_ARCHS,
        subset=d.subset,
        subset_seed=d.subset_seed,
        filter_empty=True,
        with_keypoints=keypoints,
    )
    flip = list(train.keypoints.flip) if keypoints and train.keypoints else None
    train.transforms = build_transforms(cfg.input, train=True, keypoint_flip=flip)
    return train


def train_set_size(cfg: DictConfig) -> int:
    """``len(build_train_set(cfg))`` without parsing the annotation file again for every data regime (a
    study's direct arms each count their stage-1 epochs in it): the ids of the images with instances are
    kept per file version (path, mtime, size), and the regime's subset is chosen from them by the same
    :func:`select_subset`."""
    path = os.path.abspath(cfg.data.train_json)
    stat = os.stat(path)
    ids = _images_with_instances(path, stat.st_mtime_ns, stat.st_size)
    return len(select_subset(list(ids), cfg.data.subset, cfg.data.subset_seed))


@functools.lru_cache(maxsize=4)
def _images_with_instances(path: str, mtime_ns: int, size: int) -> tuple[int, ...]:
    """The training set's images before the data regime: build_train_set's CocoDetection without subset."""
    return tuple(CocoDetection(path, "", with_masks=False, filter_empty=True).ids)


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


def build_val_set(cfg: DictConfig) -> CocoDetection:
    """The validation set alone (``scratchlab eval`` needs no training set)."""
    d = cfg.data
    if not (d.val_json and (d.val_images or d.train_images)):
        raise DatasetError(
            "evaluation needs data.val_json and data.val_images (a run's config.yaml has both)"
        )
    return CocoDetection(
        d.val_json, d.val_images or d.train_images, build_transforms(cfg.input, train=False), with_masks=False
    )


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


def aspect_groups(dataset: CocoDetection) -> list[int]:
    """Each training image's aspect group from the JSON sizes: 0 landscape (w > h), 1 otherwise
    (Detectron2's rule)."""
    groups = []
    for image_id in dataset.ids:
        info = dataset.images[image_id]
        if "width" not in info or "height" not in info:
            raise DatasetError(
                f"{dataset.ann_file}: image id {image_id} has no width/height, which "
                "data.aspect_ratio_grouping needs"
            )
        groups.append(0 if info["width"] > info["height"] else 1)
    return groups


def build_train_loader(
    cfg: DictConfig, dataset: CocoDetection, start_iter: int, rank: int, world: int, pin_memory: bool = False
) -> PackedBatchLoader:
    """The resumable training loader, ``solver.accumulate`` micro-batches per iteration: batches of one aspect
    group when ``data.aspect_ratio_grouping``. ``data.num_workers`` processes (``auto``: chosen for the
    machine, :func:`~scratchlab.utils.runtime.loader_workers`); ``pin_memory`` (training on CUDA) makes the
    host-to-device copies asynchronous. Workers send each batch as one shared buffer
    (:class:`~scratchlab.data.packing.PackedBatchLoader`).

    The sampler is endless, so the trainer takes ONE iterator for the whole run: its workers persist across
    evaluation periods without ``persistent_workers``, which would only add a second owner (the loader's
    ``_iterator``) and keep the workers alive after the run; the trainer drops its iterator when the
    training loop ends, which stops them."""
    batch, seed, accumulate = int(cfg.solver.ims_per_batch), int(cfg.seed), int(cfg.solver.accumulate)
    if cfg.data.aspect_ratio_grouping:
        sampler = GroupedTrainingBatchSampler(
            aspect_groups(dataset), batch, seed, start_iter, rank, world, accumulate
        )
    else:
        sampler = TrainingBatchSampler(len(dataset), batch, seed, start_iter, rank, world, accumulate)
    # The loader's own generator: without one, starting an iterator draws its workers' base seed from the
    # global torch RNG, so a resumed run (whose loader starts after the RNG restore) would be one draw
    # ahead of the uninterrupted run from the first step on. Augmentation is seeded per sample anyway.
    generator = torch.Generator().manual_seed(seed + rank)
    workers = loader_workers(cfg.data.num_workers)
    return PackedBatchLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=False,
        generator=generator,
    )
