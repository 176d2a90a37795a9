"""``model.init``: choose the loader for a source and load it.

* ``random`` -- nothing is loaded (modules are MSRA-initialised at construction);
* a torchvision weights name such as ``ResNet50_Weights.IMAGENET1K_V2`` -- torchvision's loader and cache;
* a file -- its format is told from its content: Detectron's Caffe2 ``.pkl`` (``blobs``), Detectron2
  (``__author__``, ``stem.conv1``/``res2.0``/``backbone.bottom_up`` names), a timm training checkpoint or
  timm ResNet variant, else torchvision's names (torchvision and plain timm ResNets, scratchlab's own
  ``backbone.pth`` and ``model_final.pth``, backbone or whole detector); ``.safetensors`` files (timm
  from the Hugging Face hub) are read like ``.pth``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ...run_dir import written_by_scratchlab
from .convert import TORCHVISION, Converted, norm_kind
from .from_caffe2 import from_caffe2, is_caffe2
from .from_detectron2 import from_detectron2, is_detectron2
from .from_timm import from_timm, is_timm_checkpoint, timm_variant_keys
from .from_torchvision import WEIGHTS_NAME, enum_of_file, read_enum, torchvision_names
from .load import load_state
from .read import as_state_dict, read_file

__all__ = ["load_init", "convert_file"]


def convert_file(path: Path) -> Converted:
    """Read ``path`` and rename its tensors with the loader its content calls for."""
    obj, source = read_file(path), str(path)
    if is_caffe2(obj):
        return from_caffe2(obj, source)
    if is_detectron2(obj):
        return from_detectron2(obj, source)
    if is_timm_checkpoint(obj):
        return from_timm(obj, source)
    state = as_state_dict(obj, source)
    if timm_variant_keys(state):
        return from_timm(state, source)  # raises, naming the variant's keys
    # checkpoints/last.pth and model_final.pth carry the run config as YAML text
    written_by_train = isinstance(obj, dict) and isinstance(obj.get("config"), str)
    if written_by_train or written_by_scratchlab(
        path
    ):  # trained with this run's kind of settings: no convention
        return Converted(state, "scratchlab", norm_kind(state), None)
    fmt = "torchvision" if enum_of_file(path) is not None else "torchvision/timm naming"
    state = torchvision_names(state)
    return Converted(state, fmt, norm_kind(state), TORCHVISION)


def load_init(model: nn.Module, init: str, cfg: Any = None) -> dict[str, Any]:
    """Apply ``model.init`` to ``model`` (a detector or a bare ResNet body) and return the load report
    (see :func:`~scratchlab.models.weights.load.load_state`; ``{"source": "random", ...}`` for random).

    Raises :class:`FileNotFoundError` for a path that does not exist, :class:`ValueError` for an unknown
    weights name, an unreadable file or a load the checks refuse (the message names the keys).
    ``cfg`` is accepted for callers that pass the run config; loading does not depend on it.
    """
    del cfg
    init = str(init)
    if init == "random":
        return {
            "source": "random",
            "format": None,
            "loaded": 0,
            "missing": [],
            "unexpected": [],
            "skipped_shape": [],
            "notes": [],
        }
    path = Path(init).expanduser()
    if path.is_file():
        return load_state(model, convert_file(path), str(path))
    if path.exists():
        raise ValueError(f"model.init: {init} is not a file (expected the path of a checkpoint file)")
    if WEIGHTS_NAME.match(init):
        converted, _ = read_enum(init)
        return load_state(model, converted, f"torchvision {init}")
    raise FileNotFoundError(
        f"model.init: checkpoint file not found: {init} (expected 'random', a torchvision weights name "
        "such as ResNet50_Weights.IMAGENET1K_V2, or the path of a weights file: torchvision/timm .pth, "
        "Detectron .pkl, Detectron2 .pkl/.pth; a backbone.pth is written by `scratchlab pretrain classify`, "
        "a whole-detector model_final.pth by `scratchlab train`)"
    )
