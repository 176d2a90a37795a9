"""Normalisation layers chosen by name from the config.

Names: ``GN`` (GroupNorm, ``model.gn_groups`` groups), ``SyncBN``, ``BN`` and ``FrozenBN``
(torchvision's :class:`~torchvision.ops.misc.FrozenBatchNorm2d`: fixed affine and statistics).
A part's norm of ``""`` means no norm layer (convs then get a bias).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from ..enums import NORMS

__all__ = [
    "NormFactory",
    "resolve_part_norm",
    "norm_factory",
    "freeze_batchnorm",
    "SyncBatchNorm",
]

NormFactory = Callable[[int], nn.Module]


def resolve_part_norm(part_norm: str | None, model_norm: str) -> str:
    """The norm name a randomly initialised part (FPN, box head, mask head) uses; ``""`` = none.

    ``None`` inherits ``model_norm`` -- except ``FrozenBN``, which becomes no norm: a FrozenBN layer on a
    randomly initialised part has gamma 1, beta 0, mean 0, var 1 that nothing ever updates, so it is an
    identity that only costs time (Detectron2 likewise gives FPN and heads no norm with a FrozenBN backbone).
    An explicit ``"FrozenBN"`` is honoured (it only makes sense when a detector checkpoint supplies the
    statistics).
    """
    if part_norm is None:
        return "" if model_norm == "FrozenBN" else model_norm
    return part_norm


def norm_factory(name: str, gn_groups: int = 32, where: str = "model") -> NormFactory | None:
    """A ``channels -> nn.Module`` constructor for the norm ``name``; ``None`` when ``name`` is ``""``.

    ``where`` names the part in error messages. GroupNorm raises :class:`ValueError` at construction
    when the channel count is not divisible by ``gn_groups``.
    """
    if name == "":
        return None
    if name == "GN":
        if int(gn_groups) <= 0:
            raise ValueError(f"{where}: model.gn_groups must be positive, got {gn_groups}")
        groups = int(gn_groups)

        def group_norm(channels: int) -> nn.Module:
            if channels % groups:
                raise ValueError(
                    f"{where}: GroupNorm needs channels divisible by model.gn_groups, "
                    f"but {channels} channels are not divisible by {groups} groups"
                )
            return nn.GroupNorm(groups, channels)

        return group_norm
    if name == "BN":
        return nn.BatchNorm2d
    if name == "SyncBN":
        # Outside an initialised process group SyncBatchNorm computes plain batch statistics, so a
        # SyncBN config also runs on one CPU/GPU.
        return SyncBatchNorm
    if name == "FrozenBN":
        return FrozenBatchNorm2d
    raise ValueError(f"{where}: unknown norm {name!r}; expected one of {', '.join(NORMS)} or '' (none)")


class _AllReduceSum(torch.autograd.Function):
    """A sum over ranks whose gradient is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class SyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose training statistics are those of the whole batch over every rank: per-channel sums,
    squared sums and element counts all-reduced in one differentiable collective (Detectron2's
    NaiveSyncBatchNorm with stats_mode "N"; any backend, so gloo CPU ranks too, which torch's own
    SyncBatchNorm and DDP refuse). Statistics are weighted by each rank's element count: a rank whose
    input is empty (no positive RoI for the mask head) contributes nothing and still joins the collective,
    instead of hanging the other ranks or dividing by zero. Outside a process group, or in eval, it is
    plain BatchNorm."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(input)
        channels = input.shape[1]
        dims = [d for d in range(input.dim()) if d != 1]
        count = torch.full((1,), input.numel() // channels, dtype=input.dtype, device=input.device)
        stats = torch.cat([input.sum(dims), (input * input).sum(dims), count])
        stats = _AllReduceSum.apply(stats)
        total = stats[-1].clamp(min=1)
        mean = stats[:channels] / total
        var = (stats[channels : 2 * channels] / total - mean * mean).clamp(min=0)
        if self.track_running_stats:
            with torch.no_grad():
                n = stats[-1].item()
                unbiased = var * (n / (n - 1)) if n > 1 else var
                self.num_batches_tracked += 1
                # momentum None: a cumulative average, as nn.BatchNorm does
                momentum = self.momentum if self.momentum is not None else 1.0 / int(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
        scale = torch.rsqrt(var + self.eps)
        shift = -mean * scale
        if self.affine:
            scale, shift = self.weight * scale, self.bias + self.weight * shift
        shape = [1, channels] + [1] * (input.dim() - 2)
        return input * scale.view(shape) + shift.view(shape)


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm/SyncBN in ``module`` by a FrozenBatchNorm2d holding the same values.

    Used for frozen stages (as Detectron2 does): turning off ``requires_grad`` alone would still let the
    running statistics drift in train mode. Returns ``module`` itself, or its replacement if it is a BN.
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        if module.affine:
            frozen.weight.copy_(module.weight.detach())
            frozen.bias.copy_(module.bias.detach())
        if module.track_running_stats:
            frozen.running_mean.copy_(module.running_mean)
            frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        new = freeze_batchnorm(child)
        if new is not child:
            setattr(module, name, new)
    return module
