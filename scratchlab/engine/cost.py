"""What a run cost (the paper's Fig. 2 counts): images, instances and pixels seen and wall time, plus
the cost of the pre-training the run started from."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import run_dir
from ..models import describe_init
from ..run_dir import EXTERNAL

__all__ = ["Cost", "pretrain_cost", "cost_block", "run_provenance"]

_KEYS = ("images_seen", "instances_seen", "pixels_seen", "wall_s")


@dataclass
class Cost:
    images_seen: int = 0
    instances_seen: int = 0
    pixels_seen: int = 0
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pretrain_cost(init: str) -> dict[str, Any] | None:
    """The total cost behind ``model.init``: a classification pre-training's ``pretrain_meta.json`` or a
    detection run's ``final_metrics.json`` (its own total, pre-training included) beside the file."""
    path = Path(str(init))
    if init in ("", "random") or not path.is_file():
        return None
    meta = path.parent / run_dir.PRETRAIN_META
    if meta.is_file():
        m = run_dir.read_json(meta)
        return {"kind": "classify", **{k: m[k] for k in _KEYS if k in m}}
    final = run_dir.read_final_metrics(path.parent)
    if final is not None:
        c = final.get("cost") or {}
        total = c.get("total") or c
        return {"kind": "direct", **{k: total[k] for k in _KEYS if k in total}}
    return None


def cost_block(own: Cost, pretrain: dict[str, Any] | None) -> dict[str, Any]:
    """``final_metrics.json``'s ``cost``: this run's counts, the pre-training's, and their sum."""
    block: dict[str, Any] = {**own.as_dict(), "pretrain": pretrain}
    block["total"] = {k: block[k] + ((pretrain or {}).get(k) or 0) for k in _KEYS}
    return block


def run_provenance(cfg: Any, model: Any) -> dict[str, Any]:
    """Where the run's initial weights came from (``scratchlab.models.describe_init``) plus the cost of
    that pre-training: counted when scratchlab ran it, :data:`EXTERNAL` for published weights."""
    m = cfg.model
    prov = describe_init(
        str(m.init), getattr(model, "init_report", {}) or {}, m.init_data, cfg.data.train_json
    )
    pre = pretrain_cost(str(m.init))
    prov["cost"] = None if prov["init"] == "random" else pre if pre is not None else EXTERNAL
    return prov
