"""Cascade (Mask) R-CNN: each stage labels at its own, rising IoU, uses its own box coder and loss weight,
and the whole model trains and predicts in torchvision's formats."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scratchlab.config import load_config
from scratchlab.models import build_model
from scratchlab.models.cascade import CascadeRoIHeads, switch_cascade
from tests.conftest import ROOT, TINY

MINI = ROOT / "configs" / "mini" / "cascade_mask_rcnn_gn_scratch.yaml"


def _model(*overrides: str):
    torch.manual_seed(0)
    return build_model(load_config(MINI, [*TINY, *overrides]), num_classes=2)


def test_stages_label_at_rising_iou_thresholds():
    heads = _model().roi_heads
    assert isinstance(heads, CascadeRoIHeads) and heads.num_stages == 3
    gt = [{"boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0]]), "labels": torch.tensor([2])}]
    # IoU with the ground truth is h / 100: 0.55, 0.65, 0.75.
    proposals = [torch.tensor([[0.0, 0.0, 100.0, h] for h in (55.0, 65.0, 75.0)])]
    labels = [heads.label_proposals(t, proposals, gt)[1][0].tolist() for t in range(3)]
    assert labels == [[2, 2, 2], [0, 2, 2], [0, 0, 2]]


def test_each_stage_has_its_own_head_coder_and_agnostic_predictor():
    heads = _model().roi_heads
    assert [c.weights for c in heads.stage_coders] == [(10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15)]
    assert heads.stage_loss_weights == [1.0, 0.5, 0.25]
    stages = [heads.stage(t) for t in range(3)]
    assert len({id(h) for h, _ in stages}) == 3
    assert all(p.bbox_pred.out_features == 4 and p.cls_score.out_features == 3 for _, p in stages)
    for head, _ in stages:
        assert any(isinstance(m, nn.GroupNorm) for m in head.modules())


def _batch():
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 64, 64, generator=g) for _ in range(2)]
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 10:40, 12:50] = 1
    targets = [
        {"boxes": torch.tensor([[12.0, 10.0, 50.0, 40.0]]), "labels": torch.tensor([1]), "masks": masks}
        for _ in images
    ]
    return images, targets


def test_training_gives_weighted_losses_of_every_stage_and_the_mask():
    images, targets = _batch()
    model = _model().train()
    losses = model(images, targets)
    stage_keys = {f"loss_{k}_stage{t}" for k in ("classifier", "box_reg") for t in (1, 2, 3)}
    assert stage_keys | {"loss_mask", "loss_objectness", "loss_rpn_box_reg"} == set(losses)
    sum(losses.values()).backward()
    torch.manual_seed(1)
    silent = _model("model.cascade.stage_loss_weights=[1.0,0.0,0.0]").train()(images, targets)
    assert silent["loss_classifier_stage2"] == 0 and silent["loss_box_reg_stage3"] == 0
    assert silent["loss_classifier_stage1"] > 0


def test_eval_outputs_torchvision_detections_with_masks():
    images, _ = _batch()
    model = _model("model.roi_box_head.score_thresh=0.0").eval()
    with torch.no_grad():
        out = model(images)
    for o in out:
        n = len(o["boxes"])
        assert n > 0 and o["scores"].shape == (n,) and o["labels"].min() >= 1
        assert o["masks"].shape == (n, 1, 64, 64)


def test_papers_x152_cascade_recipe_builds_full_size():
    cfg = load_config(
        ROOT / "configs" / "coco" / "cascade_mask_rcnn_X152_32x8d_FPN_gn_scratch_9x_trainaug.yaml"
    )
    model = build_model(cfg)  # constructed only: a forward pass at this size is too slow for a CPU test
    body = model.backbone.body
    assert [len(s) for s in (body.layer1, body.layer2, body.layer3, body.layer4)] == [3, 8, 36, 3]
    assert body.layer3[0].conv2.groups == 32
    heads = model.roi_heads
    assert isinstance(heads, CascadeRoIHeads) and heads.num_stages == 3
    assert [m.high_threshold for m in heads.stage_matchers] == [0.5, 0.6, 0.7]
    assert heads.box_predictor.cls_score.out_features == 81
    assert not [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _record_samples(heads: CascadeRoIHeads) -> list:
    """Wrap ``heads._sample`` so that each stage's sampled (RoIs, matched, labels) are kept, in order."""
    seen, sample = [], heads._sample

    def recording(t, proposals, targets):
        out = sample(t, proposals, targets)
        seen.append(out[:3])
        return out

    heads._sample = recording
    return seen


def _record_mask_rois(heads: CascadeRoIHeads) -> list:
    seen, mask_logits = [], heads._mask_logits

    def recording(features, boxes, image_shapes):
        seen.append(boxes)
        return mask_logits(features, boxes, image_shapes)

    heads._mask_logits = recording
    return seen


def test_mask_head_trains_on_the_last_stages_foreground_rois():
    images, targets = _batch()
    model = _model().train()
    samples, mask_rois = _record_samples(model.roi_heads), _record_mask_rois(model.roi_heads)
    model(images, targets)
    assert len(samples) == 3 and len(mask_rois) == 1
    rois, _, labels = samples[-1]
    want = [r[lab > 0] for r, lab in zip(rois, labels, strict=True)]
    first = [r[lab > 0] for r, lab in zip(samples[0][0], samples[0][2], strict=True)]
    assert all(torch.equal(a, b) for a, b in zip(mask_rois[0], want, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(mask_rois[0], first, strict=True))


def test_before_the_switch_stage_one_trains_and_predicts_alone():
    images, targets = _batch()
    model = _model().train()
    switch_cascade(model, 1, start_iter=2, total=3)
    losses = model(images, targets)
    assert {k for k in losses if "stage" in k} == {"loss_classifier_stage1", "loss_box_reg_stage1"}
    sum(losses.values()).backward()
    later = [
        p
        for m in (*model.roi_heads.cascade_heads, *model.roi_heads.cascade_predictors)
        for p in m.parameters()
    ]
    assert all(p.grad is None for p in later)  # SGD skips them: no decay, no momentum before the switch
    assert model.roi_heads.box_predictor.cls_score.weight.grad is not None
    model.eval()
    calls = []
    run_stage = model.roi_heads._run_stage
    model.roi_heads._run_stage = lambda t, *a: calls.append(t) or run_stage(t, *a)
    with torch.no_grad():
        model([images[0]])
    assert calls == [0]
    switch_cascade(model, 2, start_iter=2, total=3)
    with torch.no_grad():
        model([images[0]])
    assert calls == [0, 0, 1, 2]


def test_a_cascade_start_at_the_end_of_the_schedule_is_refused():
    with pytest.raises(ValueError, match="model.cascade.start_iter=3"):
        switch_cascade(_model(), 0, start_iter=3, total=3)
