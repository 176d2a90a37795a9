"""The engine's view of data: resolve the dataset a config names (or generate one), validate it before
training, and build the datasets and the resumable training loader."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from ..data.check import check_dataset, format_report
from ..data.coco import CocoDetection, collate
from ..data.sampler import GroupedTrainingBatchSampler, TrainingBatchSampler
from ..data.synth import make_synth_detection
from ..data.transforms import build_transforms
from .dist import barrier, is_main_process

__all__ = ["DatasetError", "resolve_data", "validate_data", "build_datasets", "aspect_groups", "build_train_loader"]

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
        make_synth_detection(root, s.num_train, s.num_val, s.image_size, s.seed, s.min_object_size,
                             s.max_objects, s.object_textures, s.shapes)
    barrier()
    cfg = OmegaConf.create(OmegaConf.to_container(cfg))
    cfg.data.train_json = str(root / "annotations" / "instances_train.json")
    cfg.data.train_images = str(root / "train")
    cfg.data.val_json = str(root / "annotations" / "instances_val.json")
    cfg.data.val_images = str(root / "val")
    OmegaConf.set_struct(cfg, True)
    return cfg


def validate_data(cfg: DictConfig) -> None:
    """Run ``scratchlab data check`` on every split the config names; raise on any error."""
    pairs = [(cfg.data.train_json, cfg.data.train_images)]
    if cfg.data.val_json:
        pairs.append((cfg.data.val_json, cfg.data.val_images or cfg.data.train_images))
    problems = []
    for ann, images in pairs:
        problems += [p for p in check_dataset(ann, images) if p.severity == "error"]
    if problems:
        raise DatasetError("the dataset failed validation (scratchlab data check):\n" + format_report(problems))


def build_datasets(cfg: DictConfig) -> tuple[CocoDetection, CocoDetection | None]:
    """The training set (transforms, data regime subset, images without instances dropped) and the
    validation set (original size, no masks needed: the evaluator reads ground truth from the JSON)."""
    d = cfg.data
    train = CocoDetection(d.train_json, d.train_images, build_transforms(cfg.input, train=True),
                          with_masks=cfg.model.arch == "mask_rcnn", subset=d.subset,
                          subset_seed=d.subset_seed, filter_empty=True)
    val = None
    if d.val_json:
        val = CocoDetection(d.val_json, d.val_images or d.train_images,
                            build_transforms(cfg.input, train=False), with_masks=False)
    return train, val


def aspect_groups(dataset: CocoDetection) -> list[int]:
    """Each training image's aspect group from the JSON sizes: 0 landscape (w > h), 1 otherwise
    (Detectron2's rule)."""
    groups = []
    for image_id in dataset.ids:
        info = dataset.images[image_id]
        if "width" not in info or "height" not in info:
            raise DatasetError(f"{dataset.ann_file}: image id {image_id} has no width/height, which "
                               "data.aspect_ratio_grouping needs")
        groups.append(0 if info["width"] > info["height"] else 1)
    return groups


def build_train_loader(cfg: DictConfig, dataset: CocoDetection, start_iter: int, rank: int,
                       world: int) -> DataLoader:
    """The resumable training loader: batches of one aspect group when ``data.aspect_ratio_grouping``."""
    batch, seed = int(cfg.solver.ims_per_batch), int(cfg.seed)
    if cfg.data.aspect_ratio_grouping:
        sampler = GroupedTrainingBatchSampler(aspect_groups(dataset), batch, seed, start_iter, rank, world)
    else:
        sampler = TrainingBatchSampler(len(dataset), batch, seed, start_iter, rank, world)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=int(cfg.data.num_workers),
                      collate_fn=collate, persistent_workers=False)
