"""An infinite, seeded, resumable sample stream for iteration-based training.

The data order is a pure function of ``(seed, global sample position)``: epoch ``e`` is the permutation
``randperm(n, seed + e)``, and the sample at position ``p`` also gets its own augmentation seed. So a
checkpoint only needs the iteration to resume the exact same order, whatever the number of workers,
and each rank of a distributed run takes its own slice of every global batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["TrainingBatchSampler"]

_MIX = 0x9E3779B1  # golden-ratio constant: spreads (seed, position) into distinct augmentation seeds


class TrainingBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields, for each iteration from ``start_iter``, this rank's list of ``(index, sample_seed)``.

    ``global_batch`` is the batch over all ranks (``solver.ims_per_batch``); rank ``r`` of ``world``
    takes positions ``[r*b, (r+1)*b)`` of each global batch, ``b = global_batch // world``.
    """

    def __init__(self, size: int, global_batch: int, seed: int, start_iter: int = 0,
                 rank: int = 0, world: int = 1) -> None:
        if size <= 0:
            raise ValueError("the training set is empty: nothing to sample")
        if global_batch % world:
            raise ValueError(f"batch {global_batch} is not divisible by world size {world}")
        self.size, self.global_batch, self.seed = size, global_batch, seed
        self.start_iter, self.rank, self.world = start_iter, rank, world
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.size)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.size, generator=g), epoch
        return int(self._perm[offset])

    def sample_seed(self, position: int) -> int:
        return (self.seed * _MIX + position * 2654435761 + 12345) % (2**31 - 1)

    def batch(self, iteration: int) -> list[tuple[int, int]]:
        """This rank's samples for ``iteration`` (pure function of the constructor arguments)."""
        local = self.global_batch // self.world
        first = iteration * self.global_batch + self.rank * local
        return [(self._index(p), self.sample_seed(p)) for p in range(first, first + local)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        it = self.start_iter
        while True:
            yield self.batch(it)
            it += 1

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "size": self.size, "global_batch": self.global_batch}
