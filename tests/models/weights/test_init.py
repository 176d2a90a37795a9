"""model.init: loading backbone files, detector files (wrapped or not) and torchvision weights."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torchvision
from torchvision.models import resnet18

from scratchlab.models import build_backbone_body, build_model, load_init
from tests.models.weights.conftest import narrow_cfg


def _model(seed: int, num_classes: int = 3, *overrides: str):
    torch.manual_seed(seed)
    return build_model(narrow_cfg(*overrides), num_classes=num_classes)


def _same(a: dict, b: dict, keys) -> bool:
    return all(torch.equal(a[k], b[k]) for k in keys)


def test_backbone_body_state_loads_into_detector_body_with_nothing_missing():
    body = build_backbone_body(narrow_cfg())
    result = _model(0).backbone.body.load_state_dict(body.state_dict())
    assert not result.missing_keys and not result.unexpected_keys


def test_load_backbone_file_fills_body_only(tmp_path: Path):
    torch.manual_seed(1)
    body = build_backbone_body(narrow_cfg())
    path = tmp_path / "backbone.pth"
    torch.save(body.state_dict(), path)

    model = _model(0)
    fpn_before = {k: v.clone() for k, v in model.backbone.fpn.state_dict().items()}
    report = load_init(model, str(path))

    assert report["source"] == str(path) and report["loaded"] == len(body.state_dict())
    assert _same(model.backbone.body.state_dict(), body.state_dict(), body.state_dict())
    assert _same(model.backbone.fpn.state_dict(), fpn_before, fpn_before)  # untouched
    assert report["unexpected"] == [] and report["skipped_shape"] == []
    assert report["missing"] and all(not k.startswith("backbone.body.") for k in report["missing"])
    assert any(k.startswith("roi_heads.mask_head.") for k in report["missing"])


def test_build_model_applies_init_from_config(tmp_path: Path):
    torch.manual_seed(1)
    body = build_backbone_body(narrow_cfg())
    path = tmp_path / "backbone.pth"
    torch.save({"model": body.state_dict(), "iteration": 7}, path)
    model = build_model(narrow_cfg(f"model.init={path}"), num_classes=3)
    assert model.init_report["loaded"] == len(body.state_dict())
    assert _same(model.backbone.body.state_dict(), body.state_dict(), body.state_dict())


@pytest.mark.parametrize("wrapped", [False, True])
def test_load_detector_file_skips_class_dependent_shapes(tmp_path: Path, wrapped: bool):
    src = _model(1, num_classes=5).state_dict()
    path = tmp_path / "detector.pth"
    torch.save({"model": src, "iteration": 100, "optimizer": {}} if wrapped else src, path)

    model = _model(0, num_classes=3)
    report = load_init(model, str(path))

    class_dependent = {
        "roi_heads.box_predictor.cls_score.weight",
        "roi_heads.box_predictor.cls_score.bias",
        "roi_heads.box_predictor.bbox_pred.weight",
        "roi_heads.box_predictor.bbox_pred.bias",
        "roi_heads.mask_predictor.mask_fcn_logits.weight",
        "roi_heads.mask_predictor.mask_fcn_logits.bias",
    }
    assert set(report["skipped_shape"]) == class_dependent
    assert report["missing"] == [] and report["unexpected"] == []
    assert report["loaded"] == len(src) - len(class_dependent)
    dst = model.state_dict()
    assert _same(dst, src, set(src) - class_dependent)
    assert not torch.equal(
        dst["roi_heads.box_predictor.cls_score.weight"][:4],
        src["roi_heads.box_predictor.cls_score.weight"][:4],
    )


def test_detector_file_into_bare_body(tmp_path: Path):
    src = _model(1).state_dict()
    path = tmp_path / "detector.pth"
    torch.save(src, path)
    body = build_backbone_body(narrow_cfg())
    report = load_init(body, str(path))
    assert report["missing"] == [] and report["loaded"] == len(body.state_dict())
    assert any(k.startswith("roi_heads.") for k in report["unexpected"])
    assert _same(
        body.state_dict(), {k[len("backbone.body.") :]: v for k, v in src.items()}, body.state_dict()
    )


def test_unexpected_keys_reported_and_partial_backbone_refused(tmp_path: Path):
    sd = build_backbone_body(narrow_cfg()).state_dict()
    sd["fc.weight"] = torch.zeros(10, 512)
    sd["fc.bias"] = torch.zeros(10)
    path = tmp_path / "imagenet_like.pth"
    torch.save({"module." + k: v for k, v in sd.items()}, path)  # as saved from DDP
    report = load_init(_model(0), str(path))
    assert report["unexpected"] == ["fc.weight", "fc.bias"]
    assert not any(k.startswith("backbone.body.") for k in report["missing"])

    sd.pop("layer4.2.conv3.weight")
    torch.save(sd, path)
    model = _model(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(
        ValueError, match=r"imagenet_like.pth: leaves 1 ResNet body key.*layer4.2.conv3.weight"
    ):
        load_init(model, str(path))
    assert _same(model.state_dict(), before, before)  # refused before anything was loaded


def test_no_matching_key_raises_naming_the_file(tmp_path: Path):
    path = tmp_path / "other_model.pth"
    torch.save({"encoder.proj.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ValueError, match="other_model.pth: no tensor"):
        load_init(_model(0), str(path))


def test_only_shape_mismatches_also_raise(tmp_path: Path):
    path = tmp_path / "wide.pth"
    torch.save({"backbone.body.layer1.0.conv1.weight": torch.zeros(5, 5, 1, 1)}, path)
    with pytest.raises(ValueError, match="wide.pth: no tensor.*1 name matches had another shape"):
        load_init(_model(0), str(path))


def test_bad_sources_raise_clear_errors(tmp_path: Path):
    model = _model(0)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_init(model, str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="ResNet50_Weights.NOT_A_MEMBER"):
        load_init(model, "ResNet50_Weights.NOT_A_MEMBER")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth: cannot read checkpoint"):
        load_init(model, str(garbage))
    not_tensors = tmp_path / "meta.pth"
    torch.save({"conv1.weight": torch.zeros(1), "step": 3}, not_tensors)
    with pytest.raises(ValueError, match=r"meta.pth: entry 'step' is a int"):
        load_init(model, str(not_tensors))


def _no_download(*args, **kwargs):
    raise URLError("network disabled in tests")


def test_torchvision_weights_enum_from_torch_home_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)  # proves the cache is used
    weights = torchvision.models.get_weight("ResNet18_Weights.IMAGENET1K_V1")
    torch.manual_seed(3)
    ref = resnet18().state_dict()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(ref, cache / os.path.basename(weights.url))

    cfg = narrow_cfg(
        "model.backbone.depth=18",
        "model.backbone.width_mult=1.0",
        "model.norm=FrozenBN",
        "model.init=ResNet18_Weights.IMAGENET1K_V1",
    )
    model = build_model(cfg, num_classes=2)
    report = model.init_report
    assert report["source"] == "torchvision ResNet18_Weights.IMAGENET1K_V1"
    assert report["unexpected"] == ["fc.weight", "fc.bias"]  # num_batches_tracked is not reported
    body = model.backbone.body.state_dict()
    assert report["loaded"] == len(body) and _same(body, ref, body)


def test_torchvision_weights_offline_without_cache_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_download)
    with pytest.raises(ValueError, match=r"ResNet18_Weights.IMAGENET1K_V1 from .*resnet18-.*\.pth"):
        load_init(
            build_backbone_body(narrow_cfg("model.backbone.depth=18")), "ResNet18_Weights.IMAGENET1K_V1"
        )


def test_training_checkpoint_is_recognised_as_scratchlab_without_files_beside_it(tmp_path: Path):
    src = _model(1).state_dict()
    path = tmp_path / "last.pth"
    torch.save({"model": src, "iteration": 4, "config": "model: {}\n"}, path)
    model = _model(0, 3, "input.pixel_mean=[0.5,0.5,0.5]")  # not torchvision's: no convention is checked
    assert load_init(model, str(path))["format"] == "scratchlab"
