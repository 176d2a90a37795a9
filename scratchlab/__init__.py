"""scratchlab: train detectors from random init, ImageNet-style or direct detection pre-training, and
measure what pre-training buys.

The notebook API (imported on first use, so ``import scratchlab`` stays light)::

    from scratchlab import evaluate, load_config, predict, train

    cfg = load_config("configs/mini/mask_rcnn_gn_scratch.yaml", ["solver.base_lr=1e-3"])
    final = train(cfg, "runs/mini")                          # final metrics: {"bbox": {"AP": ...}, ...}
    evaluate(load_config("runs/mini/config.yaml"), "runs/mini/model_final.pth", per_class=True)
    for p in predict("runs/mini", ["photos/"], out="runs/mini/predictions"):
        print(p["summary"])
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["load_config", "train", "evaluate", "predict"]

# name -> (module, attribute): torch is imported only when one of these is first used.
_API = {
    "load_config": ("scratchlab.config", "load_config"),
    "train": ("scratchlab.engine.trainer", "train"),
    "evaluate": ("scratchlab.engine.evaluate", "evaluate_checkpoint"),
    "predict": ("scratchlab.engine.predict", "predict"),
}


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'scratchlab' has no attribute {name!r}")
    module, attr = _API[name]
    return getattr(importlib.import_module(module), attr)
