"""Where a run's initial weights came from, for final_metrics.json, study.json and reports:

    {"init": "random" | "torchvision" | "file", "source": "random" | "torchvision <enum>" | path,
     "file": path or None, "sha256": hex or None, "format": loader used, "data": the pre-training data,
     "label": "ImageNet-1k (torchvision IMAGENET1K_V2)", "load": {"loaded", "missing", "unexpected",
     "re_initialised"}}

The data is read from what the source says about itself: a torchvision enum's published metrics,
``pretrain_meta.json`` beside a ``scratchlab pretrain classify`` backbone, ``config.yaml`` of the run that
wrote a detector checkpoint (named "the target set" when it trained on this run's own training set).
Published files do not say what they were trained on: ``model.init_data`` states it, otherwise the
record says it is not stated. The cost of the pre-training is added by the trainer (engine.cost).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...run_dir import origin_of
from .from_torchvision import WEIGHTS_NAME, cache_path, enum_data, enum_of_file, weights_enum
from .read import sha256

__all__ = ["describe_init", "NOT_STATED"]

NOT_STATED = "not stated (set model.init_data)"


def _load_summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "loaded": report.get("loaded", 0),
        "missing": len(report.get("missing") or []),
        "unexpected": list(report.get("unexpected") or []),
        "re_initialised": list(report.get("skipped_shape") or []),
    }


def describe_init(
    init: str, report: dict[str, Any], init_data: str | None = None, train_json: str | None = None
) -> dict[str, Any]:
    """The provenance record of ``model.init`` after it was loaded with load report ``report``.

    ``init_data`` (``model.init_data``) states the pre-training data of a published file; ``train_json``
    is this run's training set, to recognise direct pre-training on the target set.
    """
    init = str(init)
    if init == "random":
        return {
            "init": "random",
            "source": "random",
            "file": None,
            "sha256": None,
            "format": None,
            "data": None,
            "label": "none (random init)",
            "load": _load_summary(report),
        }
    path = Path(init).expanduser()
    if not path.is_file() and WEIGHTS_NAME.match(init):
        weights = weights_enum(init)
        file = Path(cache_path(weights))
        data = init_data or enum_data(weights)
        return {
            "init": "torchvision",
            "source": f"torchvision {init}",
            "file": str(file),
            "sha256": sha256(file) if file.is_file() else None,
            "format": "torchvision",
            "data": data,
            "label": f"{data} (torchvision {init.split('.', 1)[1]})",
            "load": _load_summary(report),
        }
    fmt = report.get("format") or "file"
    own = origin_of(path, train_json)
    enum = enum_of_file(path)
    if own is not None:
        data, how = own
    elif enum is not None:
        data, how = init_data or enum_data(enum), f"torchvision {type(enum).__name__}.{enum.name} file"
    else:
        data, how = init_data or NOT_STATED, f"{fmt} file {path.name}"
    return {
        "init": "file",
        "source": str(path.resolve()),
        "file": str(path.resolve()),
        "sha256": sha256(path),
        "format": fmt,
        "data": data,
        "label": f"{data} ({how})",
        "load": _load_summary(report),
    }
