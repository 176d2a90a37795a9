"""The Swin-T body: torchvision's swin_t keys, FPN-ready stage outputs, freezing, and no weight decay on
its position tables."""

from __future__ import annotations

import torch
from torchvision.models import swin_t

from scratchlab.config import load_config
from scratchlab.engine.schedule import build_optimizer
from scratchlab.models import build_backbone_body, build_model, freeze_stages
from scratchlab.models.swin import SwinBody
from tests.conftest import ROOT, TINY

MINI = ROOT / "configs" / "mini" / "mask_rcnn_swin_t.yaml"


def test_full_swin_t_body_has_torchvision_swin_t_feature_keys():
    body = build_backbone_body(load_config(None, ["model.backbone.name=swin_t"]))
    ref = {k: v.shape for k, v in swin_t().state_dict().items() if k.startswith("features.")}
    ours = {k: v.shape for k, v in body.state_dict().items()}
    assert {k: v for k, v in ours.items() if k.startswith("features.")} == ref
    assert sorted({k.split(".")[1] for k in ours if not k.startswith("features.")}) == ["0", "1", "2", "3"]
    assert body.stage_channels == [96, 192, 384, 768]


def test_stage_outputs_have_fpn_strides():
    body = SwinBody(width_mult=0.25).eval()
    with torch.no_grad():
        out = body(torch.zeros(1, 3, 64, 96))
    assert [tuple(v.shape) for v in out.values()] == [
        (1, 24, 16, 24),
        (1, 48, 8, 12),
        (1, 96, 4, 6),
        (1, 192, 2, 3),
    ]


def test_freeze_at_freezes_patch_embedding_and_stage_1():
    body = freeze_stages(SwinBody(width_mult=0.25), 2)
    frozen = {n.split(".")[1] for n, p in body.named_parameters() if not p.requires_grad}
    assert frozen == {"0", "1"}


def test_mini_swin_mask_rcnn_trains_with_adamw_and_no_decay_on_position_tables():
    torch.manual_seed(0)
    cfg = load_config(MINI, TINY)
    model = build_model(cfg, num_classes=2).train()
    optimizer = build_optimizer(cfg, model)
    assert isinstance(optimizer, torch.optim.AdamW)
    no_decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    tables = [p for n, p in model.named_parameters() if n.endswith("relative_position_bias_table")]
    assert tables and all(id(p) in no_decay for p in tables)
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 8:40, 10:44] = 1
    target = {"boxes": torch.tensor([[10.0, 8.0, 44.0, 40.0]]), "labels": torch.tensor([1]), "masks": masks}
    losses = model([torch.rand(3, 64, 64)], [target])
    sum(losses.values()).backward()
    assert model.backbone.body.features[0][0].weight.grad is not None


def test_imagenet_swin_t_checkpoint_fills_the_detectors_body(tmp_path):
    reference = swin_t()
    path = tmp_path / "swin_t_imagenet.pth"
    torch.save(reference.state_dict(), path)  # the layout of Swin_T_Weights.IMAGENET1K_V1
    cfg = load_config(None, ["model.backbone.name=swin_t", f"model.init={path}", "model.num_classes=3"])
    model = build_model(cfg)
    report = model.init_report
    assert report["mapping"] == "add 'backbone.body.'"
    assert not [k for k in report["missing"] if k.startswith("backbone.body.features.")]
    assert torch.equal(
        model.backbone.body.features[3][0].attn.relative_position_bias_table,
        reference.features[3][0].attn.relative_position_bias_table,
    )
