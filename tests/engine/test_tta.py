"""Test-time augmentation: runs mapped back to the original image and merged before NMS."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from scratchlab.config import load_config
from scratchlab.engine.tta import TTADetector, augmentations, vote_boxes
from scratchlab.models import build_model
from tests.conftest import MINI, TINY

MINI_KEYPOINTS = MINI.parent / "keypoint_rcnn_gn_scratch.yaml"


class BrightRegionDetector(nn.Module):
    """A detector that is exactly flip-equivariant: one box around the pixels brighter than 0.5, found on
    the image as torchvision's transform resized it, and mapped back by the same transform."""

    def __init__(self) -> None:
        super().__init__()
        self.transform = GeneralizedRCNNTransform(64, 107, [0.0] * 3, [1.0] * 3)
        self.roi_heads = nn.Module()
        self.roi_heads.nms_thresh, self.roi_heads.detections_per_img, self.roi_heads.mask_roi_pool = (
            0.5,
            10,
            None,
        )

    def forward(self, images):
        sizes = [tuple(i.shape[-2:]) for i in images]
        batch, _ = self.transform(images)
        out = []
        for tensor, (h, w) in zip(batch.tensors, batch.image_sizes, strict=True):
            ys, xs = torch.nonzero(tensor[:, :h, :w].mean(0) > 0.5, as_tuple=True)
            box = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
            out.append({"boxes": box, "scores": torch.tensor([0.9]), "labels": torch.tensor([1])})
        return self.transform.postprocess(out, batch.image_sizes, sizes)


def _image(x0: int, x1: int) -> torch.Tensor:
    image = torch.zeros(3, 48, 80)
    image[:, 10:30, x0:x1] = 1.0
    return image


def test_augmentations_are_the_test_size_then_each_extra_size_each_flipped():
    assert augmentations(800, [400, 800, 1200], True) == [
        (800, False),
        (800, True),
        (400, False),
        (400, True),
        (1200, False),
        (1200, True),
    ]
    assert augmentations(800, [], False) == [(800, False)]


def test_tta_of_a_flip_symmetric_input_equals_the_plain_prediction():
    model = BrightRegionDetector().eval()
    image = _image(25, 55)  # centred: its own mirror image
    plain = model([image])[0]
    merged = TTADetector(model, [48, 96], 200, flip=True)([image])[0]
    assert len(merged["boxes"]) == 1  # six runs pooled, then one NMS
    assert torch.allclose(merged["boxes"], plain["boxes"], atol=1.5)


def test_flipped_runs_are_mapped_back_before_merging():
    model = BrightRegionDetector().eval()
    image = _image(5, 30)  # off-centre: a run left unmirrored would add a second, far-away box
    merged = TTADetector(model, [], 200, flip=True)([image])[0]
    assert len(merged["boxes"]) == 1
    assert torch.allclose(merged["boxes"], model([image])[0]["boxes"], atol=1.0)


def test_real_mask_rcnn_single_run_matches_plain_and_full_tta_gives_masks():
    torch.manual_seed(0)
    model = build_model(
        load_config(MINI, [*TINY, "model.roi_box_head.score_thresh=0.0"]), num_classes=2
    ).eval()
    image = torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model([image])[0]
    single = TTADetector(model, [], 200, flip=False)([image])[0]
    assert torch.allclose(single["boxes"], plain["boxes"]) and torch.equal(single["labels"], plain["labels"])
    assert torch.allclose(single["masks"], plain["masks"], atol=1e-5)
    full = TTADetector(model, [48, 96], 160, flip=True)([image])[0]
    n = len(full["boxes"])
    assert 0 < n <= model.roi_heads.detections_per_img and full["masks"].shape == (n, 1, 64, 80)
    assert model.transform.min_size == (64,) and model.roi_heads.nms_thresh == 0.5  # restored


def test_keypoint_models_are_refused():
    model = build_model(
        load_config(MINI_KEYPOINTS, [*TINY, "model.roi_keypoint_head.num_keypoints=3"]), num_classes=1
    )
    with pytest.raises(ValueError, match="keypoint"):
        TTADetector(model, [], 100, flip=True)


# Hand-made detections of one image: a kept box, a box at IoU 0.95 with it, one at IoU 0.8 (below Detectron's
# VOTE_TH 0.9), one of another class on top of it, and a far one.
VOTE_BOXES = torch.tensor(
    [
        [0.0, 0.0, 10.0, 10.0],
        [0.0, 0.0, 10.0, 10.5],
        [0.0, 0.0, 10.0, 12.5],
        [0.0, 0.0, 10.0, 10.0],
        [50.0, 50, 60, 60],
    ]
)
VOTE_SCORES = torch.tensor([0.9, 0.3, 0.8, 0.7, 0.6])
VOTE_LABELS = torch.tensor([1, 1, 1, 2, 1])


def test_vote_boxes_averages_the_same_class_boxes_over_the_threshold_by_score():
    voted = vote_boxes(VOTE_BOXES[:1], VOTE_LABELS[:1], VOTE_BOXES, VOTE_SCORES, VOTE_LABELS, 0.9)
    want = (0.9 * VOTE_BOXES[0] + 0.3 * VOTE_BOXES[1]) / 1.2
    assert torch.allclose(voted, want[None])
    alone = vote_boxes(VOTE_BOXES[4:], VOTE_LABELS[4:], VOTE_BOXES, VOTE_SCORES, VOTE_LABELS, 0.9)
    assert torch.allclose(alone, VOTE_BOXES[4:])


class FixedDetector(nn.Module):
    """Returns the hand-made detections above whatever the image (no NMS of its own)."""

    def __init__(self) -> None:
        super().__init__()
        self.transform = GeneralizedRCNNTransform(64, 107, [0.0] * 3, [1.0] * 3)
        self.roi_heads = nn.Module()
        self.roi_heads.nms_thresh, self.roi_heads.detections_per_img = 0.5, 10
        self.roi_heads.mask_roi_pool = None

    def forward(self, images):
        return [{"boxes": VOTE_BOXES, "scores": VOTE_SCORES, "labels": VOTE_LABELS} for _ in images]


def test_tta_votes_the_boxes_nms_keeps_and_keeps_their_scores():
    image = torch.zeros(3, 64, 64)
    plain = TTADetector(FixedDetector(), [], 200, flip=False)([image])[0]
    voted = TTADetector(FixedDetector(), [], 200, flip=False, vote_thresh=0.9)([image])[0]
    assert torch.equal(voted["scores"], plain["scores"]) and torch.equal(voted["labels"], plain["labels"])
    assert torch.equal(plain["boxes"][0], VOTE_BOXES[0])  # NMS at 0.5 keeps the 0.9 box, drops 0.3 and 0.8
    assert torch.allclose(voted["boxes"][0], (0.9 * VOTE_BOXES[0] + 0.3 * VOTE_BOXES[1]) / 1.2)
    assert torch.allclose(voted["boxes"][1:], plain["boxes"][1:])  # the class-2 and far boxes: no other voter


def test_vote_threshold_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="eval.tta.vote_thresh"):
        TTADetector(FixedDetector(), [], 200, flip=False, vote_thresh=1.5)
