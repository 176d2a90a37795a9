"""Detectron2 checkpoints: model-zoo ``.pkl`` (``{"model": {name: numpy array}, "__author__": ...}``) and
``.pth`` files Detectron2 saved (``{"model": state_dict, "iteration": ...}``), a backbone alone
(``stem.conv1.weight``, ``res2.0.conv1.weight``) or a whole R-CNN (``backbone.bottom_up.res2...``).

Renaming to torchvision's modules::

    [backbone.bottom_up.]stem.conv1[.norm]       -> [backbone.body.]conv1 / bn1
    [backbone.bottom_up.]res<S>.<B>.conv<k>      -> [backbone.body.]layer<S-1>.<B>.conv<k>   (.norm -> .bn<k>)
    [backbone.bottom_up.]res<S>.<B>.shortcut     -> ... .downsample.0                        (.norm -> .downsample.1)
    backbone.fpn_lateral<L> / fpn_output<L>      -> backbone.fpn.inner_blocks/layer_blocks.<L-2>.0 (.norm -> .1)
    proposal_generator.rpn_head.conv / objectness_logits / anchor_deltas -> rpn.head.conv.0.0 / cls_logits / bbox_pred
    roi_heads.box_head.conv<k> / fc<k>           -> roi_heads.box_head.<k-1>.0 / <num_conv + 2k - 1>
    roi_heads.mask_head.mask_fcn<k> / deconv / predictor -> roi_heads.mask_head.<k-1>.0 / mask_predictor.conv5_mask / mask_fcn_logits
    roi_heads.box_predictor.cls_score / bbox_pred -> roi_heads.box_predictor.*

Detectron2 puts the background class last in ``cls_score`` and has no background rows in ``bbox_pred``
and the mask predictor; torchvision puts it first: the scores are rotated and zero background rows added.
Input convention: Detectron2's default BGR 0-255 (conv1 flipped to RGB here; the run must set the Caffe2
mean/std) unless the file says it was converted from torchvision (``__author__: torchvision``), which is
RGB with the ImageNet mean/std. Stride: in the 1x1 for BN (MSRA) backbones, the 3x3 for GN (FAIR) ones,
as Detectron2's configs set ``RESNETS.STRIDE_IN_1X1``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .convert import CAFFE2_FAIR, CAFFE2_MSRA, TORCHVISION, Converted, norm_kind
from .read import as_state_dict

__all__ = ["is_detectron2", "from_detectron2"]

_BODY_KEY = re.compile(r"^(backbone\.bottom_up\.)?(stem\.conv1|res[2-5]\.\d+\.)")
_BODY_RULES = [
    (r"^backbone\.bottom_up\.", "backbone.body."),
    (r"(^|\.)stem\.conv1\.norm\.", r"\1bn1."),
    (r"(^|\.)stem\.conv1\.", r"\1conv1."),
    (r"(^|\.)res([2-5])\.", lambda m: f"{m.group(1)}layer{int(m.group(2)) - 1}."),
    (r"\.conv([123])\.norm\.", r".bn\1."),
    (r"\.shortcut\.norm\.", ".downsample.1."),
    (r"\.shortcut\.", ".downsample.0."),
]
_HEAD_RULES = [
    (
        r"^backbone\.fpn_lateral([2-5])\.norm\.",
        lambda m: f"backbone.fpn.inner_blocks.{int(m.group(1)) - 2}.1.",
    ),
    (r"^backbone\.fpn_lateral([2-5])\.", lambda m: f"backbone.fpn.inner_blocks.{int(m.group(1)) - 2}.0."),
    (
        r"^backbone\.fpn_output([2-5])\.norm\.",
        lambda m: f"backbone.fpn.layer_blocks.{int(m.group(1)) - 2}.1.",
    ),
    (r"^backbone\.fpn_output([2-5])\.", lambda m: f"backbone.fpn.layer_blocks.{int(m.group(1)) - 2}.0."),
    (r"^proposal_generator\.rpn_head\.conv\.", "rpn.head.conv.0.0."),
    (r"^proposal_generator\.rpn_head\.objectness_logits\.", "rpn.head.cls_logits."),
    (r"^proposal_generator\.rpn_head\.anchor_deltas\.", "rpn.head.bbox_pred."),
    (r"^roi_heads\.box_head\.conv(\d)\.norm\.", lambda m: f"roi_heads.box_head.{int(m.group(1)) - 1}.1."),
    (r"^roi_heads\.box_head\.conv(\d)\.", lambda m: f"roi_heads.box_head.{int(m.group(1)) - 1}.0."),
    (
        r"^roi_heads\.mask_head\.mask_fcn(\d)\.norm\.",
        lambda m: f"roi_heads.mask_head.{int(m.group(1)) - 1}.1.",
    ),
    (r"^roi_heads\.mask_head\.mask_fcn(\d)\.", lambda m: f"roi_heads.mask_head.{int(m.group(1)) - 1}.0."),
    (r"^roi_heads\.mask_head\.deconv\.", "roi_heads.mask_predictor.conv5_mask."),
    (r"^roi_heads\.mask_head\.predictor\.", "roi_heads.mask_predictor.mask_fcn_logits."),
]


def is_detectron2(obj: Any) -> bool:
    """A Detectron2 checkpoint: ``__author__`` set by its model zoo, or its backbone names."""
    if not isinstance(obj, Mapping):
        return False
    if "__author__" in obj and isinstance(obj.get("model"), Mapping):
        return True
    inner = obj.get("model") if isinstance(obj.get("model"), Mapping) else obj
    return any(_BODY_KEY.match(str(k)) for k in inner)


def _rename(key: str, num_box_convs: int) -> str:
    for pattern, repl in _BODY_RULES if _BODY_KEY.match(key) else _HEAD_RULES:
        key = re.sub(pattern, repl, key)
    if m := re.match(r"^roi_heads\.box_head\.fc(\d)\.(\w+)$", key):  # after Flatten, Linear/ReLU pairs
        key = f"roi_heads.box_head.{num_box_convs + 2 * int(m.group(1)) - 1}.{m.group(2)}"
    return key


def _predictors(state: dict[str, Tensor]) -> None:
    """Detectron2's class layout -> torchvision's (background first), in place."""
    for suffix in ("weight", "bias"):
        cls = f"roi_heads.box_predictor.cls_score.{suffix}"
        if cls in state:  # background: last row -> first row
            state[cls] = torch.cat([state[cls][-1:], state[cls][:-1]])
        for name, rows in (
            ("roi_heads.box_predictor.bbox_pred", 4),
            ("roi_heads.mask_predictor.mask_fcn_logits", 1),
        ):
            key = f"{name}.{suffix}"
            if key in state:  # class-specific rows with no background: add zero background rows
                value = state[key]
                state[key] = torch.cat([torch.zeros_like(value[:rows]), value])


def from_detectron2(obj: Any, source: str) -> Converted:
    """A Detectron2 checkpoint in scratchlab's names (see the module docstring)."""
    author = str(obj.get("__author__", "")) if isinstance(obj, Mapping) else ""
    raw = as_state_dict(obj, source)
    num_box_convs = len({k.split(".")[2] for k in raw if re.match(r"^roi_heads\.box_head\.conv\d\.", k)})
    state = {_rename(k, num_box_convs): v for k, v in raw.items()}
    _predictors(state)
    norm = norm_kind(state)
    if author == "torchvision":
        convention = TORCHVISION
        notes = ["Detectron2 file converted from torchvision: RGB input, ImageNet mean/std"]
    else:
        convention = CAFFE2_FAIR if norm == "GN" else CAFFE2_MSRA
        if "conv1.weight" in state or "backbone.body.conv1.weight" in state:
            key = "conv1.weight" if "conv1.weight" in state else "backbone.body.conv1.weight"
            state[key] = state[key].flip(1).contiguous()
        notes = ["Detectron2 names mapped; conv1 flipped from BGR (Detectron2's default input) to RGB"]
    return Converted(state, "detectron2", norm, convention, notes)
