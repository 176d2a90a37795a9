"""Training and evaluation: the loop, checkpoints, schedules, writers. Uses data, models, evaluation.

Names are imported on first use, so that importing one light submodule does not load the trainer."""

from importlib import import_module
from typing import Any

_HOMES = {"train": "trainer", "NonFiniteLossError": "divergence", "evaluate_checkpoint": "evaluate"}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
