"""The per-image evaluation data and AP on resampled images, against COCOeval on whole sets."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from scratchlab.evaluation import evaluate_predictions
from scratchlab.evaluation.bootstrap import ap_on_images, bootstrap_ap, per_image_eval, resample_indices
from tests.conftest import hand_made_coco, jittered_detections


def _gt(n_images: int = 24) -> dict:
    return hand_made_coco(n_images)


def _predictions(gt: dict, jitter: float, seed: int = 1) -> list[dict]:
    return jittered_detections(gt, jitter, seed)


def test_all_images_give_cocoeval_ap():
    gt = _gt()
    preds = _predictions(gt, 4.0)
    data = per_image_eval(gt, preds)
    ours = ap_on_images(data, np.arange(len(data["image_ids"])))
    ref = evaluate_predictions(gt, preds, ["bbox"])["bbox"]
    assert ours == pytest.approx({k: ref[k] for k in ours}, abs=1e-9)
    assert 0 < ours["AP"] < 100


def test_an_image_drawn_twice_weighs_twice():
    """Images 1 and 2 drawn twice give the AP of a set that holds two copies of them."""
    gt = _gt(8)
    preds = _predictions(gt, 5.0)
    data = per_image_eval(gt, preds)
    indices = [0, 0, 1, 1, 2, 3, 4, 5, 6, 7]
    copied, extra = copy.deepcopy(gt), []
    for img_id in (1, 2):
        new_id = 100 + img_id
        copied["images"].append({"id": new_id, "width": 100, "height": 100})
        for a in gt["annotations"]:
            if a["image_id"] == img_id:
                copied["annotations"].append({**a, "id": len(copied["annotations"]) + 1, "image_id": new_id})
        extra += [{**p, "image_id": new_id} for p in preds if p["image_id"] == img_id]
    ref = evaluate_predictions(copied, preds + extra, ["bbox"])["bbox"]
    ours = ap_on_images(data, indices)
    assert ours == pytest.approx({k: ref[k] for k in ours}, abs=1e-9)
    assert ours["AP"] != pytest.approx(ap_on_images(data, list(range(8)))["AP"])


def test_same_seed_same_resamples_other_seed_others():
    data = per_image_eval(_gt(), _predictions(_gt(), 4.0))
    a = bootstrap_ap(data, resample_indices(24, 50, seed=3))
    b = bootstrap_ap(data, resample_indices(24, 50, seed=3))
    c = bootstrap_ap(data, resample_indices(24, 50, seed=4))
    assert np.array_equal(a["AP"], b["AP"])
    assert not np.array_equal(a["AP"], c["AP"])
    assert np.isfinite(a["AP"]).all() and a["AP"].std() > 0


def test_crowd_ground_truth_ignores_its_detections():
    gt = _gt(6)
    gt["annotations"][0]["iscrowd"] = 1
    preds = _predictions(gt, 2.0)
    data = per_image_eval(gt, preds)
    assert any(len(c) == 6 for c in data["cells"])  # ignore bits kept where a detection hit the crowd box
    ref = evaluate_predictions(gt, preds, ["bbox"])["bbox"]
    assert ap_on_images(data, range(6))["AP"] == pytest.approx(ref["AP"], abs=1e-9)


def test_unknown_image_named():
    with pytest.raises(ValueError, match="image_id 999"):
        per_image_eval(_gt(), [{"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}])


def test_keypoints_per_image_gives_cocoeval_keypoint_ap():
    """OKS matching over the keypoint categories, 20 detections per image, the caller's sigmas: the whole
    set's AP is COCOeval's keypoint AP, and a wrong sigma count is refused as there."""
    from tests.evaluation.test_keypoint_ap import SIGMAS, _gt, _results

    for shift in (0.0, 2.5, 4.0):
        results = _results(shift=shift)
        data = per_image_eval(_gt(), results, "keypoints", oks_sigmas=SIGMAS)
        assert data["iou_type"] == "keypoints" and data["max_dets"] == 20 and data["category_ids"] == [1]
        ours = ap_on_images(data, range(len(data["image_ids"])))
        ref = evaluate_predictions(_gt(), results, ["keypoints"], oks_sigmas=SIGMAS)["keypoints"]
        assert ours == pytest.approx({k: ref[k] for k in ours}, abs=1e-9)
    assert 0 < ours["AP"] < 100  # the last shift is off at the tighter OKS thresholds
    with pytest.raises(ValueError, match="one per keypoint"):
        per_image_eval(_gt(), _results(), "keypoints", oks_sigmas=[0.1])
