"""Learning-rate schedule: linear warm-up, then step drops (or constant), as a pure function of the
iteration so a resumed run gets exactly the same LR."""

from __future__ import annotations

import bisect

import torch
from omegaconf import DictConfig

from ..config import schedule_steps

__all__ = ["lr_factor", "lr_at", "build_optimizer", "build_scheduler"]


def lr_factor(it: int, steps: list[int], gamma: float, warmup_iters: int, warmup_factor: float) -> float:
    """Multiplier of the base LR at iteration ``it`` (0-based): warm-up ramps linearly from
    ``warmup_factor`` to 1 over ``warmup_iters``; each step in ``steps`` that has passed multiplies by
    ``gamma`` (Detectron2's WarmupMultiStepLR)."""
    factor = gamma ** bisect.bisect_right(steps, it)
    if it < warmup_iters:
        alpha = it / warmup_iters
        factor *= warmup_factor * (1 - alpha) + alpha
    return factor


def lr_at(cfg: DictConfig, it: int) -> float:
    """The LR the config's recipe uses at iteration ``it``."""
    s = cfg.solver
    return s.base_lr * lr_factor(it, schedule_steps(cfg), s.gamma, s.warmup_iters, s.warmup_factor)


def build_optimizer(cfg: DictConfig, model: torch.nn.Module) -> torch.optim.SGD:
    """SGD with momentum and weight decay over the trainable parameters (decay on every parameter, as the
    paper's Detectron recipe)."""
    params = [p for p in model.parameters() if p.requires_grad]
    s = cfg.solver
    return torch.optim.SGD(params, lr=s.base_lr, momentum=s.momentum, weight_decay=s.weight_decay)


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    s, steps = cfg.solver, schedule_steps(cfg)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: lr_factor(it, steps, s.gamma, s.warmup_iters, s.warmup_factor))
