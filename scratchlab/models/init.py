"""``model.init``: where a model's starting weights come from.

* ``random`` -- nothing is loaded (modules are MSRA-initialised at construction);
* a torchvision weights name such as ``ResNet50_Weights.IMAGENET1K_V1`` -- read through torchvision's own
  loader (cached under ``$TORCH_HOME/hub/checkpoints``; downloaded there if absent and online);
* a file -- a backbone checkpoint (``conv1.weight``, ``layer1.0...``), a whole-detector checkpoint
  (``backbone.body...``, ``rpn...``, ``roi_heads...``), either possibly wrapped as ``{"model": ...}``.

Checkpoint keys are matched to the model by trying a few prefix mappings (as is, adding or removing
``backbone.body.``) and keeping the one that matches most names, so a backbone file fills a detector's
``backbone.body`` and a detector file fills a bare :class:`~scratchlab.models.resnet.ResNetBody`.
Tensors whose shape differs from the model's (e.g. a class predictor for another class count) are
skipped and reported.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn

__all__ = ["load_init", "load_state", "read_checkpoint"]

log = logging.getLogger(__name__)

_WEIGHTS_NAME = re.compile(r"^\w+_Weights\.\w+$")
_BODY = "backbone.body."
# A BatchNorm step counter: no weight, only used when momentum=None; absent in GN/FrozenBN models.
_COUNTER = "num_batches_tracked"


def read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from ``path`` (unwrapping ``{"model": ...}`` / ``{"state_dict": ...}``).

    Raises :class:`ValueError` naming the file if it cannot be read or is not a dict of tensors.
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, pickle with non-tensor objects, ...
        raise ValueError(f"{path}: cannot read checkpoint: {exc}") from exc
    return _as_state_dict(obj, str(path))


def _as_state_dict(obj: Any, source: str) -> dict[str, Tensor]:
    if isinstance(obj, Mapping):
        for wrapper in ("model", "state_dict"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(
            f"{source}: expected a non-empty state_dict or {{'model': state_dict}}, got {type(obj).__name__}"
        )
    for key, value in obj.items():
        if not isinstance(value, Tensor):
            raise ValueError(
                f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor; "
                "expected a state_dict or {'model': state_dict}"
            )
    state = dict(obj)
    if all(k.startswith("module.") for k in state):  # saved from a DistributedDataParallel wrapper
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _read_torchvision_weights(name: str) -> dict[str, Tensor]:
    try:
        weights = torchvision.models.get_weight(name)
    except (ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"model.init: unknown torchvision weights name {name!r}: {exc}") from exc
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    try:
        state = weights.get_state_dict(progress=False, weights_only=True)
    except Exception as exc:  # offline download failure, corrupt cache file, ...
        raise RuntimeError(
            f"model.init: cannot load torchvision weights {name} from {cached} ({exc}); on an offline "
            f"machine, download {weights.url} to that path by hand"
        ) from exc
    return _as_state_dict(state, f"{name} ({cached})")


_MAPPINGS = ("as is", f"add {_BODY!r}", f"strip {_BODY!r}")


def _mapped(key: str, mapping: int) -> str | None:
    """The model name of checkpoint ``key`` under mapping ``mapping`` (an index into ``_MAPPINGS``)."""
    if mapping == 0:
        return key
    if mapping == 1:
        return _BODY + key
    return key[len(_BODY) :] if key.startswith(_BODY) else None


def load_state(model: nn.Module, state: Mapping[str, Tensor], source: str) -> dict[str, Any]:
    """Load the tensors of ``state`` whose (mapped) name and shape match ``model``; report the rest.

    Returns ``{"source", "mapping", "loaded": n, "missing": [model keys not in the checkpoint],
    "unexpected": [checkpoint keys the model lacks], "skipped_shape": [model keys whose shape differs]}``.
    Raises :class:`ValueError` naming ``source`` when nothing could be loaded.
    """
    target = model.state_dict()
    # Pick the single mapping (0: as is, 1: add backbone.body., 2: strip it) under which most keys match.
    counts = [sum(_mapped(k, i) in target for k in state) for i in range(len(_MAPPINGS))]
    best = counts.index(max(counts))
    loaded: dict[str, Tensor] = {}
    unexpected, skipped = [], []
    for key, value in state.items():
        name = _mapped(key, best)
        if name is None or name not in target:
            if not key.endswith(_COUNTER):
                unexpected.append(key)
        elif target[name].shape != value.shape:
            skipped.append(name)
            log.warning(
                "%s: skipped %s: checkpoint shape %s, model shape %s",
                source,
                name,
                tuple(value.shape),
                tuple(target[name].shape),
            )
        else:
            loaded[name] = value
    if not loaded:
        raise ValueError(
            f"{source}: no tensor of the checkpoint matches the model "
            f"({len(state)} keys, e.g. {list(state)[:3]}; model keys e.g. {list(target)[:3]}; "
            f"{len(skipped)} name matches had another shape)"
        )
    model.load_state_dict(loaded, strict=False)
    missing = [k for k in target if k not in loaded and k not in skipped and not k.endswith(_COUNTER)]
    report = {
        "source": source,
        "mapping": _MAPPINGS[best],
        "loaded": len(loaded),
        "missing": missing,
        "unexpected": unexpected,
        "skipped_shape": skipped,
    }
    log.info(
        "init from %s: loaded %d tensors, %d missing, %d unexpected, %d skipped (shape)",
        source,
        len(loaded),
        len(missing),
        len(unexpected),
        len(skipped),
    )
    if missing:
        log.info("missing (kept at their initialisation), by part: %s", _by_part(missing))
    if unexpected:
        log.info("unexpected (ignored): %s", unexpected if len(unexpected) <= 10 else _by_part(unexpected))
    return report


def _by_part(keys: list[str]) -> dict[str, int]:
    """Count keys by their first two name components (``roi_heads.box_head``: 12) for a short log line."""
    parts: dict[str, int] = {}
    for k in keys:
        p = ".".join(k.split(".")[:2])
        parts[p] = parts.get(p, 0) + 1
    return parts


def load_init(model: nn.Module, init: str, cfg: Any = None) -> dict[str, Any]:
    """Apply ``model.init`` to ``model`` (a detector or a bare ResNet body) and return the load report.

    ``init`` is ``"random"``, a torchvision weights name or a checkpoint path (see the module docstring).
    The report is ``{"source", "loaded", "missing", "unexpected", "skipped_shape"}`` (plus ``mapping``).
    ``cfg`` is accepted for callers that pass the run config; loading does not depend on it.
    Raises :class:`FileNotFoundError` for a path that does not exist, :class:`ValueError` for an unknown
    weights name, an unreadable file, or a checkpoint of which no tensor matches the model.
    """
    del cfg
    init = str(init)
    if init == "random":
        return {"source": "random", "loaded": 0, "missing": [], "unexpected": [], "skipped_shape": []}
    path = Path(init).expanduser()
    if path.is_file():
        return load_state(model, read_checkpoint(path), str(path))
    if path.exists():
        raise ValueError(f"model.init: {init} is not a file (expected the path of a checkpoint file)")
    if _WEIGHTS_NAME.match(init):
        return load_state(model, _read_torchvision_weights(init), f"torchvision {init}")
    raise FileNotFoundError(
        f"model.init: checkpoint file not found: {init} (expected 'random', a torchvision weights name "
        "such as ResNet50_Weights.IMAGENET1K_V1, or the path of a checkpoint file; a backbone.pth is written "
        "by `scratchlab pretrain classify`, a whole-detector model_final.pth by `scratchlab train`)"
    )
