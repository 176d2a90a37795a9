"""The engine's view of data: resolve the dataset a config names (or generate one), build the datasets and
the resumable training loader. The checks before training are :mod:`scratchlab.engine.preflight`'s."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ..config import MASK_ARCHS
from ..data.coco import CocoDetection, collate, select_subset
from ..data.packing import PackedBatchLoader
from ..data.sampler import GroupedTrainingBatchSampler, TrainingBatchSampler
from ..data.synth import make_synth_detection
from ..data.transforms import build_transforms
from ..utils.dist import barrier, is_main_process
from ..utils.runtime import loader_workers

__all__ = [
    "DatasetError",
    "resolve_data",
    "build_datasets",
    "build_train_set",
    "train_set_size",
    "build_val_set",
    "aspect_groups",
    "build_train_loader",
]

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
