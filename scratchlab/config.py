"""Configuration: one schema of defaults, YAML files that inherit through ``_base_``, and
``key=value`` overrides from the command line.

Every key a YAML file or an override may set is declared in :data:`DEFAULTS`; an unknown key is an
error that names it, so a typo never silently trains the wrong recipe. Every value is converted to its
key's type at load time (``1e-3`` -> float) or refused with the key, the value and the expected type: the
type is the default's own, or the one :data:`TYPES` declares (keys whose default is ``None`` or an empty
list, and enumerations).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from .config_types import (
    AnyOf,
    Choice,
    Float,
    Int,
    ListOf,
    Number,
    Optional,
    Pattern,
    Refused,
    Str,
    ValueType,
    infer_type,
    shown,
)
from .enums import NORMS

__all__ = [
    "ARCHS",
    "MASK_ARCHS",
    "DEFAULTS",
    "TYPES",
    "ConfigError",
    "load_config",
    "config_from_yaml",
    "apply_overrides",
    "override_value",
    "overrides_of",
    "to_yaml",
    "schedule_steps",
    "evaluates_at",
]

# Detectors model.arch may name; those with a mask head need instance masks in the data.
ARCHS = ("mask_rcnn", "faster_rcnn", "keypoint_rcnn", "cascade_mask_rcnn", "cascade_rcnn")
MASK_ARCHS = ("mask_rcnn", "cascade_mask_rcnn")

# The schema and the default values. Full-size defaults follow Detectron2 / the paper's GN-all recipe;
# files under configs/ state the recipe explicitly anyway, so a user can diff two of them.
DEFAULTS: dict[str, Any] = {
    "model": {
        "arch": "mask_rcnn",  # mask_rcnn | faster_rcnn | keypoint_rcnn | cascade_mask_rcnn | cascade_rcnn
        "num_classes": None,  # foreground classes; None = taken from the training set
        # random | a torchvision weights enum name (e.g. ResNet50_Weights.IMAGENET1K_V1)
        # | a path to a backbone checkpoint (backbone.pth) or a whole-detector checkpoint: torchvision/timm
        # .pth, Detectron Caffe2 .pkl, Detectron2 .pkl/.pth or scratchlab's own (scratchlab.models.weights)
        "init": "random",
        # What model.init was pre-trained on, for the run's provenance record when the file does not say
        # (timm / Caffe2 / Detectron2 files), e.g. "ImageNet-1k"; None: read from the source or "not stated".
        "init_data": None,
        "norm": "GN",  # GN | SyncBN | BN | FrozenBN: the backbone, and every part whose own norm is None
        "gn_groups": 32,
        "backbone": {
            "name": "resnet",  # resnet (ResNet / ResNeXt: depth, groups, width_per_group) | swin_t
            "depth": 50,  # ResNet depth: 18, 34, 50, 101, 152
            # ResNeXt: grouped 3x3 convs, groups x width_per_group (X101-32x8d: 32, 8); 1, 64 = ResNet
            "groups": 1,
            "width_per_group": 64,
            "width_mult": 1.0,  # scales the four stage widths (mini configs); 1.0 is the real ResNet
            "freeze_at": 0,  # 0 trains everything (scratch); 2 freezes stem + res2 (Detectron2 default)
            # True: stride in each stage's first 1x1 conv (MSRA ResNets: Detectron's Caffe2 R-50.pkl);
            # False: in the 3x3 (torchvision, timm, FAIR's R-50-GN.pkl). The weights loader checks it.
            "stride_in_1x1": False,
        },
        "fpn": {"channels": 256, "norm": None},  # norm None = model.norm ("" = no norm)
        "rpn": {
            "anchor_sizes": [32, 64, 128, 256, 512],
            "aspect_ratios": [0.5, 1.0, 2.0],
            "batch_size_per_image": 256,
            "positive_fraction": 0.5,
            "pre_nms_top_n_train": 2000,
            "post_nms_top_n_train": 1000,
            "pre_nms_top_n_test": 1000,
            "post_nms_top_n_test": 1000,
            "nms_thresh": 0.7,
        },
        "roi_box_head": {
            "num_conv": 4,  # 4conv1fc, the GN-all box head (0 conv + 2 fc is the classic 2fc head)
            "conv_dim": 256,
            "num_fc": 1,
            "fc_dim": 1024,
            "norm": None,
            "batch_size_per_image": 512,
            "positive_fraction": 0.25,
            "score_thresh": 0.05,
            "nms_thresh": 0.5,
            "detections_per_img": 100,
        },
        "roi_mask_head": {"num_conv": 4, "conv_dim": 256, "norm": None},
        # keypoint_rcnn: Detectron's 8 x conv3x3 512 head on 14x14 RoIAlign, deconv + 2x up to 56x56
        # heatmaps; num_keypoints None = the training set's (its categories' "keypoints" list)
        "roi_keypoint_head": {"num_conv": 8, "conv_dim": 512, "norm": None, "num_keypoints": None},
        # cascade_*: one box stage per IoU (each its own roi_box_head-shaped head, class-agnostic boxes),
        # its box-coder weights and loss weight (Cai & Vasconcelos; MMDetection cascade_rcnn_r50_fpn)
        "cascade": {
            "ious": [0.5, 0.6, 0.7],
            "bbox_reg_weights": [[10.0, 10.0, 5.0, 5.0], [20.0, 20.0, 10.0, 10.0], [30.0, 30.0, 15.0, 15.0]],
            "stage_loss_weights": [1.0, 0.5, 0.25],
            # training iteration from which the later stages run; before it stage 1 trains alone (the
            # paper's X152: Mask R-CNN, then the cascade for the final 270k iterations); 0 = all along
            "start_iter": 0,
        },
    },
    "input": {
        # Train short side is chosen from this list (Detectron2's ResizeShortestEdge "choice").
        "min_size_train": [640, 672, 704, 736, 768, 800],
        "max_size_train": 1333,
        "min_size_test": 800,
        "max_size_test": 1333,
        "hflip_prob": 0.5,
        # Direct detection pre-training (wxzs5/direct-pretraining): resize the *long* side to
        # crop_size * U(scale_jitter) keeping the aspect ratio, crop at most crop_size x crop_size, then pad
        # to crop_size with the pixel mean (= zero after normalisation, as MMDetection pads after Normalize).
        "crop_size": None,
        "scale_jitter": None,  # e.g. [0.8, 1.2]
        "pixel_mean": [0.485, 0.456, 0.406],
        "pixel_std": [0.229, 0.224, 0.225],
    },
    "data": {
        "root": None,  # classification pre-training: an ImageFolder root holding train/ and val/
        "train_json": None,
        "train_images": None,
        "val_json": None,
        "val_images": None,
        "subset": None,  # fraction in (0, 1] or an image count; seeded, the same for every arm
        "subset_seed": 0,
        # Batch landscape images with landscape, portrait with portrait (Detectron ASPECT_GROUPING,
        # Detectron2 ASPECT_RATIO_GROUPING): less padding in the shared canvas, so GN statistics see less
        # of it. On in the COCO recipes.
        "aspect_ratio_grouping": False,
        # Training loader processes: a count, or auto = one per usable core beyond the one that runs the
        # model (per local rank, at most 8; 0 on a single core). utils.runtime.loader_workers.
        "num_workers": "auto",
        "check": True,  # validate the dataset before training
        # Used when no data keys are given: a generated set, made once under <out>/data.
        "synth": {
            "num_train": 160,
            "num_val": 40,
            "image_size": 128,
            "seed": 0,
            "min_object_size": 0.08,
            "max_objects": 6,
            "object_textures": None,
            "shapes": None,
            "keypoints": False,  # True: crescents carry 3 keypoints (back, left_tip, right_tip)
            "class_colours": False,  # True: each shape family keeps its own colour
            "max_object_size": None,
        },  # a fraction of the side: uniform sizes up to it
    },
    "solver": {
        "optimizer": "sgd",  # sgd (momentum) | adamw (betas; the Swin recipes)
        "betas": [0.9, 0.999],
        "base_lr": 0.02,
        "ims_per_batch": 16,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        # Weight decay of normalisation parameters (GN/BN/SyncBN gamma and beta): Detectron
        # WEIGHT_DECAY_GN, Detectron2 WEIGHT_DECAY_NORM, MMDetection norm_decay_mult=0.
        "weight_decay_norm": 0.0,
        "iters_1x": 90000,  # length of the "1x" schedule
        "schedule": 1.0,  # multiplier: max_iter = schedule * iters_1x unless max_iter is set
        "max_iter": None,
        # Schedules longer than 1x divide the LR by `gamma` when this many iterations remain (the paper:
        # last 60k and last 20k), so the low-LR phases last equally long whatever the schedule. Schedules
        # of at most 1x drop at 2/3 and 8/9 of their length instead (60k, 80k of 90k). See schedule_steps.
        "lr_drops_from_end": [60000, 20000],
        "gamma": 0.1,
        "constant_lr": False,  # True: no drops (direct pre-training stage 1)
        "warmup_iters": 1000,
        "warmup_factor": 0.001,
        "clip_grad_norm": None,
        "amp": False,  # autocast + GradScaler on CUDA
        "amp_dtype": "float16",  # float16 | bfloat16 (bfloat16 needs no loss scaling)
        # Gradient accumulation: each iteration (one optimizer step over ims_per_batch images) runs this many
        # forward/backward micro-steps of ims_per_batch / (world size x accumulate) images per device.
        "accumulate": 1,
        # The number of devices the recipe was written for (Detectron2's REFERENCE_WORLD_SIZE); 0 = off:
        # ims_per_batch is the global batch whatever the world size. When set, the recipe's images per
        # device (ims_per_batch / reference_world_size) are kept and the batch, LR and iteration counts
        # follow the linear scaling rule for world size x accumulate devices (engine/schedule.py).
        "reference_world_size": 0,
    },
    "eval": {
        "period": 0,  # evaluate every `period` iterations (AP-vs-iteration curves); 0: only at the end
        # OKS sigma per keypoint for keypoint AP; None = COCO person's 17 (a set with other keypoints must
        # give its own, as Detectron2's TEST.KEYPOINT_OKS_SIGMAS)
        "keypoint_oks_sigmas": None,
        # Test-time augmentation for `scratchlab eval` (scratchlab/engine/tta.py): the test size plus these
        # short sides (capped at max_size), each also flipped when `flip`, merged before NMS. Defaults:
        # Detectron's configs/test_time_aug (BBOX_AUG / MASK_AUG SCALES, MAX_SIZE, H_FLIP, SCALE_H_FLIP).
        # vote_thresh: box voting of the merged boxes at this IoU (Detectron's BBOX_VOTE VOTE_TH 0.9 in
        # those files); 0 = no voting.
        "tta": {
            "enabled": False,
            "min_sizes": [400, 500, 600, 700, 900, 1000, 1100, 1200],
            "max_size": 2000,
            "flip": True,
            "vote_thresh": 0.0,
        },
    },
    "log": {"period": 20},
    "checkpoint": {"period": 5000, "keep": 2},
    # Classification pre-training of the backbone (`scratchlab pretrain classify`), ImageNet-style.
    "classify": {
        "epochs": 100,
        "batch_size": 256,
        "base_lr": 0.1,  # for batch_size; SGD momentum 0.9
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "weight_decay_norm": 0.0,  # on GN/BN gamma and beta
        # gamma of the last norm in each residual block starts at 0 (GN paper, after Goyal et al. 2017)
        "zero_init_residual": False,
        "lr_schedule": "step",  # step | cosine
        "lr_steps": [30, 60, 90],  # epochs, for "step"
        "warmup_epochs": 0,
        "image_size": 224,  # RandomResizedCrop size; val: resize to image_size / 0.875, centre crop
        "min_crop_scale": 0.08,
        # brightness / contrast / saturation jitter factor (0 = none) and PCA lighting std (0 = none), as
        # fb.resnet.torch's ColorJitter(0.4, 0.4, 0.4) and Lighting(0.1) which the GN paper's ImageNet runs use
        "color_jitter": 0.0,
        "pca_lighting": 0.0,
        # Used when data.root is not given: a generated ImageFolder set, made once under <out>/data.
        "synth": {"classes": 16, "per_class": 60, "image_size": 64, "seed": 0, "class_colours": False},
    },
    # Direct detection pre-training (`scratchlab pretrain direct`): key=value overrides applied on top of
    # this config for stage 1 (low-res whole-detector pre-training) and stage 2 (full-res fine-tuning).
    # stage1_epochs: stage 1's length in passes over the training set (after data.subset) at stage 1's
    # batch, which then sets its solver.max_iter: the reference's 4 x 12 epochs are 48 (87,950 iterations
    # of 64 on COCO's 117,266 images), and the same 48 passes over a user's 5,000 images are 3,750.
    "direct": {"stage1": [], "stage2": [], "stage1_epochs": None},
    "seed": 0,
    "device": "auto",  # auto | cpu | cuda
}


_PART_NORM = Optional(Choice(*NORMS, ""))  # None = model.norm, "" = no norm
_PATH = Optional(Str())

# Types the defaults above do not imply: keys whose default is None or [], and enumerations. Every other
# key has its default's type (an int default makes an int key, [0.5, 1.0] a list[float] key).
TYPES: dict[str, ValueType] = {
    "model.arch": Choice(*ARCHS),
    "model.cascade.bbox_reg_weights": ListOf(ListOf(Float(), length=4)),
    "model.cascade.start_iter": Int(minimum=0),
    "model.init_data": Optional(Str()),
    "model.norm": Choice(*NORMS),
    "model.backbone.name": Choice("resnet", "swin_t"),
    "model.backbone.depth": Choice(18, 34, 50, 101, 152),
    "model.fpn.norm": _PART_NORM,
    "model.roi_box_head.norm": _PART_NORM,
    "model.roi_mask_head.norm": _PART_NORM,
    "model.roi_keypoint_head.norm": _PART_NORM,
    "model.roi_keypoint_head.num_keypoints": Optional(Int()),
    "eval.keypoint_oks_sigmas": Optional(ListOf(Float())),
    "input.scale_jitter": Optional(ListOf(Float(), length=2)),
    "input.pixel_mean": ListOf(Float(), length=3),
    "input.pixel_std": ListOf(Float(), length=3),
    "data.root": _PATH,
    "data.train_json": _PATH,
    "data.train_images": _PATH,
    "data.val_json": _PATH,
    "data.val_images": _PATH,
    "data.subset": Optional(Number()),
    "data.num_workers": AnyOf(Choice("auto"), Int(minimum=0)),
    "data.synth.object_textures": Optional(ListOf(Str())),
    "data.synth.shapes": Optional(ListOf(Str())),
    "data.synth.max_object_size": Optional(Float()),
    "solver.optimizer": Choice("sgd", "adamw"),
    "solver.betas": ListOf(Float(), length=2),
    "solver.clip_grad_norm": Optional(Float()),
    "solver.amp_dtype": Choice("float16", "bfloat16"),
    "classify.lr_schedule": Choice("step", "cosine"),
    "direct.stage1": ListOf(Str()),
    "direct.stage2": ListOf(Str()),
    "direct.stage1_epochs": Optional(Float()),
    "device": Pattern(r"auto|cpu|mps|cuda(:\d+)?", "auto | cpu | cuda | cuda:N | mps"),
}
# Ranges: checked when the config is loaded, not met as a division by zero or a torch error mid-run.
_POSITIVE = Int(minimum=1)
_FRACTION = Float(minimum=0.0, maximum=1.0)
TYPES.update(
    {
        key: _POSITIVE
        for key in (
            "model.gn_groups",
            "model.fpn.channels",
            "model.rpn.batch_size_per_image",
            "model.rpn.pre_nms_top_n_train",
            "model.rpn.post_nms_top_n_train",
            "model.rpn.pre_nms_top_n_test",
            "model.rpn.post_nms_top_n_test",
            "model.roi_box_head.conv_dim",
            "model.roi_box_head.fc_dim",
            "model.roi_box_head.batch_size_per_image",
            "model.roi_box_head.detections_per_img",
            "model.roi_mask_head.conv_dim",
            "model.roi_keypoint_head.conv_dim",
            "input.max_size_train",
            "input.min_size_test",
            "input.max_size_test",
            "solver.ims_per_batch",
            "solver.iters_1x",
            "solver.accumulate",
            "eval.tta.max_size",
            "log.period",
            "checkpoint.period",
            "checkpoint.keep",
            "classify.epochs",
            "classify.batch_size",
            "classify.image_size",
        )
    }
)
TYPES.update(
    {
        key: _FRACTION
        for key in (
            "model.rpn.positive_fraction",
            "model.rpn.nms_thresh",
            "model.roi_box_head.positive_fraction",
            "model.roi_box_head.score_thresh",
            "model.roi_box_head.nms_thresh",
            "input.hflip_prob",
        )
    }
)
TYPES.update(
    {
        "model.num_classes": Optional(_POSITIVE),
        "input.min_size_train": AnyOf(_POSITIVE, ListOf(_POSITIVE, min_length=1)),
        "input.crop_size": Optional(_POSITIVE),
        "eval.tta.min_sizes": ListOf(_POSITIVE),
        "eval.period": Int(minimum=0),
        "solver.warmup_iters": Int(minimum=0),
        "solver.max_iter": Optional(_POSITIVE),
        "solver.schedule": Float(above=0.0),
        "solver.base_lr": Float(above=0.0),
        "classify.base_lr": Float(above=0.0),
    }
)


def _leaf_types(schema: Mapping[str, Any], prefix: str = "") -> dict[str, ValueType]:
    """Every leaf key's type, from :data:`TYPES` or its default. A key with neither is a schema bug,
    reported when the package is imported (so a new key cannot ship untyped)."""
    out: dict[str, ValueType] = {}
    for k, default in schema.items():
        key = prefix + k
        if isinstance(default, Mapping):
            out.update(_leaf_types(default, key + "."))
            continue
        value_type = TYPES.get(key) or infer_type(default)
        if value_type is None:
            raise TypeError(f"config schema: {key!r} (default {default!r}) needs an entry in TYPES")
        out[key] = value_type
    return out


LEAF_TYPES = _leaf_types(DEFAULTS)
if stale := set(TYPES) - set(LEAF_TYPES):
    raise TypeError(f"config schema: TYPES names keys DEFAULTS lacks: {sorted(stale)}")


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file or key."""


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read ``path`` and, recursively, the files its ``_base_`` key names (relative to it)."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: _base_ cycle through {' -> '.join(str(p) for p in seen)}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    bases = data.pop("_base_", None) or []
    if isinstance(bases, str):
        bases = [bases]
    merged: dict[str, Any] = {}
    for base in bases:
        merged = _deep_merge(merged, _read_yaml(path.parent / base, (*seen, path)))
    return _deep_merge(merged, data)


def _deep_merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(a))
    for k, v in b.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _unknown(keys: list[str]) -> str:
    """``unknown config key(s): a.b`` plus the closest declared keys, so a typo shows its fix."""
    close = {c for k in keys for c in difflib.get_close_matches(k, LEAF_TYPES, n=2, cutoff=0.8)}
    return f"unknown config key(s): {', '.join(keys)}" + (
        f" (did you mean {', '.join(sorted(close))}?)" if close else ""
    )


def _unknown_keys(tree: Mapping[str, Any], schema: Mapping[str, Any], prefix: str = "") -> list[str]:
    bad = []
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if k not in schema:
            bad.append(key)
        elif isinstance(v, Mapping) and isinstance(schema[k], Mapping):
            bad += _unknown_keys(v, schema[k], key + ".")
    return bad


def _typed(key: str, value: Any, schema: Any) -> Any:
    """``value`` converted to the type of ``key`` (whose schema node is ``schema``: a default or a
    mapping of them); raises :class:`ConfigError` naming the key, the value and the expected type."""
    if isinstance(schema, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}={shown(value)}: expected a mapping of {', '.join(schema)}")
        if unknown := [f"{key}.{k}" for k in value if k not in schema]:
            raise ConfigError(_unknown(unknown))
        return {k: _typed(f"{key}.{k}", v, schema[k]) for k, v in value.items()}
    value_type = LEAF_TYPES[key]
    try:
        return value_type(value)
    except Refused as why:
        reason = f": {why}" if str(why) else ""
        raise ConfigError(f"{key}={shown(value)}: expected {value_type.name}{reason}") from None


def _typed_tree(tree: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Every value of a (known-key) YAML tree converted to its type; errors are prefixed by ``where``."""
    try:
        return {k: _typed(k, v, DEFAULTS[k]) for k, v in tree.items()}
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _schema_node(key: str) -> Any:
    node: Any = DEFAULTS
    for part in key.split("."):
        node = node[part]
    return node


def _parse_value(text: str) -> Any:
    """``key=value`` values are YAML scalars/lists: 0.02, [640, 800], null, true, GN."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def override_value(value: Any) -> str:
    """``value`` written as a ``key=value`` override reads it back (:func:`_parse_value`): ``None`` as
    ``null``, booleans lower-case, lists in brackets."""
    if isinstance(value, list):
        return "[" + ",".join(override_value(x) for x in value) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def overrides_of(path: str | Path) -> list[str]:
    """A config file's own keys (its ``_base_`` left out) as ``key=value`` overrides: how a small recipe
    such as ``configs/mini/tiny.yaml`` shrinks configs that have a base of their own."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    data.pop("_base_", None)

    def walk(prefix: str, node: Any) -> list[str]:
        if isinstance(node, dict):
            return [o for k, v in node.items() for o in walk(f"{prefix}{k}.", v)]
        return [f"{prefix[:-1]}={override_value(node)}"]

    return walk("", data)


def apply_overrides(cfg: DictConfig, overrides: Iterable[str]) -> DictConfig:
    """Apply ``a.b=value`` overrides; an unknown key or a missing ``=`` raises :class:`ConfigError`."""
    cfg = copy.deepcopy(cfg)
    OmegaConf.set_struct(cfg, True)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {shown(item)} is not of the form key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        node = cfg
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, DictConfig) or part not in node:
                where = f"; no {'.'.join(parts[: i + 1])!r} in the schema" if i < len(parts) - 1 else ""
                raise ConfigError(_unknown([key]) + where)
            if i < len(parts) - 1:
                node = node[part]
        typed = _typed(key, _parse_value(value), _schema_node(key))
        try:
            OmegaConf.update(cfg, key, typed, merge=False)
        except (ConfigAttributeError, ConfigKeyError, OmegaConfBaseException) as exc:
            raise ConfigError(f"cannot set {key!r} to {shown(value)}: {exc}") from exc
    return cfg


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> DictConfig:
    """Return the merged config: :data:`DEFAULTS` <- ``_base_`` chain <- ``path`` <- ``overrides``.

    Raises :class:`ConfigError` naming the key when a file or override sets a key the schema lacks, or a
    value that does not convert to the key's type (the message names the value and the type).

    Example::

        cfg = load_config("configs/mini/mask_rcnn_gn_scratch.yaml", ["solver.base_lr=1e-3"])
        assert cfg.solver.base_lr == 0.001
    """
    data = _read_yaml(Path(path)) if path is not None else {}
    return _build(data, str(path) if path is not None else "<defaults>", overrides)


def config_from_yaml(text: str, where: str = "<config>", overrides: Iterable[str] = ()) -> DictConfig:
    """Like :func:`load_config` for a merged config held as text (a checkpoint's ``config``), checked and
    typed the same way; ``where`` names the source in error messages."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: top level must be a mapping, got {type(data).__name__}")
    return _build(data, where, overrides)


def _build(data: dict[str, Any], where: str, overrides: Iterable[str]) -> DictConfig:
    bad = _unknown_keys(data, DEFAULTS)
    if bad:
        raise ConfigError(f"{where}: {_unknown(bad)}")
    cfg = OmegaConf.create(_deep_merge(DEFAULTS, _typed_tree(data, where)))
    cfg = apply_overrides(cfg, overrides)
    OmegaConf.set_struct(cfg, True)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    """The merged config as YAML (what a run dir's ``config.yaml`` holds; loadable by load_config)."""
    return OmegaConf.to_yaml(cfg)


def max_iter(cfg: DictConfig) -> int:
    """Total iterations: ``solver.max_iter`` if set, else ``schedule * iters_1x``."""
    s = cfg.solver
    return int(s.max_iter) if s.max_iter is not None else int(round(float(s.schedule) * int(s.iters_1x)))


# The LR drop rule, the only place it is written. A schedule of at most 1x (max_iter <= iters_1x) drops
# at 2/3 and 8/9 of its length: the standard 1x of 90k drops at 60k and 80k (Detectron
# e2e_mask_rcnn_R-50-FPN_1x, Detectron2 Base-RCNN-FPN). A longer schedule drops when each of
# solver.lr_drops_from_end remains: the paper's "last 60k and last 20k" for 2x-6x (180k: 120k, 160k;
# 540k: 480k, 520k), which is also Detectron2's 3x (210k, 250k). The mini recipe scales both (1x = 150:
# 100, 133; 3x: 350, 417 with lr_drops_from_end [100, 33]).
SHORT_SCHEDULE_DROPS = (2 / 3, 8 / 9)


def evaluates_at(cfg: DictConfig, iteration: int) -> bool:
    """Whether a run of ``cfg`` evaluates inside its loop after ``iteration`` iterations: every
    ``eval.period``, except at the end, where the final evaluation takes its place."""
    period = int(cfg.eval.period or 0)
    return bool(period) and iteration % period == 0 and iteration != max_iter(cfg)


def schedule_steps(cfg: DictConfig) -> list[int]:
    """Iterations at which the LR is multiplied by ``gamma`` (none when ``solver.constant_lr``)."""
    if cfg.solver.constant_lr:
        return []
    total = max_iter(cfg)
    if total <= int(cfg.solver.iters_1x):
        steps = [int(round(total * f)) for f in SHORT_SCHEDULE_DROPS]
    else:
        steps = [total - int(d) for d in cfg.solver.lr_drops_from_end]
    return sorted(s for s in steps if 0 < s < total)
