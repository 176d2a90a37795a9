"""timm ResNet checkpoints (``resnet50``, ``resnet50_gn``, ...): timm's ResNet keeps torchvision's names
(``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0/1``, ``fc``) -- its ``resnet50_gn`` too,
whose GroupNorm layers are still called ``bn1``..``bn3`` -- so the plain variants load unchanged. The
variants whose modules differ are refused by name rather than half-loaded: deep stems (``resnet50d``:
``conv1.0/1/3``), average-pool shortcuts (``downsample.1`` is a conv), squeeze-excite (``.se.``) and
anti-aliasing (``.aa.``) blocks. timm training checkpoints keep the weights under ``state_dict`` and
``state_dict_ema``; the EMA weights, timm's own choice for evaluation, are taken when present.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from .convert import TORCHVISION, Converted, norm_kind
from .read import as_state_dict

__all__ = ["is_timm_checkpoint", "timm_variant_keys", "from_timm"]

_VARIANTS = {
    "deep stem (resnet*d / *s / *t)": re.compile(r"^conv1\.\d+\."),
    "average-pool shortcut (resnet*d)": re.compile(r"\.downsample\.2\."),
    "squeeze-excite block (seresnet*, ecaresnet*)": re.compile(r"\.se\."),
    "anti-aliased downsampling (resnetaa*)": re.compile(r"\.aa\."),
}


def is_timm_checkpoint(obj: Any) -> bool:
    """A timm training checkpoint (``{"arch", "state_dict", "state_dict_ema", ...}``)."""
    return isinstance(obj, Mapping) and ("state_dict_ema" in obj or ("arch" in obj and "state_dict" in obj))


def timm_variant_keys(state: Mapping[str, Tensor]) -> dict[str, list[str]]:
    """Keys that show a timm ResNet variant scratchlab's ResNet does not have, by variant."""
    found: dict[str, list[str]] = {}
    for what, pattern in _VARIANTS.items():
        keys = [k for k in state if pattern.search(k)]
        if keys:
            found[what] = keys
    return found


def from_timm(obj: Any, source: str) -> Converted:
    """A timm ResNet state dict (or training checkpoint) in scratchlab's names; raises
    :class:`ValueError` naming the keys of a variant that would not load exactly."""
    notes = []
    if is_timm_checkpoint(obj):
        key = "state_dict_ema" if isinstance(obj.get("state_dict_ema"), Mapping) else "state_dict"
        notes.append(f"timm checkpoint ({obj.get('arch', 'arch not recorded')}): using its {key}")
        obj = obj[key]
    state = as_state_dict(obj, source)
    variants = timm_variant_keys(state)
    if variants:
        what = "; ".join(f"{v}: {keys[:4]}" for v, keys in variants.items())
        raise ValueError(
            f"{source}: a timm ResNet variant scratchlab's ResNet does not have ({what}); use a plain "
            "timm resnet* / resnet*_gn checkpoint"
        )
    return Converted(state, "timm", norm_kind(state), TORCHVISION, notes)
