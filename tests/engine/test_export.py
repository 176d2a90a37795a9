"""scratchlab export: TorchScript and ONNX files whose detections match the PyTorch model's.

The run directories hold narrow random-init detectors in the format `scratchlab train` writes
(model_final.pth with config, classes and category ids), their box heads keeping every detection
(score_thresh 0), so each image has detections to compare."""

from __future__ import annotations

import json

import pytest
import torch

from scratchlab.cli import main
from scratchlab.config import load_config, to_yaml
from scratchlab.engine.export import export_model
from scratchlab.engine.predict import load_predictor
from scratchlab.models import build_model
from tests.conftest import MINI, TINY

# Stated tolerance: boxes within 1e-3 px, scores and soft mask values within 1e-4, labels equal.
BOX_ATOL, VALUE_ATOL = 1e-3, 1e-4
# Sizes other than the ONNX export's example (64 x 64), one portrait, one landscape, one to be shrunk.
SIZES = [(64, 80), (72, 56), (150, 120)]


def _run_dir(tmp_path, arch: str, score_thresh: float = 0.0):
    cfg = load_config(MINI, [*TINY, f"model.arch={arch}", f"model.roi_box_head.score_thresh={score_thresh}"])
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=2)
    run = tmp_path / f"{arch}_{score_thresh}"
    run.mkdir()
    ckpt = {
        "model": model.state_dict(),
        "config": to_yaml(cfg),
        "classes": ["a", "b"],
        "category_ids": [3, 7],
    }
    torch.save(ckpt, run / "model_final.pth")
    return run


def _images():
    g = torch.Generator().manual_seed(1)
    return [torch.rand(3, h, w, generator=g) for h, w in SIZES]


def _assert_close(got: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(ref) and len(ref["boxes"]) > 0
    assert torch.equal(got["labels"], ref["labels"])
    torch.testing.assert_close(got["boxes"], ref["boxes"], atol=BOX_ATOL, rtol=0)
    torch.testing.assert_close(got["scores"], ref["scores"], atol=VALUE_ATOL, rtol=0)
    if "masks" in ref:
        torch.testing.assert_close(got["masks"], ref["masks"], atol=VALUE_ATOL, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mask_rcnn", "faster_rcnn"])
def test_torchscript_and_onnx_detections_match_pytorch(tmp_path, arch):
    import onnx
    import onnxruntime

    run = _run_dir(tmp_path, arch)
    model = load_predictor(run, device="cpu").model
    with torch.no_grad():
        refs = [model([img])[0] for img in _images()]

    ts = export_model(run, "torchscript", tmp_path / "model.pt")
    files: dict[str, str] = {"classes.json": ""}
    scripted = torch.jit.load(ts["file"], _extra_files=files)
    assert json.loads(files["classes.json"]) == {"classes": ["a", "b"], "category_ids": [3, 7]}
    with torch.no_grad():
        for img, ref in zip(_images(), refs, strict=True):
            _assert_close(scripted([img])[1][0], ref)

    ox = export_model(run, "onnx", tmp_path / "model.onnx")
    meta = {p.key: p.value for p in onnx.load(ox["file"]).metadata_props}
    assert json.loads(meta["classes"])["classes"] == ["a", "b"]
    session = onnxruntime.InferenceSession(ox["file"], providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert (
        names == ox["outputs"] == ["boxes", "labels", "scores"] + (["masks"] if arch == "mask_rcnn" else [])
    )
    for img, ref in zip(_images(), refs, strict=True):
        got = dict(zip(names, session.run(None, {"image": img.numpy()}), strict=True))
        _assert_close({k: torch.from_numpy(v) for k, v in got.items()}, ref)


@pytest.mark.slow
def test_onnx_keeps_the_number_of_detections_data_dependent(tmp_path):
    import onnxruntime

    model = load_predictor(_run_dir(tmp_path, "faster_rcnn"), device="cpu").model
    with torch.no_grad():
        top = model([_images()[0]])[0]["scores"]
    # A threshold between the first image's 5th and 6th best scores: images then keep different numbers.
    run = _run_dir(tmp_path, "faster_rcnn", float(top[4] + top[5]) / 2)
    model = load_predictor(run, device="cpu").model
    session = onnxruntime.InferenceSession(export_model(run, "onnx", tmp_path / "m.onnx")["file"])
    counts = []
    for img in _images():
        with torch.no_grad():
            ref = model([img])[0]
        got = dict(zip(["boxes", "labels", "scores"], session.run(None, {"image": img.numpy()}), strict=True))
        assert len(got["boxes"]) == len(ref["boxes"])
        if len(ref["boxes"]):
            _assert_close({k: torch.from_numpy(v) for k, v in got.items()}, ref)
        counts.append(len(ref["boxes"]))
    assert counts[0] == 5 and len(set(counts)) > 1, counts


def test_export_command_and_refusals(tmp_path, capsys):
    run = _run_dir(tmp_path, "faster_rcnn")
    assert main(["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 0
    assert (
        f"wrote {tmp_path / 'm.pt'} (torchscript, faster_rcnn, outputs boxes, labels, scores)"
        in capsys.readouterr().out
    )
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_model(run, "tflite", tmp_path / "m.tflite")
    cascade = tmp_path / "cascade"
    cascade.mkdir()
    ckpt = torch.load(run / "model_final.pth", weights_only=True)
    cfg = load_config(MINI, [*TINY, "model.arch=cascade_rcnn"])
    ckpt.update(model=build_model(cfg, num_classes=2).state_dict(), config=to_yaml(cfg))
    torch.save(ckpt, cascade / "model_final.pth")
    assert main(["export", str(cascade), "--format", "onnx", "--out", str(tmp_path / "c.onnx")]) == 2
    assert (
        "model.arch 'cascade_rcnn' does not export; mask_rcnn and faster_rcnn do" in capsys.readouterr().err
    )
    assert not (tmp_path / "c.onnx").exists()
