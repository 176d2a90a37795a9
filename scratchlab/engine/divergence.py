"""A NaN/inf loss stops training on every rank at the same step, before the optimizer applies it.

Stepping on would write NaN into the weights and every checkpoint after; a rank that stopped alone would
leave the others waiting in their next collective. So each rank's finiteness is agreed on (one collective
per check), and only when some rank's loss is not finite are the values gathered, to name the ranks.
"""

from __future__ import annotations

import math

import torch

from ..utils.dist import all_gather_objects, all_ranks_agree

__all__ = ["NonFiniteLossError", "non_finite_ranks"]


class NonFiniteLossError(FloatingPointError):
    """Training stopped on a NaN/inf loss before that step's update; the message names the step, the
    ranks, their loss values and the checkpoint that holds a state before it."""


def non_finite_ranks(
    values: dict[str, float], device: torch.device
) -> tuple[list[int], list[dict[str, float]]] | None:
    """None when every rank's loss ``values`` are finite; else the ranks with a non-finite one and every
    rank's values (rounded, for the message). Collective: every rank calls it at the same step."""
    if all_ranks_agree(all(map(math.isfinite, values.values())), device):
        return None
    gathered = all_gather_objects({k: round(v, 4) for k, v in values.items()})
    return [r for r, v in enumerate(gathered) if not all(map(math.isfinite, v.values()))], gathered
