"""The process's runtime: the package logger's handlers, the torch device a config asks for and the data
loader workers the machine affords."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig

from .dist import is_main_process

__all__ = ["setup_logging", "resolve_device", "amp_setup", "usable_cores", "loader_workers"]

# More workers than this rarely help a detection loader (Detectron2 and torchvision's references use 4).
MAX_AUTO_WORKERS = 8

log = logging.getLogger("scratchlab")


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is at each record (pytest, notebooks and redirections swap it): a
    handler holding the stream it was made with writes into a closed one after such a swap."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ and setStream assign it: ignored
        pass


def setup_logging(log_file: Path | None = None) -> None:
    """Console (and ``log_file``) logging for the main process; other ranks log warnings only."""
    log.setLevel(logging.INFO if is_main_process() else logging.WARNING)
    fmt = logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S")
    if not any(
        isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in log.handlers
    ):
        h = _StderrHandler()
        h.setFormatter(fmt)
        log.addHandler(h)
    for h in [h for h in log.handlers if isinstance(h, logging.FileHandler)]:
        log.removeHandler(h)
        h.close()
    if log_file is not None and is_main_process():
        fh = logging.FileHandler(log_file)
        fh.setFormatter(fmt)
        log.addHandler(fh)


def resolve_device(cfg: DictConfig, local_rank: int = 0) -> torch.device:
    """``device: auto`` is this rank's GPU when there is one, else the CPU; anything else is taken as is."""
    return device_named(cfg.device, local_rank)


def device_named(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` (this rank's GPU when there is one, else the CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``;
    a bad name, or a device this machine lacks, is a ValueError saying so (not torch's traceback at the
    first tensor moved there)."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    missing = (dev.type == "cuda" and not torch.cuda.is_available()) or (
        dev.type == "mps" and not torch.backends.mps.is_available()
    )
    if missing:
        raise ValueError(
            f"device {name!r}: {dev.type.upper()} is not available on this machine; use cpu (or auto)"
        )
    return dev


def amp_setup(cfg: DictConfig, device: torch.device) -> tuple[bool, torch.dtype, torch.amp.GradScaler]:
    """``solver.amp`` / ``solver.amp_dtype`` as (autocast on, its dtype, the gradient scaler): autocast only
    on CUDA; loss scaling only for float16 (bfloat16 has float32's range)."""
    enabled = bool(cfg.solver.amp) and device.type == "cuda"
    dtype = torch.bfloat16 if cfg.solver.amp_dtype == "bfloat16" else torch.float16  # checked at load
    return enabled, dtype, torch.amp.GradScaler(device.type, enabled=enabled and dtype == torch.float16)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def loader_workers(setting: int | str, cores: int | None = None, local_ranks: int | None = None) -> int:
    """``data.num_workers``: a count as given; ``auto`` = the cores each local rank has beyond the one that
    runs its model (``cores // local_ranks - 1``, at most :data:`MAX_AUTO_WORKERS`), so 0 on a single
    core, where a worker process could only take time from the model."""
    if setting != "auto":
        return int(setting)
    cores = usable_cores() if cores is None else cores
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", 1)) if local_ranks is None else local_ranks
    return max(0, min(MAX_AUTO_WORKERS, cores // max(1, local_ranks) - 1))
