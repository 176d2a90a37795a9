"""Learning-rate schedule: linear warm-up, then step drops (or constant), as a pure function of the
iteration so a resumed run gets exactly the same LR."""

from __future__ import annotations

import bisect

import torch
from omegaconf import DictConfig

from ..config import schedule_steps

__all__ = ["NORM_TYPES", "lr_factor", "lr_at", "param_groups", "build_optimizer", "build_scheduler"]

# Modules whose parameters are normalisation gamma/beta (SyncBatchNorm is a _BatchNorm too);
# FrozenBatchNorm2d has none. Detectron2's get_default_optimizer_params uses the same list.
NORM_TYPES = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm, torch.nn.LayerNorm,
              torch.nn.modules.instancenorm._InstanceNorm, torch.nn.LocalResponseNorm)
# Parameters that decay like norm parameters (none in every anchor): Swin's position tables, as the
# Swin / direct-pretraining MMDetection configs' paramwise custom_keys (decay_mult 0).
NO_DECAY_PARAMS = ("relative_position_bias_table", "absolute_pos_embed")


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


def param_groups(model: torch.nn.Module, weight_decay: float, weight_decay_norm: float) -> list[dict]:
    """The trainable parameters in two groups: normalisation gamma/beta (``weight_decay_norm``, 0 in every
    anchor: Detectron WEIGHT_DECAY_GN, Detectron2 WEIGHT_DECAY_NORM, MMDetection norm_decay_mult) and the
    rest (``weight_decay``). Biases decay like weights, as in Detectron2 (Detectron 1's 2x bias LR and no
    bias decay were dropped there as not useful). Swin's position tables (:data:`NO_DECAY_PARAMS`) go with
    the norm parameters. An empty group is left out."""
    norm, other, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if p.requires_grad and id(p) not in seen:  # a shared parameter goes in one group only
                seen.add(id(p))
                no_decay = isinstance(module, NORM_TYPES) or name in NO_DECAY_PARAMS
                (norm if no_decay else other).append(p)
    groups = [{"params": other, "weight_decay": float(weight_decay)},
              {"params": norm, "weight_decay": float(weight_decay_norm)}]
    return [g for g in groups if g["params"]]


def build_optimizer(cfg: DictConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum (``solver.optimizer: sgd``, every R-CNN anchor) or AdamW (``adamw``: the Swin
    anchors, ``solver.betas``) over the trainable parameters; ``solver.weight_decay`` on weights and biases,
    ``solver.weight_decay_norm`` on normalisation parameters."""
    s = cfg.solver
    groups = param_groups(model, s.weight_decay, s.weight_decay_norm)
    if str(s.optimizer) == "adamw":
        return torch.optim.AdamW(groups, lr=s.base_lr, betas=tuple(s.betas), weight_decay=s.weight_decay)
    return torch.optim.SGD(groups, lr=s.base_lr, momentum=s.momentum, weight_decay=s.weight_decay)


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    s, steps = cfg.solver, schedule_steps(cfg)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: lr_factor(it, steps, s.gamma, s.warmup_iters, s.warmup_factor))
