"""Learning-rate schedule: linear warm-up, then step drops (or constant), as a pure function of the
iteration so a resumed run gets exactly the same LR."""

from __future__ import annotations

import bisect

import torch
from omegaconf import DictConfig, OmegaConf

from ..config import max_iter, schedule_steps

__all__ = [
    "NORM_TYPES",
    "lr_factor",
    "follow_schedule",
    "param_groups",
    "build_optimizer",
    "build_scheduler",
    "scale_to_world",
]

# Modules whose parameters are normalisation gamma/beta (SyncBatchNorm is a _BatchNorm too);
# FrozenBatchNorm2d has none. Detectron2's get_default_optimizer_params uses the same list.
NORM_TYPES = (
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.GroupNorm,
    torch.nn.LayerNorm,
    torch.nn.modules.instancenorm._InstanceNorm,
    torch.nn.LocalResponseNorm,
)
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
    groups = [
        {"params": other, "weight_decay": float(weight_decay)},
        {"params": norm, "weight_decay": float(weight_decay_norm)},
    ]
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
        optimizer, lambda it: lr_factor(it, steps, s.gamma, s.warmup_iters, s.warmup_factor)
    )


def follow_schedule(
    cfg: DictConfig, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR
) -> None:
    """After loading a checkpoint: set the next iteration's LR by this config's schedule. The checkpoint's
    LR is the schedule of the run that saved it, which for an arm forked from a longer arm's trunk drops
    later; the product is the one ``LambdaLR.step`` computes, so a plain resume is unchanged bit for bit."""
    s, steps = cfg.solver, schedule_steps(cfg)
    factor = lr_factor(scheduler.last_epoch, steps, s.gamma, s.warmup_iters, s.warmup_factor)
    for group, base_lr in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
        group["lr"] = base_lr * factor


def scale_to_world(cfg: DictConfig, world: int) -> tuple[DictConfig, str]:
    """``cfg`` for ``world`` devices, and the line that says what batch, LR and length it trains with.

    Without ``solver.reference_world_size`` the config is kept: ``ims_per_batch`` is the global batch,
    each device runs ``ims_per_batch / (world x accumulate)`` images per micro-step. With it, Detectron2's
    REFERENCE_WORLD_SIZE rule: the recipe's images per device (``ims_per_batch / reference_world_size``)
    are kept over ``world x accumulate`` devices, and with ``scale = world x accumulate / reference`` the
    batch and base LR are multiplied by ``scale`` (linear scaling, Goyal et al. 2017) while the iteration
    counts (schedule, LR drops, warm-up, cascade start, checkpoint and eval periods) are divided by it. The returned config
    names ``world x accumulate`` as its reference, so applying the rule again changes nothing (a resume).
    """
    s = cfg.solver
    accumulate, reference, batch = int(s.accumulate), int(s.reference_world_size), int(s.ims_per_batch)
    if accumulate < 1 or reference < 0:
        raise ValueError(
            f"solver.accumulate must be >= 1 and solver.reference_world_size >= 0, got "
            f"{accumulate} and {reference}"
        )
    devices, note = world * accumulate, ""
    if reference and devices != reference:
        if batch % reference:
            raise ValueError(
                f"solver.ims_per_batch={batch} is not divisible by solver.reference_world_size={reference}"
            )
        scale = devices / reference
        cfg = OmegaConf.create(OmegaConf.to_container(cfg))
        s = cfg.solver
        s.ims_per_batch, s.base_lr = batch // reference * devices, float(s.base_lr) * scale
        s.iters_1x = _shorter(s.iters_1x, scale)
        s.max_iter = None if s.max_iter is None else _shorter(s.max_iter, scale)
        s.lr_drops_from_end = [_shorter(d, scale) for d in s.lr_drops_from_end]
        s.warmup_iters = _shorter(s.warmup_iters, scale) if s.warmup_iters else 0
        start = cfg.model.cascade.start_iter
        cfg.model.cascade.start_iter = _shorter(start, scale) if start else 0
        cfg.checkpoint.period = _shorter(cfg.checkpoint.period, scale)
        cfg.eval.period = _shorter(cfg.eval.period, scale) if cfg.eval.period else 0
        s.reference_world_size = devices
        OmegaConf.set_struct(cfg, True)
        note = (
            f" (linear scaling from solver.reference_world_size={reference}: batch and LR x{scale:g}, "
            f"iterations /{scale:g})"
        )
    line = (
        f"batch: {world} device(s) x {int(s.ims_per_batch) // devices} image(s) x {accumulate} micro-step(s) "
        f"= {s.ims_per_batch} images per iteration; base LR {float(s.base_lr):g}, {max_iter(cfg)} iterations, "
        f"LR drops at {schedule_steps(cfg)}{note}"
    )
    return cfg, line


def _shorter(iterations: int, scale: float) -> int:
    return max(1, int(round(int(iterations) / scale)))
