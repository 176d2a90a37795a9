"""ResNet body and norm selection: torchvision key compatibility, MSRA init, GN checks, freezing."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchvision.models import resnet18, resnet50
from torchvision.ops.misc import FrozenBatchNorm2d

from scratchlab.config import load_config
from scratchlab.models import ResNetBody, build_backbone_body, freeze_stages, norm_factory, resolve_part_norm
from scratchlab.models.norm import SyncBatchNorm


def _cfg(*overrides: str):
    return load_config(None, list(overrides))


def _shapes(sd: dict) -> dict:
    return {k: tuple(v.shape) for k, v in sd.items()}


def test_width_1_body_matches_torchvision_resnet50_keys_and_shapes():
    body = build_backbone_body(_cfg("model.norm=BN"))
    ref = {k: v for k, v in _shapes(resnet50().state_dict()).items() if not k.startswith("fc.")}
    assert _shapes(body.state_dict()) == ref
    assert body.out_channels == 2048 and body.stage_channels == [256, 512, 1024, 2048]


def test_gn_body_has_resnet50_parameters_and_no_batchnorm():
    body = build_backbone_body(_cfg())  # default: GN, 32 groups
    ref = {k: tuple(p.shape) for k, p in resnet50().named_parameters() if not k.startswith("fc.")}
    assert {k: tuple(p.shape) for k, p in body.named_parameters()} == ref
    norms = [m for m in body.modules() if isinstance(m, (nn.GroupNorm, nn.modules.batchnorm._BatchNorm))]
    assert norms and all(isinstance(m, nn.GroupNorm) and m.num_groups == 32 for m in norms)


def test_scratch_init_statistics():
    torch.manual_seed(0)
    body = build_backbone_body(_cfg())
    checked = 0
    for name, m in body.named_modules():
        if isinstance(m, nn.Conv2d) and m.weight.numel() >= 500_000:  # large: sample std is precise
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            expected = math.sqrt(2.0 / fan_out)
            assert m.weight.std().item() == pytest.approx(expected, rel=0.03), name
            assert abs(m.weight.mean().item()) < 0.05 * expected, name
            checked += 1
        if isinstance(m, nn.GroupNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0), name
    assert checked >= 10


def test_width_mult_scales_stage_widths_and_forward_strides():
    body = build_backbone_body(_cfg("model.backbone.width_mult=0.25", "model.gn_groups=8"))
    assert body.stage_channels == [64, 128, 256, 512]
    assert body.layer1[0].conv1.out_channels == 16 and body.conv1.out_channels == 64
    out = body(torch.rand(2, 3, 64, 96))
    assert list(out) == ["0", "1", "2", "3"]
    for i, (feat, ch) in enumerate(zip(out.values(), body.stage_channels, strict=True)):
        assert feat.shape == (2, ch, 64 // 4 // 2**i, 96 // 4 // 2**i)


def test_basic_block_depths_match_torchvision():
    body = build_backbone_body(_cfg("model.norm=BN", "model.backbone.depth=18"))
    ref = {k: v for k, v in _shapes(resnet18().state_dict()).items() if not k.startswith("fc.")}
    assert _shapes(body.state_dict()) == ref
    assert body.out_channels == 512


def test_bad_depth_and_width_raise():
    with pytest.raises(ValueError, match="depth"):
        build_backbone_body(_cfg("model.backbone.depth=42"))
    with pytest.raises(ValueError, match="width_mult"):
        ResNetBody(50, 0.0)


def test_gn_channels_not_divisible_raises_clear_error():
    with pytest.raises(ValueError, match=r"backbone.*not divisible by 24 groups"):
        build_backbone_body(_cfg("model.gn_groups=24"))


def test_norm_factory_names():
    assert norm_factory("") is None
    assert isinstance(norm_factory("GN", 4)(8), nn.GroupNorm)
    assert type(norm_factory("BN")(8)) is nn.BatchNorm2d
    assert type(norm_factory("SyncBN")(8)) is SyncBatchNorm
    assert type(norm_factory("FrozenBN")(8)) is FrozenBatchNorm2d
    with pytest.raises(ValueError, match=r"fpn: unknown norm 'LN'"):
        norm_factory("LN", where="fpn")


def test_part_norm_inherits_except_frozenbn():
    assert resolve_part_norm(None, "GN") == "GN"
    assert resolve_part_norm(None, "SyncBN") == "SyncBN"
    assert resolve_part_norm(None, "FrozenBN") == ""  # random FrozenBN = a fixed identity: no norm
    assert resolve_part_norm("", "GN") == ""
    assert resolve_part_norm("GN", "FrozenBN") == "GN"


def test_freeze_at_2_freezes_stem_and_res2_only():
    body = build_backbone_body(_cfg("model.backbone.width_mult=0.25", "model.gn_groups=8"))
    freeze_stages(body, 2)
    for name, p in body.named_parameters():
        frozen = name.startswith(("conv1.", "bn1.", "layer1."))
        assert p.requires_grad is not frozen, name


def test_freeze_converts_batchnorm_in_frozen_stages_keeping_values():
    body = build_backbone_body(_cfg("model.norm=BN", "model.backbone.width_mult=0.25"))
    with torch.no_grad():
        body.bn1.running_mean.uniform_()
        body.bn1.weight.uniform_()
    before = body.bn1.running_mean.clone(), body.bn1.weight.clone()
    freeze_stages(body, 1)
    assert isinstance(body.bn1, FrozenBatchNorm2d)
    assert torch.equal(body.bn1.running_mean, before[0]) and torch.equal(body.bn1.weight, before[1])
    assert type(body.layer1[0].bn1) is nn.BatchNorm2d  # res2 is not frozen at freeze_at=1
    assert body.conv1.weight.requires_grad is False and body.layer1[0].conv1.weight.requires_grad
    with pytest.raises(ValueError, match="freeze_at"):
        freeze_stages(body, 6)


@pytest.mark.parametrize(("depth", "last"), [(50, "bn3"), (18, "bn2")])
def test_zero_init_residual_zeroes_each_blocks_last_gn_gamma(depth, last):
    cfg = load_config(
        None, [f"model.backbone.depth={depth}", "model.backbone.width_mult=0.25", "model.gn_groups=4"]
    )
    body = build_backbone_body(cfg, zero_init_residual=True)
    blocks = [b for layer in (body.layer1, body.layer2, body.layer3, body.layer4) for b in layer]
    for block in blocks:
        norm = getattr(block, last)
        assert isinstance(norm, nn.GroupNorm) and torch.count_nonzero(norm.weight) == 0
    assert torch.all(body.bn1.weight == 1)  # only the last norm of each block
    default = build_backbone_body(cfg)
    assert all(torch.all(getattr(b, last).weight == 1) for layer in (default.layer1,) for b in layer)


def test_stride_in_1x1_moves_each_stage_stride_and_keeps_the_output_size():
    body = build_backbone_body(
        _cfg("model.norm=BN", "model.backbone.width_mult=0.25", "model.backbone.stride_in_1x1=true")
    )
    for layer in (body.layer2, body.layer3, body.layer4):
        assert layer[0].conv1.stride == (2, 2) and layer[0].conv2.stride == (1, 1)
    out = body.eval()(torch.rand(1, 3, 64, 64))
    assert [tuple(v.shape[-2:]) for v in out.values()] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    with pytest.raises(ValueError, match="bottleneck"):
        build_backbone_body(_cfg("model.backbone.depth=18", "model.backbone.stride_in_1x1=true"))


def test_resnext101_32x8d_body_matches_torchvision_keys_and_shapes():
    from torchvision.models import resnext101_32x8d

    cfg = load_config(
        None,
        [
            "model.backbone.depth=101",
            "model.backbone.groups=32",
            "model.backbone.width_per_group=8",
            "model.norm=BN",
        ],
    )
    ours = {k: v.shape for k, v in build_backbone_body(cfg).state_dict().items()}
    ref = {k: v.shape for k, v in resnext101_32x8d().state_dict().items() if not k.startswith("fc.")}
    assert ours == ref


def test_x152_32x8d_gn_body_has_the_papers_block_counts_and_grouped_convs():
    cfg = load_config(
        None, ["model.backbone.depth=152", "model.backbone.groups=32", "model.backbone.width_per_group=8"]
    )
    body = build_backbone_body(cfg)
    assert [len(s) for s in (body.layer1, body.layer2, body.layer3, body.layer4)] == [3, 8, 36, 3]
    conv2 = body.layer1[0].conv2
    assert (conv2.groups, conv2.in_channels) == (32, 256)  # 32 groups x 8 channels at res2
    assert body.stage_channels == [256, 512, 1024, 2048]
    assert not [m for m in body.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_resnext_needs_a_bottleneck_depth():
    with pytest.raises(ValueError, match="Bottleneck"):
        build_backbone_body(
            load_config(
                None,
                ["model.backbone.depth=18", "model.backbone.groups=32", "model.backbone.width_per_group=8"],
            )
        )
