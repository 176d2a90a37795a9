"""The evaluation pass: binary mask pasting equals torchvision's paste + threshold, and batching does not
change what the evaluator receives."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from torch.utils.data import Subset
from torchvision.models.detection.roi_heads import paste_masks_in_image

from scratchlab.config import load_config
from scratchlab.engine.data import build_val_set
from scratchlab.engine.inference import (
    binary_mask_paste,
    coco_evaluator,
    inference_on_dataset,
    paste_masks_binary,
)
from scratchlab.models import build_model
from tests.conftest import MINI, TINY

VAL_LABELS = [1, 2, 3]  # the generated set's category ids: a model built on its 3 classes


def _boxes(n: int, h: int, w: int, generator: torch.Generator) -> torch.Tensor:
    """Boxes clipped to the image as the box head leaves them: some at the borders, some sub-pixel."""
    xy = torch.rand(n, 2, generator=generator) * torch.tensor([w * 1.2, h * 1.2]) - 10
    wh = torch.rand(n, 2, generator=generator) * 60 + 0.3
    boxes = torch.cat([xy, xy + wh], 1)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    return boxes


@pytest.mark.parametrize("n", [0, 1, 40])
def test_binary_paste_is_torchvision_paste_thresholded(n: int) -> None:
    g = torch.Generator().manual_seed(n)
    h, w = 97, 131
    masks, boxes = torch.rand(n, 1, 28, 28, generator=g), _boxes(n, h, w, g)
    ours = paste_masks_binary(masks, boxes, (h, w))
    assert ours.dtype == torch.bool and ours.shape == (n, 1, h, w)
    assert torch.equal(ours, paste_masks_in_image(masks, boxes, (h, w)) > 0.5)
    # Column-major per mask: the H x W x N view pycocotools.mask.encode takes needs no copy.
    assert ours[:, 0].permute(1, 2, 0).numpy().flags.f_contiguous


def _model_and_val(synth_data, extra=()):
    cfg = load_config(
        MINI,
        [
            *TINY,
            f"data.val_json={synth_data['val_json']}",
            f"data.val_images={synth_data['val_images']}",
            "model.roi_box_head.score_thresh=0.0",  # random weights: keep every detection
            *extra,
        ],
    )
    val_set = build_val_set(cfg)
    torch.manual_seed(0)
    return cfg, build_model(cfg, num_classes=len(VAL_LABELS)).eval(), val_set


def test_binary_mask_paste_only_changes_the_masks_and_restores_the_model(synth_data) -> None:
    _, model, val_set = _model_and_val(synth_data)
    image = val_set[0][0]
    with torch.no_grad():
        plain = model([image])[0]
        with binary_mask_paste(model):
            binary = model([image])[0]
        again = model([image])[0]
    assert len(plain["boxes"]) > 0 and "postprocess" not in vars(model.transform)
    for key in ("boxes", "scores", "labels"):
        assert torch.equal(plain[key], binary[key]) and torch.equal(plain[key], again[key])
    assert torch.equal(binary["masks"], plain["masks"] > 0.5) and again["masks"].dtype == torch.float32


def test_batched_inference_gives_the_detections_of_batch_one(synth_data) -> None:
    """The evaluator gets the same records whether the model sees 1 or 3 images a pass (the generated
    val images share one size, so batching adds no padding that could move a detection)."""
    cfg, model, val_set = _model_and_val(synth_data)
    share = Subset(val_set, [0, 1, 2])
    assert len({(val_set[i][0].shape) for i in share.indices}) == 1
    records = {}
    for batch in (1, 3):
        evaluator = coco_evaluator(cfg, val_set, VAL_LABELS)
        inference_on_dataset(model, share, evaluator, torch.device("cpu"), batch_size=batch)
        records[batch] = evaluator._predictions
    assert len(records[1]) == len(records[3]) > 0
    for a, b in zip(records[1], records[3], strict=True):
        assert (a["image_id"], a["category_id"]) == (b["image_id"], b["category_id"])
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)
        assert np.allclose(a["bbox"], b["bbox"], atol=1e-3)
        mask_a, mask_b = (mask_util.decode(r["segmentation"]).astype(bool) for r in (a, b))
        assert (mask_a != mask_b).mean() < 0.01  # a pixel may flip where a probability sits at 0.5
    assert sum(mask_util.area(r["segmentation"]) for r in records[1]) > 0


def test_inference_leaves_the_global_rng_alone(synth_data) -> None:
    """Evaluating during training must not move the training run's random stream (RoI sampling)."""
    cfg, model, val_set = _model_and_val(synth_data)
    before = torch.get_rng_state()
    inference_on_dataset(
        model, Subset(val_set, [0]), coco_evaluator(cfg, val_set, VAL_LABELS), torch.device("cpu")
    )
    assert torch.equal(torch.get_rng_state(), before)


def test_a_failed_evaluation_leaves_a_training_model_in_training_mode(synth_data) -> None:
    cfg, model, val_set = _model_and_val(synth_data)
    model.train()

    def fail(*args, **kwargs):
        raise RuntimeError("out of memory")

    model.roi_heads.forward = fail
    with pytest.raises(RuntimeError, match="out of memory"):
        inference_on_dataset(
            model, Subset(val_set, [0]), coco_evaluator(cfg, val_set, VAL_LABELS), torch.device("cpu")
        )
    assert model.training and all(m.training for m in model.modules())
