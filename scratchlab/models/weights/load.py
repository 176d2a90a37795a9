"""Put converted tensors into a model: match names, check shapes, norms and input conventions, and say
exactly what happened. Nothing is loaded until every check has passed.

Names are matched by trying three prefix mappings (as is, adding or removing ``backbone.body.``) and
keeping the one that matches most names, so a backbone file fills a detector's ``backbone.body`` and a
detector file fills a bare :class:`~scratchlab.models.resnet.ResNetBody`.

Refused, with the keys named: a file of which no tensor matches; any shape mismatch except the class
layers of a detector trained for another class count (re-initialised, and listed); a file that leaves
ResNet body keys missing (a partial backbone); BatchNorm weights into a GroupNorm model and GroupNorm
weights into a BatchNorm one; weights trained on another input convention (pixel mean/std, stride in
the 1x1 or the 3x3) than the run's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops.misc import FrozenBatchNorm2d

from .convert import Convention, Converted

__all__ = ["load_state", "model_norm", "CLASS_LAYERS"]

log = logging.getLogger(__name__)

_BODY = "backbone.body."
# A BatchNorm step counter: no weight, only used when momentum=None; absent in GN/FrozenBN models.
_COUNTER = "num_batches_tracked"
_MAPPINGS = ("as is", f"add {_BODY!r}", f"strip {_BODY!r}")
# Layers whose first dimension is the class count: a detector trained on other classes loads all but these.
CLASS_LAYERS = (
    "roi_heads.box_predictor.cls_score.",
    "roi_heads.box_predictor.bbox_pred.",
    "roi_heads.mask_predictor.mask_fcn_logits.",
)


def _mapped(key: str, mapping: int) -> str | None:
    """The model name of checkpoint ``key`` under mapping ``mapping`` (an index into ``_MAPPINGS``)."""
    if mapping == 0:
        return key
    if mapping == 1:
        return _BODY + key
    return key[len(_BODY) :] if key.startswith(_BODY) else None


def _body(model: nn.Module) -> tuple[nn.Module, str]:
    """The ResNet body of ``model`` and its key prefix (the model itself for a bare body)."""
    backbone = getattr(model, "backbone", None)
    if backbone is not None and hasattr(backbone, "body"):
        return backbone.body, _BODY
    return model, ""


def model_norm(model: nn.Module) -> str | None:
    """The norm of the model's ResNet body: GN, FrozenBN, BN (BN and SyncBN), or None."""
    for m in _body(model)[0].modules():
        if isinstance(m, nn.GroupNorm):
            return "GN"
        if isinstance(m, FrozenBatchNorm2d):
            return "FrozenBN"
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return "BN"
    return None


def _check_norm(model: nn.Module, conv: Converted, source: str) -> None:
    have = model_norm(model)
    if conv.norm is None or have is None:
        return
    if have == "GN" and conv.norm != "GN":
        raise ValueError(
            f"{source}: holds BatchNorm weights ({conv.fmt}) but the model uses GroupNorm (model.norm=GN); "
            "BN statistics cannot become GN exactly. Use GN-pre-trained weights (timm resnet50_gn, "
            "Detectron R-50-GN.pkl, `scratchlab pretrain classify` with model.norm=GN) or set "
            "model.norm=FrozenBN (or BN/SyncBN) for this file"
        )
    if have != "GN" and conv.norm == "GN":
        raise ValueError(
            f"{source}: holds GroupNorm weights ({conv.fmt}) but the model uses {have} (model.norm={have}); "
            "GN weights have no BN statistics. Set model.norm=GN for this file"
        )


def _overrides(conv: Convention) -> str:
    mean = ",".join(f"{v:g}" for v in conv.pixel_mean)
    std = ",".join(f"{v:g}" for v in conv.pixel_std)
    return (
        f"input.pixel_mean=[{mean}] input.pixel_std=[{std}] "
        f"model.backbone.stride_in_1x1={str(conv.stride_in_1x1).lower()}"
    )


def _check_convention(model: nn.Module, conv: Converted, source: str) -> None:
    """Refuse weights whose input normalisation or stride placement differs from the model's."""
    want = conv.convention
    if want is None:
        return
    problems = []
    transform = getattr(model, "transform", None)
    if transform is not None:
        for what, have, need in (
            ("pixel_mean", transform.image_mean, want.pixel_mean),
            ("pixel_std", transform.image_std, want.pixel_std),
        ):
            if any(abs(float(a) - b) > 1e-4 for a, b in zip(have, need, strict=True)):
                problems.append(
                    f"input.{what} is {[round(float(v), 6) for v in have]}, the weights need {list(need)}"
                )
    body = _body(model)[0]
    layer2 = getattr(body, "layer2", None)
    if layer2 is not None and hasattr(layer2[0], "conv3"):  # bottleneck blocks: where is the stride?
        in_1x1 = tuple(layer2[0].conv1.stride) != (1, 1)
        if in_1x1 != want.stride_in_1x1:
            problems.append(
                f"model.backbone.stride_in_1x1 is {str(in_1x1).lower()}, the weights need "
                f"{str(want.stride_in_1x1).lower()}"
            )
    if problems:
        raise ValueError(
            f"{source}: trained as {want.name}, which this run does not match: {'; '.join(problems)}. "
            f"Set: {_overrides(want)}"
        )


def _partial(key: str, body_prefix: str, fresh: tuple[str, ...] = ()) -> bool:
    """A body key that a pre-trained file must supply (``fresh``: prefixes of layers only the detector
    has, such as Swin's per-stage output norms, which no classification checkpoint holds)."""
    return (
        key.startswith(body_prefix)
        and not key.endswith(_COUNTER)
        and not key[len(body_prefix) :].startswith(fresh)
    )


def load_state(model: nn.Module, conv: Converted | Mapping[str, Tensor], source: str) -> dict[str, Any]:
    """Load ``conv.state`` into ``model`` after the checks in the module docstring; return the report
    ``{"source", "format", "mapping", "loaded": n, "missing": [model keys left at their initialisation],
    "unexpected": [checkpoint keys the model lacks], "skipped_shape": [class layers re-initialised],
    "notes": [...]}``. Raises :class:`ValueError` naming ``source`` and the keys when a check fails."""
    if not isinstance(conv, Converted):
        conv = Converted(dict(conv), "state dict", None, None)
    state, target = conv.state, model.state_dict()
    counts = [sum(_mapped(k, i) in target for k in state) for i in range(len(_MAPPINGS))]
    best = counts.index(max(counts))
    loaded: dict[str, Tensor] = {}
    unexpected, skipped, mismatched = [], [], []
    for key, value in state.items():
        name = _mapped(key, best)
        if name is None or name not in target:
            if not key.endswith(_COUNTER):
                unexpected.append(key)
        elif target[name].shape == value.shape:
            loaded[name] = value
        elif name.startswith(CLASS_LAYERS) and target[name].shape[1:] == value.shape[1:]:
            skipped.append(name)
        else:
            mismatched.append(f"{name}: file {tuple(value.shape)}, model {tuple(target[name].shape)}")
    if not loaded:
        raise ValueError(
            f"{source}: no tensor of the checkpoint matches the model "
            f"({len(state)} keys, e.g. {list(state)[:3]}; model keys e.g. {list(target)[:3]}; "
            f"{len(mismatched) + len(skipped)} name matches had another shape)"
        )
    _check_norm(model, conv, source)
    if mismatched:
        raise ValueError(
            f"{source}: {len(mismatched)} tensor(s) have another shape than the model's: "
            f"{mismatched[:8]}{' ...' if len(mismatched) > 8 else ''}"
        )
    body, body_prefix = _body(model)
    fresh = tuple(getattr(body, "detection_only_keys", ()))
    missing = [k for k in target if k not in loaded and k not in skipped and not k.endswith(_COUNTER)]
    partial = [k for k in missing if _partial(k, body_prefix, fresh)]
    if partial:
        raise ValueError(
            f"{source}: leaves {len(partial)} ResNet body key(s) of the model missing, e.g. {partial[:8]} "
            f"(the file has {len(state)} keys, e.g. {list(state)[:3]}); refusing a partial backbone load"
        )
    _check_convention(model, conv, source)
    with torch.no_grad():
        model.load_state_dict(loaded, strict=False)
    report = {
        "source": source,
        "format": conv.fmt,
        "mapping": _MAPPINGS[best],
        "loaded": len(loaded),
        "missing": missing,
        "unexpected": unexpected,
        "skipped_shape": skipped,
        "notes": conv.notes,
    }
    _log(report)
    return report


def _log(report: dict[str, Any]) -> None:
    log.info(
        "init from %s (%s): loaded %d tensors, %d missing, %d unexpected, %d class layers re-initialised",
        report["source"],
        report["format"],
        report["loaded"],
        len(report["missing"]),
        len(report["unexpected"]),
        len(report["skipped_shape"]),
    )
    for note in report["notes"]:
        log.info("  %s", note)
    if report["missing"]:
        log.info("  missing (kept at their initialisation), by part: %s", _by_part(report["missing"]))
    if report["unexpected"]:
        u = report["unexpected"]
        log.info("  unexpected (ignored): %s", u if len(u) <= 10 else _by_part(u))
    if report["skipped_shape"]:
        log.info("  re-initialised (another class count): %s", report["skipped_shape"])


def _by_part(keys: list[str]) -> dict[str, int]:
    """Count keys by their first two name components (``roi_heads.box_head``: 12) for a short log line."""
    parts: dict[str, int] = {}
    for k in keys:
        p = ".".join(k.split(".")[:2])
        parts[p] = parts.get(p, 0) + 1
    return parts
