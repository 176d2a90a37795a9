"""Each weights format, made here from a narrow ResNet-50 in the format's own names, lands tensor for
tensor where it should; folded/flipped tensors compute what the original network computed; wrong or
partial files are refused naming the keys."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch

from scratchlab.config import load_config
from scratchlab.models import ResNetBody, build_backbone_body, build_model, load_init
from scratchlab.models.weights.read import read_pickle
from tests.models.weights.conftest import narrow_cfg
from tests.models.weights.formats import bgr, detector_to_detectron2, to_caffe2, to_detectron2, write_pickle

# Detectron's Caffe2 convention in scratchlab's units (RGB in [0, 1]); MSRA BN files also stride in the 1x1.
C2_INPUT = ["input.pixel_mean=[0.481458,0.454692,0.403844]", "input.pixel_std=[0.003922,0.003922,0.003922]"]
MSRA = [*C2_INPUT, "model.backbone.stride_in_1x1=true", "model.norm=FrozenBN"]


def _random_body(norm: str, seed: int = 0, stride_in_1x1: bool = False) -> ResNetBody:
    """A body with random weights *and* random norm statistics/affines, so that mix-ups show."""
    torch.manual_seed(seed)
    body = build_backbone_body(
        narrow_cfg(f"model.norm={norm}", f"model.backbone.stride_in_1x1={stride_in_1x1}")
    )
    with torch.no_grad():
        for name, t in body.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif name.endswith(("running_mean", "bias")) or (t.ndim == 1 and t.is_floating_point()):
                t.normal_(0, 0.5) if not name.endswith("weight") else t.uniform_(0.5, 1.5)
    return body.eval()


def _body_of(model) -> dict:
    return {
        k[len("backbone.body.") :]: v for k, v in model.state_dict().items() if k.startswith("backbone.body.")
    }


def _assert_same(got: dict, want: dict, keys=None) -> None:
    for k in keys or want:
        if k.endswith("num_batches_tracked"):
            continue
        assert torch.equal(got[k], want[k]), k


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal up to float32 rounding through 50 layers (a folding or channel mistake is off by O(1))."""
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * float(want.abs().max()) + 1e-6)


# ------------------------------------------------------------------------------------------ Caffe2


def test_caffe2_gn_pkl_lands_in_gn_detector(tmp_path: Path):
    src = _random_body("GN").state_dict()
    blobs = to_caffe2(bgr(src), "gn")
    blobs["fc1000_w"] = torch.zeros(10, 512).numpy()
    path = write_pickle({"blobs": blobs}, tmp_path / "R-50-GN.pkl")

    model = build_model(narrow_cfg("model.norm=GN", *C2_INPUT), num_classes=3)
    report = load_init(model, str(path))
    assert report["format"] == "caffe2" and report["unexpected"] == ["fc1000_w"]
    _assert_same(_body_of(model), src)  # conv1 flipped back to RGB, every other tensor as it was


def test_caffe2_gn_pkl_without_caffe2_input_settings_is_refused_with_what_to_set(tmp_path: Path):
    path = write_pickle({"blobs": to_caffe2(_random_body("GN").state_dict(), "gn")}, tmp_path / "R-50-GN.pkl")
    with pytest.raises(
        ValueError,
        match=r"R-50-GN.pkl: trained as Caffe2 FAIR.*input.pixel_mean.*Set: "
        r"input.pixel_mean=\[0.481458,0.454692,0.403844\]",
    ):
        load_init(build_model(narrow_cfg("model.norm=GN"), num_classes=3), str(path))


def test_caffe2_msra_bn_pkl_frozen_bn_computes_the_original_network(tmp_path: Path):
    ref = _random_body("BN", seed=1, stride_in_1x1=True)  # "the Caffe2 network": BN, stride in the 1x1, BGR
    path = write_pickle({"blobs": to_caffe2(ref.state_dict(), "bn")}, tmp_path / "R-50.pkl")
    model = build_model(narrow_cfg(*MSRA), num_classes=3)
    report = load_init(model, str(path))
    assert report["missing"] and not any(k.startswith("backbone.body.") for k in report["missing"])
    body = model.backbone.body.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want, got = ref(x.flip(1)), body(x)  # the file's network saw BGR; ours sees RGB
    for level in want:
        _close(got[level], want[level])


def test_caffe2_msra_pkl_refuses_stride_in_3x3(tmp_path: Path):
    path = write_pickle({"blobs": to_caffe2(_random_body("BN").state_dict(), "bn")}, tmp_path / "R-50.pkl")
    cfg = narrow_cfg(*C2_INPUT, "model.norm=FrozenBN")
    with pytest.raises(ValueError, match=r"stride_in_1x1 is false, the weights need true"):
        load_init(build_model(cfg, num_classes=3), str(path))


def test_bn_weights_into_gn_model_refused(tmp_path: Path):
    path = write_pickle({"blobs": to_caffe2(_random_body("BN").state_dict(), "bn")}, tmp_path / "R-50.pkl")
    with pytest.raises(ValueError, match=r"R-50.pkl: holds BatchNorm weights .* model.norm=GN"):
        load_init(build_model(narrow_cfg("model.norm=GN", *C2_INPUT), num_classes=3), str(path))


def test_pickle_with_code_is_refused(tmp_path: Path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"blobs": {"conv1_w": Exploit()}}))
    with pytest.raises(ValueError, match=r"evil.pkl: cannot read pickle: refusing to load builtins.print"):
        read_pickle(path)


# -------------------------------------------------------------------------------------------- timm


def test_timm_gn_checkpoint_uses_ema_weights(tmp_path: Path):
    ema, raw = _random_body("GN", seed=2).state_dict(), _random_body("GN", seed=3).state_dict()
    fc = {"fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)}
    path = tmp_path / "resnet50_gn.pth.tar"
    torch.save(
        {"arch": "resnet50_gn", "epoch": 3, "state_dict": {**raw, **fc}, "state_dict_ema": {**ema, **fc}},
        path,
    )
    model = build_model(narrow_cfg("model.norm=GN"), num_classes=3)
    report = load_init(model, str(path))
    assert report["format"] == "timm" and report["unexpected"] == ["fc.weight", "fc.bias"]
    assert "timm checkpoint (resnet50_gn): using its state_dict_ema" in report["notes"]
    _assert_same(_body_of(model), ema)


def test_timm_gn_weights_into_bn_model_refused(tmp_path: Path):
    path = tmp_path / "resnet50_gn.pth"
    torch.save(_random_body("GN").state_dict(), path)
    with pytest.raises(ValueError, match=r"resnet50_gn.pth: holds GroupNorm weights.*Set model.norm=GN"):
        load_init(build_model(narrow_cfg("model.norm=FrozenBN"), num_classes=3), str(path))


def test_timm_deep_stem_variant_refused_naming_keys(tmp_path: Path):
    sd = _random_body("BN").state_dict()
    sd = {("conv1.0.weight" if k == "conv1.weight" else k): v for k, v in sd.items()}
    path = tmp_path / "resnet50d.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError, match=r"resnet50d.pth: a timm ResNet variant.*deep stem.*conv1.0.weight"):
        load_init(build_model(narrow_cfg("model.norm=FrozenBN"), num_classes=3), str(path))


# ------------------------------------------------------------------------------------ torchvision


def test_torchvision_bn_file_into_frozen_bn_matches_bn_inference(tmp_path: Path):
    ref = _random_body("BN", seed=4)
    path = tmp_path / "resnet50_narrow.pth"
    torch.save(ref.state_dict(), path)
    model = build_model(narrow_cfg("model.norm=FrozenBN"), num_classes=3)
    load_init(model, str(path))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want, got = ref(x), model.backbone.body.eval()(x)
    for level in want:  # FrozenBN's weight / sqrt(var + eps) with torchvision BN's eps: the same numbers
        _close(got[level], want[level])


def test_shape_mismatch_is_refused_naming_keys(tmp_path: Path):
    wide = build_backbone_body(
        narrow_cfg("model.backbone.width_mult=0.5", "model.norm=FrozenBN")
    ).state_dict()
    path = tmp_path / "wider.pth"
    torch.save(wide, path)
    with pytest.raises(
        ValueError, match=r"wider.pth: \d+ tensor\(s\) have another shape.*layer1.0.conv1.weight"
    ):
        load_init(build_model(narrow_cfg("model.norm=FrozenBN"), num_classes=3), str(path))


# ------------------------------------------------------------------------------------- Detectron2


def test_detectron2_zoo_pkl_backbone_lands_in_body(tmp_path: Path):
    ref = _random_body("BN", seed=5, stride_in_1x1=True)
    model_sd = {k: v.numpy() for k, v in to_detectron2(bgr(ref.state_dict())).items()}
    path = write_pickle(
        {"model": model_sd, "__author__": "Detectron2 Model Zoo"}, tmp_path / "model_final_abc.pkl"
    )
    model = build_model(narrow_cfg(*MSRA), num_classes=3)
    report = load_init(model, str(path))
    assert report["format"] == "detectron2" and report["unexpected"] == []
    _assert_same(_body_of(model), ref.state_dict())


def test_detectron2_pth_backbone_names_without_prefix(tmp_path: Path):
    src = _random_body("GN", seed=6).state_dict()
    path = tmp_path / "d2_backbone.pth"
    torch.save({"model": to_detectron2(bgr(src), prefix=""), "iteration": 10}, path)
    model = build_model(narrow_cfg("model.norm=GN", *C2_INPUT), num_classes=3)
    assert load_init(model, str(path))["format"] == "detectron2"
    _assert_same(_body_of(model), src)


def test_detectron2_partial_backbone_refused(tmp_path: Path):
    sd = to_detectron2(bgr(_random_body("GN").state_dict()))
    sd.pop("backbone.bottom_up.res5.2.conv3.norm.weight")
    path = tmp_path / "partial.pth"
    torch.save({"model": sd}, path)
    with pytest.raises(ValueError, match=r"partial.pth: leaves 1 ResNet body key.*layer4.2.bn3.weight"):
        load_init(build_model(narrow_cfg("model.norm=GN", *C2_INPUT), num_classes=3), str(path))


def test_detectron2_whole_detector_lands_everywhere(tmp_path: Path):
    torch.manual_seed(7)
    src = build_model(narrow_cfg("model.norm=GN", *C2_INPUT), num_classes=3).state_dict()
    for key in ("roi_heads.box_predictor.bbox_pred", "roi_heads.mask_predictor.mask_fcn_logits"):
        rows = 4 if "bbox" in key else 1  # Detectron2 has no background rows: theirs load as zeros
        src[f"{key}.weight"][:rows] = 0
        src[f"{key}.bias"][:rows] = 0
    path = tmp_path / "model_final_d2.pth"
    torch.save({"model": detector_to_detectron2(src), "iteration": 90000}, path)

    torch.manual_seed(8)
    model = build_model(narrow_cfg("model.norm=GN", *C2_INPUT), num_classes=3)
    report = load_init(model, str(path))
    assert report["missing"] == [] and report["unexpected"] == [] and report["skipped_shape"] == []
    _assert_same(model.state_dict(), src)


def test_torchvision_v1_detector_file_with_legacy_names_loads_whole(tmp_path: Path):
    """torchvision's released maskrcnn_resnet50_fpn COCO_V1 file predates the module renames (FPN, RPN and
    mask-head keys) and uses the TwoMLPHead box head: every tensor must still find its place."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(9)
    src = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict()
    legacy = {}
    for key, value in src.items():
        key = re.sub(r"^(backbone\.fpn\.(inner|layer)_blocks\.\d)\.0\.", r"\1.", key)
        key = key.replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        key = re.sub(
            r"^roi_heads\.mask_head\.(\d)\.0\.",
            lambda m: f"roi_heads.mask_head.mask_fcn{int(m.group(1)) + 1}.",
            key,
        )
        legacy[key] = value
    assert "roi_heads.mask_head.mask_fcn1.weight" in legacy and "backbone.fpn.inner_blocks.0.weight" in legacy
    path = tmp_path / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    torch.save(legacy, path)
    cfg = load_config(
        None, ["model.norm=FrozenBN", "model.roi_box_head.num_conv=0", "model.roi_box_head.num_fc=2"]
    )
    model = build_model(cfg, num_classes=90)
    report = load_init(model, str(path))
    assert report["missing"] == [] and report["unexpected"] == [] and report["skipped_shape"] == []
    got = model.state_dict()
    assert torch.equal(got["roi_heads.box_head.3.weight"], src["roi_heads.box_head.fc7.weight"])
    _assert_same(got, {k: v for k, v in src.items() if "box_head" not in k})


# ------------------------------------------------------------------------------------- hostile tensors


def test_a_1d_caffe2_conv1_is_refused_naming_it(tmp_path: Path):
    import numpy as np

    blobs = to_caffe2(_random_body("BN").state_dict(), "bn")
    blobs["conv1_w"] = np.zeros(5, np.float32)
    path = write_pickle({"blobs": blobs}, tmp_path / "R-50.pkl")
    with pytest.raises(ValueError, match=r"R-50.pkl: conv1_w is 5, expected a 4-D convolution weight"):
        load_init(build_model(narrow_cfg(*C2_INPUT, "model.norm=FrozenBN"), num_classes=3), str(path))


@pytest.mark.parametrize("kind", ["stride-0 view", "over budget"])
def test_a_tensor_declaring_terabytes_is_refused_before_it_is_copied(tmp_path: Path, kind):
    state = build_model(narrow_cfg(), num_classes=3).state_dict()
    if kind == "stride-0 view":
        state["backbone.body.conv1.weight"] = torch.zeros(1).as_strided((64, 3, 7, 7), (0, 0, 0, 0))
        match = r"declares 64x3x7x7 over a storage of 4 bytes"
    else:
        state["backbone.body.conv1.weight"] = torch.zeros(1).as_strided((64, 3, 100000, 100000), (0, 0, 0, 0))
        match = r"declares 64x3x100000x100000 \(7152\.6 GiB\), over the 2 GiB"
    path = tmp_path / "hostile.pth"
    torch.save({"model": state}, path)
    with pytest.raises(ValueError, match=r"hostile.pth: entry 'backbone.body.conv1.weight' " + match):
        load_init(build_model(narrow_cfg(), num_classes=3), str(path))
