"""Detectron's Caffe2 ``.pkl`` backbones (``R-50.pkl``, ``R-50-GN.pkl``, ...; also the backbone of a
Detectron ``model_final.pkl``): ``{"blobs": {name: numpy array}}`` with Caffe2 blob names.

Renaming (the rules of Detectron2's ``c2_model_loading``, written for torchvision's module names)::

    conv1_w                          -> conv1.weight
    res_conv1_{bn,gn}_{s,b}          -> bn1.{weight,bias}
    res<S>_<B>_branch2{a,b,c}_w      -> layer<S-1>.<B>.conv{1,2,3}.weight
    res<S>_<B>_branch2{a,b,c}_<n>_s  -> layer<S-1>.<B>.bn{1,2,3}.weight   (_b -> .bias)
    res<S>_<B>_branch1_w             -> layer<S-1>.<B>.downsample.0.weight
    res<S>_<B>_branch1_<n>_{s,b}     -> layer<S-1>.<B>.downsample.1.{weight,bias}

Everything else (``fc1000_*``, detector heads) keeps its name and is reported as unexpected.

Norms: ``_gn_`` blobs are GroupNorm affines. ``_bn_`` blobs are BatchNorm already folded into an affine
(``s = gamma / sqrt(var + eps)``, ``b = beta - mean * s``) with no statistics left; they are loaded as
``weight = s, bias = b, running_mean = 0, running_var = 1 - eps`` so that FrozenBN's
``weight / sqrt(running_var + eps)`` is exactly ``s`` (eps = 1e-5, torchvision's FrozenBatchNorm2d).
Input: BGR in 0-255 minus the Caffe2 mean, so conv1's input channels are flipped to RGB here and the
run must set the matching ``input.pixel_mean``/``pixel_std`` (checked by the loader).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .convert import CAFFE2_FAIR, CAFFE2_MSRA, Converted
from .read import as_state_dict

__all__ = ["is_caffe2", "from_caffe2", "FROZEN_BN_EPS"]

FROZEN_BN_EPS = 1e-5
_BLOCK = re.compile(r"^res(\d)_(\d+)_branch(1|2a|2b|2c)_(w|bn_s|bn_b|gn_s|gn_b)$")
_STEM_NORM = re.compile(r"^res_conv1_(bn|gn)_(s|b)$")
_CONV = {"2a": "conv1", "2b": "conv2", "2c": "conv3", "1": "downsample.0"}
_NORM = {"2a": "bn1", "2b": "bn2", "2c": "bn3", "1": "downsample.1"}
_PARAM = {"s": "weight", "b": "bias"}


def is_caffe2(obj: Any) -> bool:
    """A Detectron pickle (``{"blobs": ...}``) or a state dict with Caffe2 blob names."""
    if isinstance(obj, Mapping) and isinstance(obj.get("blobs"), Mapping):
        return True
    return isinstance(obj, Mapping) and any(k == "conv1_w" or _BLOCK.match(str(k)) for k in obj)


def _rename(blob: str) -> tuple[str, str | None]:
    """(scratchlab name, norm kind 'bn'/'gn' or None) of a blob; unknown blobs keep their name."""
    if blob == "conv1_w":
        return "conv1.weight", None
    if m := _STEM_NORM.match(blob):
        return f"bn1.{_PARAM[m.group(2)]}", m.group(1)
    if m := _BLOCK.match(blob):
        stage, block, branch, what = m.groups()
        prefix = f"layer{int(stage) - 1}.{block}"
        if what == "w":
            return f"{prefix}.{_CONV[branch]}.weight", None
        kind, param = what.split("_")
        return f"{prefix}.{_NORM[branch]}.{_PARAM[param]}", kind
    return blob, None


def from_caffe2(obj: Any, source: str) -> Converted:
    """A Caffe2 blob dict in scratchlab's names, BN affines given the statistics described above."""
    blobs = obj["blobs"] if isinstance(obj.get("blobs"), Mapping) else obj
    blobs = {k: v for k, v in blobs.items() if not str(k).endswith("_momentum")}  # SGD state, not weights
    with_stats = [k for k in blobs if re.search(r"_bn_(rm|riv)$", str(k))]
    if with_stats:
        raise ValueError(
            f"{source}: Caffe2 SpatialBN statistics ({with_stats[:3]}) are not supported; "
            "scratchlab reads Detectron's folded-affine (_bn_s/_bn_b) or GN (_gn_s/_gn_b) files"
        )
    raw = as_state_dict(blobs, source)
    state: dict[str, Tensor] = {}
    kinds: set[str] = set()
    for blob, value in raw.items():
        name, kind = _rename(blob)
        state[name] = value
        if kind:
            kinds.add(kind)
            if kind == "bn" and name.endswith(".weight"):
                stats = name[: -len("weight")]
                state[stats + "running_mean"] = torch.zeros_like(value)
                state[stats + "running_var"] = torch.full_like(value, 1 - FROZEN_BN_EPS)
    if len(kinds) > 1:
        raise ValueError(f"{source}: the file mixes BN and GN blobs; cannot tell which ResNet it is")
    if "conv1.weight" in state and state["conv1.weight"].ndim != 4:  # flip(1) below indexes dimension 1
        shape = "x".join(map(str, state["conv1.weight"].shape)) or "a scalar"
        raise ValueError(f"{source}: conv1_w is {shape}, expected a 4-D convolution weight")
    if "conv1.weight" in state:  # trained on BGR: reorder conv1's input channels for RGB images
        state["conv1.weight"] = state["conv1.weight"].flip(1).contiguous()
    gn = kinds == {"gn"}
    return Converted(
        state,
        "caffe2",
        "GN" if gn else "BN-folded" if kinds else None,
        CAFFE2_FAIR if gn else CAFFE2_MSRA,
        ["Caffe2 blobs renamed; conv1 flipped from BGR to RGB input channels"]
        + ([] if gn else ["BN affine (_bn_s/_bn_b) loaded with running_mean 0, running_var 1 - eps"]),
    )
