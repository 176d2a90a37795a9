"""Safe readers: safetensors parsed from header and buffer (as timm's hub weights are stored)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from scratchlab.models.weights.read import read_safetensors


def _write_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """The format as the safetensors library writes it (header, then each tensor's bytes in order)."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    names = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}
    for name, t in tensors.items():
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {
            "dtype": names[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def test_safetensors_round_trip(tmp_path: Path):
    tensors = {
        "conv1.weight": torch.randn(4, 3, 7, 7),
        "bn1.num_batches_tracked": torch.tensor(5),
        "half": torch.randn(3).half(),
        "empty": torch.zeros(0),
    }
    path = tmp_path / "model.safetensors"
    _write_safetensors(path, tensors)
    got = read_safetensors(path)
    assert set(got) == set(tensors)
    for k, t in tensors.items():
        assert got[k].dtype == t.dtype and torch.equal(got[k], t), k


def test_truncated_safetensors_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "cut.safetensors"
    _write_safetensors(path, {"w": torch.randn(10)})
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ValueError, match="cut.safetensors: cannot read safetensors file"):
        read_safetensors(path)


@pytest.mark.parametrize(
    "array",
    [
        np.array([None, 1], dtype=object),
        np.array([(1, 2.0)], dtype=[("a", "i8"), ("b", "f8")]),
        np.zeros(2, dtype=[("w", "f4"), ("o", "O")]),
    ],
    ids=["object", "structured", "structured-with-object-field"],
)
def test_read_pickle_refuses_object_and_structured_arrays(tmp_path, array):
    import pickle

    from scratchlab.models.weights.read import read_pickle

    path = tmp_path / "w.pkl"
    path.write_bytes(pickle.dumps({"model": {"conv1_w": np.zeros(3, "f4"), "x": [array]}}))
    with pytest.raises(ValueError, match=f"{path}: .*(object|structured) dtype"):
        read_pickle(path)
