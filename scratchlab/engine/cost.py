"""What a run cost (the paper's Fig. 2 counts): images, instances and pixels seen, wall time and peak
memory, plus the cost of the pre-training the run started from.

Peak memory is the run's, not the process's: arms trained one after another in one process
(``--launcher inline``) must not inherit the largest earlier peak. On a GPU it is
``torch.cuda.max_memory_allocated``, its peak reset when the run's cost starts counting; on CPU (Linux)
the resident peak ``VmHWM`` of ``/proc/self/status``, reset by writing 5 to ``/proc/self/clear_refs``
(what the process already holds counts, as on the GPU). Where neither reset works, the peak resident set
size (``resource.getrusage``) is the process's so far, and ``peak_memory_scope`` says "process"
instead of "run"."""

from __future__ import annotations

import re
import resource
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .. import run_dir
from ..models import describe_init
from ..run_dir import EXTERNAL

__all__ = ["Cost", "pretrain_cost", "cost_block", "run_provenance", "peak_memory_mb", "reset_peak_memory"]

_SUMMED = ("images_seen", "instances_seen", "pixels_seen", "wall_s")  # a run's total adds its pre-training's
_PEAK = "peak_memory_mb"  # a run's total is the larger of its own and its pre-training's
_KEYS = (*_SUMMED, _PEAK)
_SCOPE = "peak_memory_scope"  # "run": the peak is this run's; "process": the process's peak so far


_STATUS, _CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _cuda() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def _vm_hwm_kb() -> int | None:
    """This process's resident peak since its last reset (Linux), kilobytes; None where unreadable."""
    try:
        found = re.search(r"^VmHWM:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) if found else None


def reset_peak_memory() -> str:
    """Start this run's peak memory: "run" when the peak read later is the run's (the CUDA allocator's
    peak, or VmHWM after clear_refs), "process" when it cannot be reset (ru_maxrss: the process's peak
    so far)."""
    if _cuda():
        torch.cuda.reset_peak_memory_stats()
        return "run"
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:  # not Linux, or /proc read-only in a sandbox
        return "process"
    return "run" if _vm_hwm_kb() is not None else "process"


def peak_memory_mb() -> float:
    """Peak memory since :func:`reset_peak_memory`, MB: the CUDA allocator's peak where CUDA is in use,
    else VmHWM, else the process's peak resident set size (ru_maxrss: kilobytes on Linux, bytes on
    macOS)."""
    if _cuda():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if (hwm := _vm_hwm_kb()) is not None:
        return round(hwm / 2**10, 1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1)


@dataclass
class Cost:
    images_seen: int = 0
    instances_seen: int = 0
    pixels_seen: int = 0
    wall_s: float = 0.0
    peak_memory_mb: float | None = None  # measured when the block is written (:func:`cost_block`)
    peak_memory_scope: str | None = None  # "run" or "process": set when the cost starts counting

    def __post_init__(self) -> None:
        # Counting starts (or resumes) now: so does this run's peak, not an earlier one's in this process.
        self.peak_memory_scope = reset_peak_memory()

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
        return {"kind": "classify", **{k: m[k] for k in (*_KEYS, _SCOPE) if k in m}}
    final = run_dir.read_final_metrics(path.parent)
    if final is not None:
        c = final.get("cost") or {}
        total = c.get("total") or c
        scope = {_SCOPE: c[_SCOPE]} if _SCOPE in c else {}
        return {"kind": "direct", **{k: total[k] for k in _KEYS if k in total}, **scope}
    return None


def cost_block(own: Cost, pretrain: dict[str, Any] | None) -> dict[str, Any]:
    """``final_metrics.json``'s ``cost``: this run's counts and peak memory (measured now, at the end of
    the run, unless already set), the pre-training's, and their total (sums; the larger peak)."""
    if own.peak_memory_mb is None:
        own.peak_memory_mb = peak_memory_mb()
    block: dict[str, Any] = {**own.as_dict(), "pretrain": pretrain}
    block["total"] = {k: block[k] + ((pretrain or {}).get(k) or 0) for k in _SUMMED}
    block["total"][_PEAK] = max(own.peak_memory_mb, (pretrain or {}).get(_PEAK) or 0.0)
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
