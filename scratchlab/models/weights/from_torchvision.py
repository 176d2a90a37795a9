"""torchvision weights: an enum name (``ResNet50_Weights.IMAGENET1K_V2``) read through torchvision's own
loader and cache (``$TORCH_HOME/hub/checkpoints/<file name of the enum's url>``), or a file torchvision
wrote. torchvision's names are scratchlab's names, except in the released v1 detectors
(``MaskRCNN_ResNet50_FPN_Weights.COCO_V1``, ...), written before torchvision's modules were renamed and
loaded there by version hooks: :func:`torchvision_names` does what those hooks do, and maps the
``TwoMLPHead`` box head (``fc6``, ``fc7``) onto scratchlab's 2fc head (``model.roi_box_head.num_conv=0``,
``num_fc=2``: Flatten, fc, ReLU, fc, ReLU)."""

from __future__ import annotations

import os
import re
from typing import Any

import torch
import torchvision
from torch import Tensor

from .convert import TORCHVISION, Converted, norm_kind
from .read import as_state_dict

__all__ = [
    "WEIGHTS_NAME",
    "enum_of_file",
    "read_enum",
    "weights_enum",
    "cache_path",
    "enum_data",
    "torchvision_names",
]

WEIGHTS_NAME = re.compile(r"^\w+_Weights\.\w+$")
# Dataset names in the enums' ``meta["_metrics"]`` -> how a report names the pre-training data.
_DATA = {
    "ImageNet-1K": "ImageNet-1k",
    "COCO-val2017": "COCO train2017",
    "COCO-val2017-VOC-labels": "COCO train2017 (VOC classes)",
}


_LEGACY = [
    (
        re.compile(r"^backbone\.fpn\.(inner|layer)_blocks\.(\d)\.(weight|bias)$"),
        r"backbone.fpn.\1_blocks.\2.0.\3",
    ),
    (re.compile(r"^rpn\.head\.conv\.(weight|bias)$"), r"rpn.head.conv.0.0.\1"),
    (
        re.compile(r"^roi_heads\.mask_head\.mask_fcn(\d)\.(weight|bias)$"),
        lambda m: f"roi_heads.mask_head.{int(m.group(1)) - 1}.0.{m.group(2)}",
    ),
    (re.compile(r"^roi_heads\.box_head\.fc6\."), "roi_heads.box_head.1."),
    (re.compile(r"^roi_heads\.box_head\.fc7\."), "roi_heads.box_head.3."),
]


def torchvision_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename the released v1 detectors' legacy keys (see the module docstring); other keys unchanged."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _LEGACY:
            key = pattern.sub(repl, key)
        out[key] = value
    return out


def weights_enum(name: str) -> Any:
    try:
        return torchvision.models.get_weight(name)
    except (ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"model.init: unknown torchvision weights name {name!r}: {exc}") from exc


def cache_path(weights: Any) -> str:
    """Where torch.hub keeps the enum's file: its url's file name under ``$TORCH_HOME/hub/checkpoints``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))


def enum_data(weights: Any) -> str:
    """The pre-training data of an enum, from its published metrics (``ImageNet-1k``, ``COCO train2017``)."""
    names = [_DATA.get(k, k) for k in weights.meta.get("_metrics", {})]
    return ", ".join(names) or "not stated by torchvision"


def read_enum(name: str) -> tuple[Converted, Any]:
    """The enum's state dict (from the torch.hub cache, or downloaded there when online)."""
    weights = weights_enum(name)
    cached = cache_path(weights)
    try:
        state = weights.get_state_dict(progress=False, weights_only=True)
    except Exception as exc:  # offline download failure, corrupt cache file, ...
        # a ValueError like every other unusable model.init: the command prints it without a traceback
        raise ValueError(
            f"model.init: cannot load torchvision weights {name} from {cached} ({exc}); on an offline "
            f"machine, download {weights.url} to that path by hand"
        ) from exc
    state = torchvision_names(as_state_dict(state, f"{name} ({cached})"))
    return Converted(state, "torchvision", norm_kind(state), TORCHVISION), weights


def enum_of_file(path: str | os.PathLike) -> Any | None:
    """The torchvision enum whose released file has this file name (``resnet50-11ad3fa6.pth``), if any."""
    base = os.path.basename(path)
    for builder in torchvision.models.list_models():
        try:
            enum = torchvision.models.get_model_weights(builder)
        except (ValueError, KeyError):
            continue
        for member in enum:
            if os.path.basename(member.url) == base:
                return member
    return None
