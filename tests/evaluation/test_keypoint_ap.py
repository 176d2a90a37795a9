"""Keypoint AP through the real COCOeval (iouType 'keypoints', OKS) on hand-made predictions."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from scratchlab.evaluation import COCOEvaluator, evaluate_predictions

SIGMAS = [0.07, 0.07, 0.07]
# Three objects of ~40 x 40 px (medium), keypoints back / left_tip / right_tip; one image also holds a
# category without keypoints.
OBJECTS = [
    (1, [10, 10, 40, 40], [30, 48, 2, 14, 14, 2, 46, 14, 2]),
    (1, [60, 20, 40, 42], [80, 60, 2, 64, 24, 1, 96, 24, 2]),
    (2, [5, 50, 45, 40], [20, 70, 2, 10, 55, 2, 40, 55, 2]),
]


def _gt() -> dict:
    anns = [
        {
            "id": i + 1,
            "image_id": img,
            "category_id": 1,
            "bbox": box,
            "area": float(box[2] * box[3]),
            "iscrowd": 0,
            "keypoints": kp,
            "num_keypoints": 3,
        }
        for i, (img, box, kp) in enumerate(OBJECTS)
    ]
    anns.append(
        {"id": 9, "image_id": 2, "category_id": 2, "bbox": [70, 70, 20, 20], "area": 400.0, "iscrowd": 0}
    )
    return {
        "images": [{"id": 1, "height": 120, "width": 120}, {"id": 2, "height": 120, "width": 120}],
        "annotations": anns,
        "categories": [
            {
                "id": 1,
                "name": "crescent",
                "keypoints": ["back", "left_tip", "right_tip"],
                "skeleton": [[1, 2], [1, 3]],
            },
            {"id": 2, "name": "square"},
        ],
    }


def _results(swap: bool = False, shift: float = 0.0) -> list[dict]:
    out = []
    for img, box, kp in OBJECTS:
        pts = np.array(kp, dtype=float).reshape(3, 3)
        if swap:
            pts = pts[[0, 2, 1]]
        pts[:, :2] += shift
        pts[:, 2] = 1
        out.append(
            {"image_id": img, "category_id": 1, "bbox": box, "score": 0.9, "keypoints": pts.ravel().tolist()}
        )
    out.append({"image_id": 2, "category_id": 2, "bbox": [70, 70, 20, 20], "score": 0.8})
    return out


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
def test_exact_keypoints_score_100_and_swapped_ones_do_not(backend):
    exact = evaluate_predictions(_gt(), _results(), ["keypoints"], backend=backend, oks_sigmas=SIGMAS)[
        "keypoints"
    ]
    assert exact["AP"] == pytest.approx(100.0)
    assert set(exact) == {"AP", "AP50", "AP75", "APm", "APl"}
    swapped = evaluate_predictions(
        _gt(), _results(swap=True), ["keypoints"], backend=backend, oks_sigmas=SIGMAS
    )["keypoints"]
    assert swapped["AP"] < 20.0


def test_keypoint_ap_equals_direct_pycocotools():
    results = _results(shift=2.5)
    ours = evaluate_predictions(_gt(), results, ["keypoints"], backend="pycocotools", oks_sigmas=SIGMAS)
    gt = COCO()
    gt.dataset = _gt()
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes([r for r in results if "keypoints" in r])
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.array(SIGMAS)
        ev.params.catIds = [1]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ours["keypoints"]["AP"] == pytest.approx(ev.stats[0] * 100)
    assert ours["keypoints"]["AP50"] == pytest.approx(ev.stats[1] * 100)
    assert 0 < ours["keypoints"]["AP"] < 100


def test_other_keypoint_counts_need_their_own_sigmas():
    with pytest.raises(ValueError, match="eval.keypoint_oks_sigmas"):
        evaluate_predictions(_gt(), _results(), ["keypoints"])
    with pytest.raises(ValueError, match="one per keypoint"):
        evaluate_predictions(_gt(), _results(), ["keypoints"], oks_sigmas=[0.1])


def test_evaluator_takes_torchvision_keypoint_outputs():
    ev = COCOEvaluator(_gt(), iou_types=("bbox", "keypoints"), oks_sigmas=SIGMAS)
    for img in (1, 2):
        objs = [(box, kp) for i, box, kp in OBJECTS if i == img]
        boxes = torch.tensor([[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b, _ in objs], dtype=torch.float32)
        kps = torch.tensor([kp for _, kp in objs], dtype=torch.float32).reshape(-1, 3, 3)
        ev.process(
            [{"image_id": img}],
            [
                {
                    "boxes": boxes,
                    "scores": torch.full((len(objs),), 0.9),
                    "labels": torch.ones(len(objs), dtype=torch.int64),
                    "keypoints": kps,
                }
            ],
        )
    metrics = ev.evaluate()
    assert metrics["keypoints"]["AP"] == pytest.approx(100.0)
    assert "segm" not in metrics
