"""Configuration: one schema of defaults, YAML files that inherit through ``_base_``, and
``key=value`` overrides from the command line.

Every key a YAML file or an override may set is declared in :data:`DEFAULTS`; an unknown key is an
error that names it, so a typo never silently trains the wrong recipe.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

__all__ = ["DEFAULTS", "ConfigError", "load_config", "apply_overrides", "to_yaml", "schedule_steps"]

# The schema and the default values. Full-size defaults follow Detectron2 / the paper's GN-all recipe;
# files under configs/ state the recipe explicitly anyway, so a user can diff two of them.
DEFAULTS: dict[str, Any] = {
    "model": {
        "arch": "mask_rcnn",  # mask_rcnn | faster_rcnn
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
            "depth": 50,  # ResNet depth: 18, 34, 50, 101
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
    },
    "input": {
        # Train short side is chosen from this list (Detectron2's ResizeShortestEdge "choice").
        "min_size_train": [640, 672, 704, 736, 768, 800],
        "max_size_train": 1333,
        "min_size_test": 800,
        "max_size_test": 1333,
        "hflip_prob": 0.5,
        # Direct detection pre-training: resize to crop_size * U(scale_jitter), then crop crop_size.
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
        "num_workers": 0,
        "check": True,  # validate the dataset before training
        # Used when no data keys are given: a generated set, made once under <out>/data.
        "synth": {"num_train": 160, "num_val": 40, "image_size": 128, "seed": 0,
                  "min_object_size": 0.08, "max_objects": 6, "object_textures": None, "shapes": None},
    },
    "solver": {
        "base_lr": 0.02,
        "ims_per_batch": 16,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "iters_1x": 90000,  # length of the "1x" schedule
        "schedule": 1.0,  # multiplier: max_iter = schedule * iters_1x unless max_iter is set
        "max_iter": None,
        # LR is divided by 10 when this many iterations remain (the paper: last 60k and last 20k),
        # so the low-LR phases last equally long whatever the schedule.
        "lr_drops_from_end": [60000, 20000],
        "gamma": 0.1,
        "constant_lr": False,  # True: no drops (direct pre-training stage 1)
        "warmup_iters": 1000,
        "warmup_factor": 0.001,
        "clip_grad_norm": None,
        "amp": False,  # autocast + GradScaler on CUDA
        "amp_dtype": "float16",  # float16 | bfloat16 (bfloat16 needs no loss scaling)
    },
    "eval": {"period": 0},  # evaluate every `period` iterations (AP-vs-iteration curves); 0: only at the end
    "log": {"period": 20},
    "checkpoint": {"period": 5000, "keep": 2},
    # Classification pre-training of the backbone (`scratchlab pretrain classify`), ImageNet-style.
    "classify": {
        "epochs": 100,
        "batch_size": 256,
        "base_lr": 0.1,  # for batch_size; SGD momentum 0.9
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "lr_schedule": "step",  # step | cosine
        "lr_steps": [30, 60, 90],  # epochs, for "step"
        "warmup_epochs": 0,
        "image_size": 224,  # RandomResizedCrop size; val: resize to image_size / 0.875, centre crop
        "min_crop_scale": 0.08,
        # Used when data.root is not given: a generated ImageFolder set, made once under <out>/data.
        "synth": {"classes": 16, "per_class": 60, "image_size": 64, "seed": 0},
    },
    # Direct detection pre-training (`scratchlab pretrain direct`): key=value overrides applied on top of
    # this config for stage 1 (low-res whole-detector pre-training) and stage 2 (full-res fine-tuning).
    "direct": {"stage1": [], "stage2": []},
    "seed": 0,
    "device": "auto",  # auto | cpu | cuda
}


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


def _unknown_keys(tree: Mapping[str, Any], schema: Mapping[str, Any], prefix: str = "") -> list[str]:
    bad = []
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if k not in schema:
            bad.append(key)
        elif isinstance(v, Mapping) and isinstance(schema[k], Mapping):
            bad += _unknown_keys(v, schema[k], key + ".")
    return bad


def _parse_value(text: str) -> Any:
    """``key=value`` values are YAML scalars/lists: 0.02, [640, 800], null, true, GN."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(cfg: DictConfig, overrides: Iterable[str]) -> DictConfig:
    """Apply ``a.b=value`` overrides; an unknown key or a missing ``=`` raises :class:`ConfigError`."""
    cfg = copy.deepcopy(cfg)
    OmegaConf.set_struct(cfg, True)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        node = cfg
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, DictConfig) or part not in node:
                raise ConfigError(f"unknown config key {key!r} (no {'.'.join(parts[: i + 1])!r} in the schema)")
            if i < len(parts) - 1:
                node = node[part]
        try:
            OmegaConf.update(cfg, key, _parse_value(value), merge=False)
        except (ConfigAttributeError, ConfigKeyError, OmegaConfBaseException) as exc:
            raise ConfigError(f"cannot set {key!r} to {value!r}: {exc}") from exc
    return cfg


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> DictConfig:
    """Return the merged config: :data:`DEFAULTS` <- ``_base_`` chain <- ``path`` <- ``overrides``.

    Raises :class:`ConfigError` naming the key when a file or override sets a key the schema lacks.
    """
    data = _read_yaml(Path(path)) if path is not None else {}
    bad = _unknown_keys(data, DEFAULTS)
    if bad:
        raise ConfigError(f"{path}: unknown config key(s): {', '.join(bad)}")
    cfg = OmegaConf.create(_deep_merge(DEFAULTS, data))
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


def schedule_steps(cfg: DictConfig) -> list[int]:
    """Iterations at which the LR is divided by ``gamma``: ``max_iter - d`` for each drop ``d``."""
    if cfg.solver.constant_lr:
        return []
    total = max_iter(cfg)
    return sorted(total - int(d) for d in cfg.solver.lr_drops_from_end if 0 < total - int(d) < total)
