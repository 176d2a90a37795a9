"""data.packing: a batch crosses from a worker as one buffer and comes back equal."""

import torch
from torchvision import tv_tensors

from scratchlab.data.coco import collate
from scratchlab.data.packing import Packed, PackedBatchLoader, pack, unpack


def _sample(i: int):
    g = torch.Generator().manual_seed(i)  # the same sample in a worker as here
    image = tv_tensors.Image(torch.randint(0, 255, (3, 5 + i, 7), dtype=torch.uint8, generator=g))
    target = {
        "boxes": tv_tensors.BoundingBoxes(
            torch.rand(i, 4, generator=g) * 5, format="XYXY", canvas_size=(5 + i, 7)
        ),
        "labels": torch.arange(i, dtype=torch.int64),
        "masks": tv_tensors.Mask(torch.rand(i, 5 + i, 7, generator=g) > 0.5),
        "keypoints": torch.rand(i, 3, 3, dtype=torch.float64, generator=g)[:, :, 1:],  # not contiguous
        "image_id": 10 + i,
        "orig_size": (5 + i, 7),
    }
    return image, target


def _assert_same(got, want):
    assert type(got) is type(want)
    if isinstance(want, torch.Tensor):
        assert (got.dtype, got.shape) == (want.dtype, want.shape)
        assert torch.equal(got.as_subclass(torch.Tensor), want.as_subclass(torch.Tensor))
        assert got.__dict__ == want.__dict__  # tv_tensors metadata: format, canvas_size
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for k in want:
            _assert_same(got[k], want[k])
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _assert_same(g, w)
    else:
        assert got == want


def test_unpack_of_pack_is_the_batch_with_every_tensor_in_one_buffer():
    batch = collate([_sample(i) for i in range(4)])  # sample 0 has no objects: empty tensors too
    packed = pack(batch)
    assert packed.buffer.dtype == torch.uint8 and packed.buffer.dim() == 1
    got = unpack(packed)
    _assert_same(got, batch)
    storages = {t.untyped_storage().data_ptr() for t in (got[0][1], got[1][2]["boxes"], got[1][3]["masks"])}
    assert storages == {packed.buffer.untyped_storage().data_ptr()}


def test_pinning_a_packed_batch_pins_its_one_buffer(monkeypatch):
    packed = pack(collate([_sample(1)]))
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t: t.clone())  # no CUDA here: a copy stands in
    pinned = packed.pin_memory()
    assert isinstance(pinned, Packed) and pinned.buffer is not packed.buffer
    _assert_same(unpack(pinned), unpack(packed))


class _Samples(torch.utils.data.Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        return _sample(i % 3)


def test_loader_with_workers_yields_the_batches_of_a_loader_without():
    def batches(workers):
        loader = PackedBatchLoader(_Samples(), batch_size=2, num_workers=workers, collate_fn=collate)
        return list(loader)

    collate_in_workers = PackedBatchLoader(_Samples(), num_workers=2, collate_fn=collate).collate_fn
    assert isinstance(collate_in_workers([_sample(1)]), Packed)  # what a worker sends
    in_process, from_workers = batches(0), batches(2)
    _assert_same(from_workers, in_process)
    assert from_workers[0][1][0]["boxes"].canvas_size == (5, 7)
