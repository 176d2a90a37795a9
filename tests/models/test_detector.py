"""Detector construction from the config: GN-all structure, norm choices, and tiny forward passes."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import resnet101
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.ops.misc import FrozenBatchNorm2d

from scratchlab.config import load_config
from scratchlab.models import build_model
from scratchlab.models.norm import SyncBatchNorm

BN_TYPES = (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm2d)
TINY = [
    "model.backbone.width_mult=0.25",
    "model.gn_groups=8",
    "model.fpn.channels=32",
    "model.roi_box_head.conv_dim=32",
    "model.roi_box_head.fc_dim=64",
    "model.roi_box_head.batch_size_per_image=32",
    "model.roi_mask_head.conv_dim=32",
    "model.rpn.anchor_sizes=[8,16,32,64,128]",
    "model.rpn.pre_nms_top_n_train=200",
    "model.rpn.post_nms_top_n_train=100",
    "model.rpn.pre_nms_top_n_test=100",
    "model.rpn.post_nms_top_n_test=50",
    "input.min_size_test=96",
    "input.max_size_test=160",
]


def _tiny(*overrides: str):
    return load_config(None, TINY + list(overrides))


def _types(module: nn.Module) -> set[type]:
    return {type(m) for m in module.modules()}


@pytest.fixture(scope="module")
def full_gn_all():
    """The full-size default recipe: R50-FPN GN-all Mask R-CNN (built only; a forward is too slow)."""
    return build_model(load_config(None), num_classes=80)


def test_full_gn_all_has_no_batchnorm_anywhere(full_gn_all):
    assert isinstance(full_gn_all, MaskRCNN)
    assert not [n for n, m in full_gn_all.named_modules() if isinstance(m, BN_TYPES)]


def test_full_gn_all_has_groupnorm_in_all_four_parts(full_gn_all):
    heads = full_gn_all.roi_heads
    for part in (full_gn_all.backbone.body, full_gn_all.backbone.fpn, heads.box_head, heads.mask_head):
        gns = [m for m in part.modules() if isinstance(m, nn.GroupNorm)]
        assert gns and all(m.num_groups == 32 for m in gns)
    assert nn.GroupNorm not in _types(full_gn_all.rpn)  # RPN head without norm, as in Detectron2


def test_full_gn_all_head_shapes_and_settings(full_gn_all):
    heads = full_gn_all.roi_heads
    box_convs = [m for m in heads.box_head.modules() if isinstance(m, nn.Conv2d)]
    box_fcs = [m for m in heads.box_head.modules() if isinstance(m, nn.Linear)]
    assert len(box_convs) == 4 and all(c.out_channels == 256 for c in box_convs)
    assert [fc.out_features for fc in box_fcs] == [1024]  # 4conv1fc
    assert len([m for m in heads.mask_head.modules() if isinstance(m, nn.Conv2d)]) == 4
    assert heads.box_predictor.cls_score.out_features == 81  # 80 + background
    assert heads.mask_predictor.mask_fcn_logits.out_channels == 81
    assert heads.fg_bg_sampler.batch_size_per_image == 512 and heads.detections_per_img == 100
    gen = full_gn_all.rpn.anchor_generator
    assert gen.sizes == ((32,), (64,), (128,), (256,), (512,)) and gen.num_anchors_per_location() == [3] * 5
    assert full_gn_all.rpn._pre_nms_top_n == {"training": 2000, "testing": 1000}
    t = full_gn_all.transform
    assert t.min_size == (800,) and t.max_size == 1333 and t.size_divisible == 32
    assert t.image_mean == [0.485, 0.456, 0.406]
    assert full_gn_all.init_report["source"] == "random"


def test_r101_body_has_torchvision_resnet101_keys():
    model = build_model(load_config(None, ["model.backbone.depth=101", "model.norm=BN"]), num_classes=2)
    ref = {k: tuple(v.shape) for k, v in resnet101().state_dict().items() if not k.startswith("fc.")}
    assert {k: tuple(v.shape) for k, v in model.backbone.body.state_dict().items()} == ref


@pytest.mark.parametrize(
    ("norm", "backbone_type", "head_type"),
    [
        ("FrozenBN", FrozenBatchNorm2d, None),  # FPN/heads inherit "no norm" (see resolve_part_norm)
        ("BN", nn.BatchNorm2d, nn.BatchNorm2d),
        ("SyncBN", SyncBatchNorm, SyncBatchNorm),
        ("GN", nn.GroupNorm, nn.GroupNorm),
    ],
)
def test_norm_choice_reaches_each_part(norm, backbone_type, head_type):
    model = build_model(_tiny(f"model.norm={norm}"), num_classes=3)
    norm_types = {nn.GroupNorm, nn.BatchNorm2d, SyncBatchNorm, FrozenBatchNorm2d}
    assert _types(model.backbone.body) & norm_types == {backbone_type}
    heads = model.roi_heads
    for part in (model.backbone.fpn, heads.box_head, heads.mask_head):
        assert _types(part) & norm_types == ({head_type} if head_type else set())
        if head_type is None:  # without a norm the convs need their bias back
            assert all(m.bias is not None for m in part.modules() if isinstance(m, nn.Conv2d))


def test_part_norm_overrides():
    model = build_model(
        _tiny("model.norm=FrozenBN", "model.fpn.norm=GN", "model.roi_mask_head.norm=''"), num_classes=3
    )
    assert nn.GroupNorm in _types(model.backbone.fpn)
    assert nn.GroupNorm not in _types(model.roi_heads.box_head)
    assert not _types(model.roi_heads.mask_head) & {nn.GroupNorm, FrozenBatchNorm2d}


def test_freeze_at_2_in_detector_freezes_stem_and_res2_only():
    model = build_model(_tiny("model.backbone.freeze_at=2"), num_classes=3)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    prefixes = ("backbone.body.conv1.", "backbone.body.bn1.", "backbone.body.layer1.")
    assert frozen and frozen == {n for n, _ in model.named_parameters() if n.startswith(prefixes)}


def test_faster_rcnn_and_num_classes_from_config():
    model = build_model(_tiny("model.arch=faster_rcnn", "model.num_classes=5"))
    assert isinstance(model, FasterRCNN) and not isinstance(model, MaskRCNN)
    assert model.roi_heads.box_predictor.cls_score.out_features == 6
    assert (
        build_model(
            _tiny("model.num_classes=5"), num_classes=2
        ).roi_heads.box_predictor.cls_score.out_features
        == 3
    )


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ([], "number of classes unknown"),
        (["model.arch=retinanet", "model.num_classes=1"], "model.arch"),
        (["model.rpn.anchor_sizes=[32,64]", "model.num_classes=1"], "anchor_sizes"),
        (["model.fpn.channels=36", "model.num_classes=1"], r"model.fpn .*36 channels"),
    ],
)
def test_bad_config_raises_clear_error(overrides, match):
    with pytest.raises(ValueError, match=match):
        build_model(_tiny(*overrides))


def _batch():
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 48)]
    targets = []
    for img in images:
        h, w = img.shape[1:]
        masks = torch.zeros(2, h, w, dtype=torch.uint8)
        masks[0, 6:40, 4:30] = 1
        masks[1, 10:50, 10:40] = 1
        boxes = torch.tensor([[4.0, 6.0, 30.0, 40.0], [10.0, 10.0, 40.0, 50.0]])
        targets.append({"boxes": boxes, "labels": torch.tensor([1, 2]), "masks": masks})
    return images, targets


def test_tiny_train_step_and_eval_coordinates():
    torch.manual_seed(0)
    model = build_model(_tiny("model.roi_box_head.score_thresh=0.0"), num_classes=3)
    seen = []
    model.backbone.register_forward_pre_hook(lambda mod, args: seen.append(tuple(args[0].shape)))
    images, targets = _batch()

    model.train()
    losses = model(images, targets)
    assert set(losses) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_mask",
        "loss_objectness",
        "loss_rpn_box_reg",
    }
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    gn = model.backbone.body.layer1[0].bn1
    assert isinstance(gn, nn.GroupNorm) and gn.weight.grad is not None and gn.weight.grad.abs().sum() > 0
    assert seen[-1] == (2, 3, 64, 64)  # not resized: just padded to the batch max (divisible by 32)

    model.eval()
    with torch.no_grad():
        out = model(images)
    assert seen[-1] == (2, 3, 128, 96)  # resized to short side 96 (64x48 -> 128x96), padded
    for img, pred in zip(images, out, strict=True):
        h, w = img.shape[1:]
        assert len(pred["boxes"]) > 0
        assert pred["masks"].shape[-2:] == (h, w)  # pasted into the original image
        # Within the original image, yet spanning most of it: boxes were mapped back from the 1.5-2x
        # larger network input, where many of them reach beyond the original width/height.
        assert float(pred["boxes"][:, 2].max()) <= w and float(pred["boxes"][:, 3].max()) <= h
        assert float(pred["boxes"][:, 2].max()) > 0.75 * w and float(pred["boxes"].min()) >= 0


@pytest.mark.parametrize("arch", ["mask_rcnn", "keypoint_rcnn"])
def test_roi_poolers_use_the_fpn_strides_whatever_the_first_batch(arch):
    """P2-P5 are pooled at 1/4..1/32 from the start. torchvision infers the scales at the first call instead:
    an image 67 px high, padded to 96, made it round P2's to 1/2 for the rest of the run."""
    model = build_model(_tiny(f"model.arch={arch}", "model.roi_keypoint_head.num_keypoints=3"), num_classes=3)
    heads = model.roi_heads
    pools = [heads.box_roi_pool, heads.mask_roi_pool if arch == "mask_rcnn" else heads.keypoint_roi_pool]
    x = {name: torch.rand(1, 4, 96 // 2**k, 96 // 2**k) for name, k in zip("0123", range(2, 6), strict=True)}
    for pool in pools:
        pool(x, [torch.tensor([[0.0, 0.0, 60.0, 60.0]])], [(67, 64)])
        assert pool.scales == [1 / 4, 1 / 8, 1 / 16, 1 / 32]
        assert (pool.map_levels.k_min, pool.map_levels.k_max) == (2, 5)


def test_anchors_stay_exact_after_a_bfloat16_call():
    """A bfloat16 (AMP) forward must not leave its rounded anchors to the float32 calls after it: torchvision
    keeps them, so 283 px (size 400, aspect 0.5) became 284 for the rest of the run's life."""
    from torchvision.models.detection.image_list import ImageList

    model = build_model(_tiny("model.rpn.anchor_sizes=[32,64,128,256,400]"), num_classes=3)
    generator = model.rpn.anchor_generator
    images = ImageList(torch.zeros(1, 3, 128, 128), [(128, 128)])
    features = [torch.zeros(1, 4, 128 // 2**k, 128 // 2**k) for k in range(2, 7)]
    want = generator(images, features)
    assert 283.0 in want[0].abs()  # a width bfloat16 cannot hold
    generator(images, [f.bfloat16() for f in features])
    got = generator(images, features)
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize(
    "head",
    [
        ["model.roi_box_head.num_conv=4", "model.roi_box_head.num_fc=1"],
        ["model.roi_box_head.num_conv=0", "model.roi_box_head.num_fc=2"],
    ],
)
def test_box_head_fcs_are_xavier_and_mask_deconv_bias_zero(head):
    # Caffe2 XavierFill / Detectron2 c2_xavier_fill: U(-sqrt(3 / fan_in), sqrt(3 / fan_in)), bias 0.
    torch.manual_seed(0)
    model = build_model(_tiny(*head), num_classes=3)
    fcs = [m for m in model.roi_heads.box_head.modules() if isinstance(m, nn.Linear)]
    assert len(fcs) == int(head[1][-1])
    for fc in fcs:
        bound, w = (3 / fc.in_features) ** 0.5, fc.weight.detach()
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
        assert float(w.std()) == pytest.approx(bound / 3**0.5, rel=0.05)  # uniform: std = bound / sqrt(3)
        assert torch.count_nonzero(fc.bias) == 0
    assert torch.count_nonzero(model.roi_heads.mask_predictor.conv5_mask.bias) == 0


@pytest.mark.parametrize(
    "overrides, label",
    [
        ([], "Mask R-CNN R50-FPN"),
        (
            [
                "model.arch=cascade_mask_rcnn",
                "model.backbone.depth=152",
                "model.backbone.groups=32",
                "model.backbone.width_per_group=8",
            ],
            "Cascade Mask R-CNN X152-32x8d-FPN",
        ),
        (["model.arch=keypoint_rcnn", "model.backbone.depth=101"], "Keypoint R-CNN R101-FPN"),
        (["model.backbone.name=swin_t"], "Mask R-CNN Swin-T-FPN"),
    ],
)
def test_model_label_names_arch_and_backbone(overrides, label):
    from scratchlab.models import model_label

    assert model_label(load_config(None, overrides)) == label
