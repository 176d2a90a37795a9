"""Keypoint R-CNN from the config: GN in its keypoint head, torchvision's output format, and a keypoint
loss that falls when a tiny model fits two images."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.detection import KeypointRCNN

from scratchlab.config import load_config
from scratchlab.data.coco import CocoDetection, collate
from scratchlab.data.synth import make_synth_detection
from scratchlab.data.transforms import build_transforms
from scratchlab.models import build_model
from tests.conftest import ROOT, TINY

MINI = ROOT / "configs" / "mini" / "keypoint_rcnn_gn_scratch.yaml"
SMALL = [*TINY, "model.roi_keypoint_head.conv_dim=16", "model.roi_keypoint_head.num_keypoints=3"]


def test_gn_keypoint_head_structure_and_heatmap_size():
    model = build_model(load_config(MINI, SMALL), num_classes=2)
    assert isinstance(model, KeypointRCNN)
    head = model.roi_heads.keypoint_head
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8 and all(c.bias is None for c in convs)
    assert len([m for m in head.modules() if isinstance(m, nn.GroupNorm)]) == 8
    assert model.roi_heads.keypoint_roi_pool.output_size == (14, 14)
    logits = model.roi_heads.keypoint_predictor(head(torch.zeros(2, 16, 14, 14)))
    assert logits.shape == (2, 3, 56, 56)


def test_keypoint_head_without_norm_is_torchvisions():
    model = build_model(load_config(MINI, [*SMALL, "model.roi_keypoint_head.norm=''"]), num_classes=2)
    assert type(model.roi_heads.keypoint_head).__name__ == "KeypointRCNNHeads"


def test_unset_keypoint_count_is_a_clear_error():
    with pytest.raises(ValueError, match="num_keypoints"):
        build_model(load_config(MINI, TINY), num_classes=2)


@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
    root = tmp_path_factory.mktemp("kp_fit")
    make_synth_detection(
        root,
        num_train=4,
        num_val=0,
        image_size=64,
        seed=1,
        min_object_size=0.3,
        max_objects=2,
        shapes=["crescent"],
        keypoints=True,
    )
    cfg = load_config(MINI, [*SMALL, "input.hflip_prob=0", "input.min_size_train=[64]"])
    ds = CocoDetection(
        root / "annotations" / "instances_train.json",
        root / "train",
        build_transforms(cfg.input, train=True),
        with_masks=False,
        filter_empty=True,
        with_keypoints=True,
    )
    visible = [i for i in range(len(ds)) if any(a.get("num_keypoints") for a in ds.anns[ds.ids[i]])]
    return cfg, collate([ds[i] for i in visible[:2]])


def test_keypoint_loss_falls_on_a_tiny_set(two_images):
    cfg, (images, targets) = two_images
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=1)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(12):
        loss = model(images, targets)
        losses.append(loss["loss_keypoint"].item())
        opt.zero_grad()
        sum(loss.values()).backward()
        opt.step()
    # It starts at about ln(56 * 56) = 8.0 (a uniform heatmap) and must leave it: half a nat in 12 steps.
    assert sum(losses[-3:]) / 3 < losses[0] - 0.5, losses


def test_eval_outputs_keypoints_per_detection(two_images):
    cfg, (images, _) = two_images
    model = build_model(
        load_config(MINI, [*SMALL, "model.roi_box_head.score_thresh=0"]), num_classes=1
    ).eval()
    with torch.no_grad():
        out = model([images[0]])[0]
    n = len(out["boxes"])
    assert out["keypoints"].shape == (n, 3, 3) and out["keypoints_scores"].shape == (n, 3)
