"""A batch crosses from a loader worker to the training process as ONE shared-memory buffer.

Why: a ``DataLoader`` worker hands every tensor of a batch over in its own shared-memory block, and the
receiving process opens each one through a socket round trip to the worker (torch.multiprocessing's
``file_descriptor`` strategy), about 0.5 ms per tensor on 2 cores. A detection batch is many small tensors
(image, boxes, labels, masks per image: 32 in a mini batch of 8), so the hand-over cost more than the
loading itself: 8% of a mini step, spent in the training process (``benchmarks/bench_data.py``,
docs/notes/). :func:`pack` copies a batch's tensors into one buffer in the worker; :func:`unpack` rebuilds
them in the training process as views of it, with their tensor subclass (``tv_tensors``) and metadata.

Guarantee: ``unpack(pack(batch))`` equals ``batch``: the same structure (lists, tuples, dicts, other
values as they were), every tensor with the same type, dtype, shape, values and attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

__all__ = ["Packed", "pack", "unpack", "PackedBatchLoader"]

# Every tensor starts at a multiple of this many bytes of the buffer, so a view of any dtype is aligned.
ALIGN = 64


@dataclass(frozen=True)
class _Slot:
    """Where the tensor numbered ``index`` of the packed batch goes back into its structure."""

    index: int


@dataclass(frozen=True)
class _Layout:
    """One tensor's place in the buffer and what it was: dtype, shape, class, attributes."""

    offset: int
    nbytes: int
    dtype: torch.dtype
    shape: tuple[int, ...]
    cls: type
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Packed:
    """A batch whose tensors all live in ``buffer`` (uint8): ``skeleton`` is the batch with a slot where
    each tensor was, ``layout`` says where each one is."""

    buffer: torch.Tensor
    layout: tuple[_Layout, ...]
    skeleton: Any

    def pin_memory(self) -> Packed:
        """The DataLoader's pin-memory thread calls this: one pinned copy for the whole batch."""
        return Packed(self.buffer.pin_memory(), self.layout, self.skeleton)


def _strip(obj: Any, tensors: list[torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors.append(obj)
        return _Slot(len(tensors) - 1)
    if isinstance(obj, dict):
        return {k: _strip(v, tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_strip(v, tensors) for v in obj)
    return obj


def _fill(obj: Any, tensors: list[torch.Tensor]) -> Any:
    if isinstance(obj, _Slot):
        return tensors[obj.index]
    if isinstance(obj, dict):
        return {k: _fill(v, tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_fill(v, tensors) for v in obj)
    return obj


def _view(buffer: torch.Tensor, place: _Layout) -> torch.Tensor:
    return buffer[place.offset : place.offset + place.nbytes].view(place.dtype).view(place.shape)


def pack(batch: Any) -> Packed:
    """``batch`` (nested lists, tuples and dicts of tensors and plain values) with its tensors copied into
    one buffer."""
    tensors: list[torch.Tensor] = []
    skeleton = _strip(batch, tensors)
    layout, end = [], 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        layout.append(_Layout(end, nbytes, t.dtype, tuple(t.shape), type(t), dict(t.__dict__)))
        end += -(-nbytes // ALIGN) * ALIGN
    buffer = torch.empty(end, dtype=torch.uint8)
    for place, t in zip(layout, tensors, strict=True):
        _view(buffer, place).copy_(t.detach().as_subclass(torch.Tensor))
    return Packed(buffer, tuple(layout), skeleton)


def unpack(packed: Packed) -> Any:
    """The batch :func:`pack` was given, its tensors views of the one buffer."""
    tensors = []
    for place in packed.layout:
        t = _view(packed.buffer, place)
        if place.cls is not torch.Tensor:
            t = t.as_subclass(place.cls)
            t.__dict__.update(place.attributes)
        tensors.append(t)
    return _fill(packed.skeleton, tensors)


class _PackingCollate:
    """``collate_fn`` then :func:`pack` (a class, not a closure: worker processes may pickle it)."""

    def __init__(self, collate_fn) -> None:
        self.collate_fn = collate_fn

    def __call__(self, samples: list) -> Packed:
        return pack(self.collate_fn(samples))


class PackedBatchLoader(DataLoader):
    """A ``DataLoader`` whose workers send each batch as one buffer (:func:`pack`) and whose iterators
    yield the batch itself (:func:`unpack`). Without workers nothing is packed: the batch is already in
    this process."""

    def __init__(self, dataset, *, collate_fn, num_workers: int = 0, **kwargs) -> None:
        packing = _PackingCollate(collate_fn) if num_workers > 0 else collate_fn
        super().__init__(dataset, collate_fn=packing, num_workers=num_workers, **kwargs)

    def __iter__(self):
        batches = super().__iter__()
        return map(unpack, batches) if self.num_workers > 0 else batches
