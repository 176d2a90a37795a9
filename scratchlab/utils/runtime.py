"""The process's runtime: the package logger's handlers and the torch device a config asks for."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from .dist import is_main_process

__all__ = ["setup_logging", "resolve_device", "amp_setup"]

log = logging.getLogger("scratchlab")


def setup_logging(out_dir: Path | None = None) -> None:
    """Console (and ``out_dir/log.txt``) logging for the main process; other ranks log warnings only."""
    log.setLevel(logging.INFO if is_main_process() else logging.WARNING)
    fmt = logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S")
    if not any(
        isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in log.handlers
    ):
        h = logging.StreamHandler()
        h.setFormatter(fmt)
        log.addHandler(h)
    for h in [h for h in log.handlers if isinstance(h, logging.FileHandler)]:
        log.removeHandler(h)
        h.close()
    if out_dir is not None and is_main_process():
        fh = logging.FileHandler(Path(out_dir) / "log.txt")
        fh.setFormatter(fmt)
        log.addHandler(fh)


def resolve_device(cfg: DictConfig, local_rank: int = 0) -> torch.device:
    """``device: auto`` is this rank's GPU when there is one, else the CPU; anything else is taken as is."""
    if cfg.device == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def amp_setup(cfg: DictConfig, device: torch.device) -> tuple[bool, torch.dtype, torch.amp.GradScaler]:
    """``solver.amp`` / ``solver.amp_dtype`` as (autocast on, its dtype, the gradient scaler): autocast only
    on CUDA; loss scaling only for float16 (bfloat16 has float32's range)."""
    enabled = bool(cfg.solver.amp) and device.type == "cuda"
    dtype = torch.bfloat16 if cfg.solver.amp_dtype == "bfloat16" else torch.float16  # checked at load
    return enabled, dtype, torch.amp.GradScaler(device.type, enabled=enabled and dtype == torch.float16)
