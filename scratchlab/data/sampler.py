"""An infinite, seeded, resumable sample stream for iteration-based training.

The data order is a pure function of ``(seed, global sample position)``: epoch ``e`` is the permutation
``randperm(n, seed + e)``, and the sample at position ``p`` also gets its own augmentation seed. So a
checkpoint only needs the iteration to resume the exact same order, whatever the number of workers,
and each rank of a distributed run takes its own slice of every global batch. With gradient accumulation
(``accumulate`` micro-steps per iteration) the global batch is cut into ``accumulate`` consecutive
micro-batches first, then each micro-batch into ranks: the same images per iteration, whatever the split.
:class:`GroupedTrainingBatchSampler` keeps these guarantees with batches of one aspect group each.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["TrainingBatchSampler", "GroupedTrainingBatchSampler"]

_MIX = 0x9E3779B1  # golden-ratio constant: spreads (seed, position) into distinct augmentation seeds


class TrainingBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields, for each iteration from ``start_iter`` and each of its ``accumulate`` micro-steps, this
    rank's list of ``(index, sample_seed)``.

    ``global_batch`` is the batch of one optimizer step over all ranks (``solver.ims_per_batch``); in
    micro-step ``k`` rank ``r`` of ``world`` takes positions ``[k*m + r*b, k*m + (r+1)*b)`` of each
    global batch, ``m = global_batch // accumulate``, ``b = m // world``.
    """

    def __init__(
        self,
        size: int,
        global_batch: int,
        seed: int,
        start_iter: int = 0,
        rank: int = 0,
        world: int = 1,
        accumulate: int = 1,
    ) -> None:
        if size <= 0:
            raise ValueError("the training set is empty: nothing to sample")
        if accumulate < 1 or global_batch % (world * accumulate):
            raise ValueError(
                f"batch {global_batch} is not divisible by world size {world} x accumulate "
                f"{accumulate} (solver.ims_per_batch, solver.accumulate)"
            )
        self.size, self.global_batch, self.seed = size, global_batch, seed
        self.start_iter, self.rank, self.world, self.accumulate = start_iter, rank, world, accumulate
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.size)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.size, generator=g), epoch
        return int(self._perm[offset])

    def sample_seed(self, position: int) -> int:
        return (self.seed * _MIX + position * 2654435761 + 12345) % (2**31 - 1)

    def global_batch_at(self, iteration: int) -> list[tuple[int, int]]:
        """Every rank's samples of ``iteration``, in order."""
        first = iteration * self.global_batch
        return [(self._index(p), self.sample_seed(p)) for p in range(first, first + self.global_batch)]

    def batch(self, iteration: int, micro: int = 0) -> list[tuple[int, int]]:
        """This rank's samples for micro-step ``micro`` of ``iteration`` (pure function of the constructor
        arguments)."""
        local = self.global_batch // (self.world * self.accumulate)
        first = micro * local * self.world + self.rank * local
        return self.global_batch_at(iteration)[first : first + local]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        it = self.start_iter
        while True:
            for micro in range(self.accumulate):
                yield self.batch(it, micro)
            it += 1

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "size": self.size, "global_batch": self.global_batch}


class GroupedTrainingBatchSampler(TrainingBatchSampler):
    """:class:`TrainingBatchSampler` whose global batches hold one aspect group only (``groups[i]`` is
    image ``i``'s group: 0 landscape, 1 portrait), as Detectron's ASPECT_GROUPING and Detectron2's
    ASPECT_RATIO_GROUPING batch them, so a shared padded canvas wastes little room.

    Determinism, as in the parent: epoch ``e`` takes ``randperm(n, seed + e)``, splits it by group keeping
    its order and cuts each group into global batches; the leftovers of all groups (fewer than a batch
    each) are cut into mixed batches, the final partial one dropped; the epoch's batches are then shuffled
    with the same generator. So the number of batches per epoch is fixed, iteration ``i`` is batch
    ``i mod B`` of epoch ``i // B``: a pure function of ``(seed, iteration)`` that resumes exactly, and
    rank ``r`` takes its own slice of each global batch. Sample ``j`` of iteration ``i`` gets the
    augmentation seed of global position ``i * global_batch + j``.
    """

    def __init__(
        self,
        groups: list[int],
        global_batch: int,
        seed: int,
        start_iter: int = 0,
        rank: int = 0,
        world: int = 1,
        accumulate: int = 1,
    ) -> None:
        super().__init__(len(groups), global_batch, seed, start_iter, rank, world, accumulate)
        self.groups = [int(g) for g in groups]
        counts = [self.groups.count(g) for g in sorted(set(self.groups))]
        whole = sum(c // global_batch for c in counts)
        self.batches_per_epoch = whole + sum(c % global_batch for c in counts) // global_batch
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"the training set has {len(groups)} images, fewer than one batch "
                f"({global_batch}); aspect-ratio grouping needs at least one full batch"
            )
        self._epoch_batches: tuple[int, list[list[int]]] = (-1, [])

    def _batches(self, epoch: int) -> list[list[int]]:
        if self._epoch_batches[0] != epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.size, generator=g).tolist()
            batches, leftovers, b = [], [], self.global_batch
            for group in sorted(set(self.groups)):
                members = [i for i in order if self.groups[i] == group]
                cut = len(members) - len(members) % b
                batches += [members[k : k + b] for k in range(0, cut, b)]
                leftovers += members[cut:]
            batches += [leftovers[k : k + b] for k in range(0, len(leftovers) - b + 1, b)]
            shuffle = torch.randperm(len(batches), generator=g).tolist()
            self._epoch_batches = (epoch, [batches[k] for k in shuffle])
        return self._epoch_batches[1]

    def global_batch_at(self, iteration: int) -> list[tuple[int, int]]:
        epoch, k = divmod(iteration, self.batches_per_epoch)
        members = self._batches(epoch)[k]
        return [(i, self.sample_seed(iteration * self.global_batch + j)) for j, i in enumerate(members)]
