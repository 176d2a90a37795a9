"""How a study names where each arm's initial weights came from (the run's ``provenance`` record, see
``scratchlab.models.weights.provenance``): the per-arm field of study.json, the report's column and the
name the verdict's sentences use ("ImageNet-1k (torchvision IMAGENET1K_V2)")."""

from __future__ import annotations

from typing import Any

from ..run_dir import EXTERNAL

__all__ = ["arm_provenance", "pretraining_label", "external_cost"]

_KEEP = ("label", "source", "sha256", "data", "format", "cost")


def arm_provenance(final: dict[str, Any] | None) -> dict[str, Any] | None:
    """The study.json ``provenance`` of an arm from its final_metrics.json (load key lists left out)."""
    prov = (final or {}).get("provenance")
    return {k: prov.get(k) for k in _KEEP} if isinstance(prov, dict) else None


def pretraining_label(arm: dict[str, Any]) -> str:
    """What the arm was pre-trained on: the recorded label, else what the study file asked for."""
    prov = arm.get("provenance") or {}
    if prov.get("label"):
        return str(prov["label"])
    if arm.get("init") == "random":
        return "none (random init)"
    if arm.get("init") == "weights" and arm.get("weights"):
        return f"{arm.get('weights_data') or 'data not recorded'} ({arm['weights']})"
    return {"classify": "classification pre-training", "direct": "the target set"}.get(
        str(arm.get("init")), ""
    )


def external_cost(arm: dict[str, Any]) -> bool:
    """True when the arm's pre-training was paid for elsewhere and is not in its cost figures."""
    prov = arm.get("provenance") or {}
    return prov.get("cost") == EXTERNAL or (arm.get("init") == "weights" and not prov)
