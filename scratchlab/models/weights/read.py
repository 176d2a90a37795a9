"""Reading weight files safely: torch files with ``weights_only=True``, pickles through an unpickler
that only builds numpy arrays, dicts, lists and plain values (Detectron's Caffe2 ``.pkl``, Detectron2's
model-zoo ``.pkl``), and ``.safetensors`` (what timm's Hugging Face hub weights are) read from their JSON
header and raw buffer. Nothing in a weights file can run code here.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["read_file", "read_pickle", "read_safetensors", "sha256", "as_state_dict"]

# The only globals a weights pickle may name: what numpy needs to rebuild arrays and scalars (under
# numpy 1's and numpy 2's module names), OrderedDict, and the codec Python 2 pickles use for bytes.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a weights pickle may only hold numpy arrays, dicts and plain values"
        )

    def load(self) -> Any:
        obj = super().load()
        _refuse_object_dtypes(obj)
        return obj


def _refuse_object_dtypes(obj: Any) -> None:
    """Refuse an array, scalar or dtype holding Python objects or fields: the allowed names can build one
    whose object slots are raw bytes from the file, which numpy would read as pointers (a crash at best).
    Only dtypes are looked at, never the elements."""
    stack, seen = [obj], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Mapping):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple):
            stack += item
        else:
            dtype = item if isinstance(item, np.dtype) else getattr(item, "dtype", None)
            if isinstance(dtype, np.dtype) and (dtype.hasobject or dtype.fields is not None):
                raise pickle.UnpicklingError(
                    f"refusing a numpy {'object' if dtype.hasobject else 'structured'} dtype: a weights pickle "
                    "may only hold numeric arrays"
                )


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` allowing numpy arrays and basic containers only (Python 2 pickles included)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _ArraysOnly(f, encoding="latin1").load()
    except Exception as exc:  # refused global, truncated file, not a pickle, ...
        raise ValueError(f"{path}: cannot read pickle: {exc}") from exc


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def read_safetensors(path: str | Path) -> dict[str, Tensor]:
    """A ``.safetensors`` file: an 8-byte little-endian header length, a JSON header
    ``{name: {"dtype", "shape", "data_offsets": [begin, end]}}`` and the tensors' bytes."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + n])
        buffer = bytearray(raw[8 + n :])
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            dtype = _SAFETENSORS_DTYPES[info["dtype"]]
            flat = (
                torch.frombuffer(buffer, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=begin)
                if end > begin
                else torch.empty(0, dtype=dtype)
            )
            out[name] = flat.reshape(info["shape"]).clone()
        return out
    except Exception as exc:  # truncated file, bad header, unknown dtype, ...
        raise ValueError(f"{path}: cannot read safetensors file: {exc!r}") from exc


def read_file(path: str | Path) -> Any:
    """The raw object in a weights file: ``.pkl`` through :func:`read_pickle`, ``.safetensors`` through
    :func:`read_safetensors`, anything else through ``torch.load(weights_only=True)``."""
    path = Path(path)
    if path.suffix == ".pkl":
        return read_pickle(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, pickle with non-tensor objects, ...
        raise ValueError(
            f"{path}: cannot read checkpoint: {exc} (weights are read with weights_only=True; a training "
            "checkpoint holding other objects can be reduced to its weights with "
            "torch.save(torch.load(f, weights_only=False)['model'], out) where you trust the file)"
        ) from exc


def _tensor(value: Any) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
        return torch.from_numpy(np.ascontiguousarray(value))
    return None


# The largest tensor a detector's weights file may declare: ten times a ResNeXt-152 / Swin-L layer. A file
# declaring more (a stride-0 view of 64x3x100000x100000) is refused before any conversion copies it.
TENSOR_BUDGET = 2**31


def _refuse_hostile_tensor(key: str, tensor: Tensor, source: str) -> None:
    """A tensor larger than :data:`TENSOR_BUDGET`, or a view declaring more elements than its storage holds
    (stride 0): copying it, as every conversion does, would try to allocate all of it."""
    declared = tensor.numel() * tensor.element_size()
    shape = "x".join(map(str, tensor.shape)) or "scalar"
    if declared > TENSOR_BUDGET:
        raise ValueError(
            f"{source}: entry {key[:80]!r} declares {shape} ({declared / 2**30:.1f} GiB), over the "
            f"{TENSOR_BUDGET / 2**30:.0f} GiB a weight tensor may take"
        )
    if declared > tensor.untyped_storage().nbytes():
        raise ValueError(
            f"{source}: entry {key[:80]!r} declares {shape} over a storage of "
            f"{tensor.untyped_storage().nbytes()} bytes (a broadcast view, not weights)"
        )


def as_state_dict(obj: Any, source: str) -> dict[str, Tensor]:
    """``name -> tensor`` from a state dict, possibly wrapped as ``{"model": ...}``, ``{"state_dict": ...}``
    or ``{"blobs": ...}`` (Caffe2), with numpy arrays turned into tensors and a DDP ``module.`` prefix
    removed. Raises :class:`ValueError` naming ``source`` and the entry that is not a tensor."""
    if isinstance(obj, Mapping):
        for wrapper in ("model", "state_dict", "blobs"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(
            f"{source}: expected a non-empty state_dict or {{'model': state_dict}}, got {type(obj).__name__}"
        )
    state = {}
    for key, value in obj.items():
        tensor = _tensor(value)
        if tensor is None:
            raise ValueError(
                f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor; "
                "expected a state_dict or {'model': state_dict}"
            )
        _refuse_hostile_tensor(str(key), tensor, source)
        state[str(key)] = tensor
    if all(k.startswith("module.") for k in state):  # saved from a DistributedDataParallel wrapper
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state
