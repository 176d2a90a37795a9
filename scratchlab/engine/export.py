"""``scratchlab export``: a trained Mask / Faster R-CNN as a TorchScript or an ONNX file that runs without
this package.

The run's ``model_final.pth`` is read as ``scratchlab predict`` reads it (the whole detector, its config
and class names). Both files take what the PyTorch model takes in eval mode: one float RGB image
``(3, H, W)`` in [0, 1] of any size, resized inside by the run's ``input.min_size_test`` /
``max_size_test``, and give its detections in the image's pixels: boxes (N, 4) xyxy, labels (N,) (label
k is ``classes[k - 1]``), scores (N,) and for Mask R-CNN masks (N, 1, H, W) as soft [0, 1] values.

- TorchScript (``torch.jit.script``): ``torch.jit.load(FILE)([image])`` returns ``(losses, [detections])``
  as torchvision's scripted detectors do; ``classes.json`` rides along as an extra file.
- ONNX (opset 17, the TorchScript-based exporter: torch's dynamo exporter stops at the data-dependent
  number of detections): input ``image`` with dynamic height and width, outputs ``boxes``, ``labels``,
  ``scores`` (and ``masks``); the class names are in the model's metadata (``classes``).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from .predict import load_predictor

__all__ = ["EXPORT_ARCHS", "EXPORT_FORMATS", "export_model"]

EXPORT_FORMATS = ("torchscript", "onnx")
EXPORT_ARCHS = ("mask_rcnn", "faster_rcnn")
ONNX_OPSET = 17


def _tmp(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.with_name(f"{out.name}.{os.getpid()}.tmp")


def _torchscript(model: torch.nn.Module, out: Path, meta: dict[str, Any]) -> None:
    scripted = torch.jit.script(model)
    tmp = _tmp(out)
    torch.jit.save(scripted, str(tmp), _extra_files={"classes.json": json.dumps(meta)})
    os.replace(tmp, out)


def _onnx(
    model: torch.nn.Module, out: Path, meta: dict[str, Any], example: torch.Tensor, outputs: list[str]
) -> None:
    try:
        import onnx
    except ImportError as exc:
        raise ValueError("--format onnx needs the onnx package: pip install onnx onnxruntime") from exc
    tmp = _tmp(out)
    with (
        warnings.catch_warnings()
    ):  # the exporter's tracer warnings are about torchvision's code, not the user's
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            ([example],),
            str(tmp),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["image"],
            output_names=outputs,
            dynamic_axes={"image": {1: "height", 2: "width"}, **{k: {0: "detections"} for k in outputs}},
        )
    proto = onnx.load(str(tmp))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "classes", json.dumps(meta)
    onnx.save(proto, str(tmp))
    os.replace(tmp, out)


def export_model(
    run_or_weights: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str]
) -> dict[str, Any]:
    """Write the run's detector to ``out`` as ``fmt`` (``torchscript`` | ``onnx``); returns ``{"file",
    "format", "arch", "classes", "outputs"}``. Raises ValueError for an unsupported format or arch."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    p = load_predictor(run_or_weights, device="cpu")
    arch = str(p.cfg.model.arch)
    if arch not in EXPORT_ARCHS:
        raise ValueError(
            f"{run_or_weights}: model.arch {arch!r} does not export; {' and '.join(EXPORT_ARCHS)} do"
        )
    meta = {"classes": p.classes, "category_ids": p.category_ids}
    outputs = ["boxes", "labels", "scores"] + (["masks"] if arch == "mask_rcnn" else [])
    out_path = Path(out)
    if fmt == "torchscript":
        _torchscript(p.model, out_path, meta)
    else:
        size = int(p.cfg.input.min_size_test)
        example = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
        _onnx(p.model, out_path, meta, example, outputs)
    return {"file": str(out_path), "format": fmt, "arch": arch, "classes": p.classes, "outputs": outputs}
