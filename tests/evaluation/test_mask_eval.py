"""PreparedMaskEval against faster-coco-eval's own segm path (identical tables) and plain pycocotools
(identical stats) on a set with crowd regions, several categories, small/medium/large objects, images
without ground truth or without detections, and more detections per image than maxDets."""

from __future__ import annotations

import contextlib
import copy
import io

import faster_coco_eval
import numpy as np
import pycocotools.mask as mask_util
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from scratchlab.evaluation import evaluate_predictions, load_coco_gt
from scratchlab.evaluation.mask_eval import PreparedMaskEval, _mask_areas
from scratchlab.evaluation.results import detections_for, load_results

STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
SIZE = 200  # px; objects from ~20 px^2 (small) to ~20k px^2 (large)


def _rle(rng: np.random.Generator, cx: float, cy: float, radius: float) -> dict:
    """A random star polygon's RLE (counts as str, as COCOEvaluator writes them)."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, 10))
    radii = radius * rng.uniform(0.6, 1.0, 10)
    poly = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).ravel().tolist()
    rle = mask_util.merge(mask_util.frPyObjects([poly], SIZE, SIZE))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def make_set(seed: int) -> tuple[dict, list[dict]]:
    """Ground truth (image 5 has none; image 4's only object is a crowd region) and detections
    (image 3 has none; each other image has 14, more than a max_dets of 10)."""
    rng = np.random.default_rng(seed)
    images = [{"id": i, "height": SIZE, "width": SIZE} for i in range(1, 6)]
    anns, results = [], []
    for img in images[:4]:
        for k in range(int(rng.integers(3, 7))):
            crowd = img["id"] == 4 or (img["id"] == 2 and k == 0)
            radius = float(np.exp(rng.uniform(np.log(3), np.log(90))))
            center = rng.uniform(20, SIZE - 20, 2)
            seg = _rle(rng, *center, radius)
            area = float(mask_util.area(seg))
            if not area:
                continue
            ann = {"id": len(anns) + 1, "image_id": img["id"], "category_id": int(rng.integers(1, 4))}
            anns.append({**ann, "segmentation": seg, "area": area, "iscrowd": int(crowd)})
            anns[-1]["bbox"] = mask_util.toBbox(seg).tolist()
            if img["id"] == 3:
                continue
            for _ in range(int(rng.integers(0, 3))):  # found (jittered), found twice, or missed
                moved = center + rng.normal(0, 0.1 * radius, 2)
                seg = _rle(rng, *moved, radius * rng.uniform(0.8, 1.2))
                cat = ann["category_id"] if rng.random() < 0.85 else int(rng.integers(1, 4))
                results.append({"image_id": img["id"], "category_id": cat, "segmentation": seg})
    for img in (1, 2, 4, 5):
        while sum(r["image_id"] == img for r in results) < 14:  # false positives fill up to 14
            seg = _rle(rng, *rng.uniform(10, SIZE - 10, 2), float(rng.uniform(3, 60)))
            results.append({"image_id": img, "category_id": int(rng.integers(1, 4)), "segmentation": seg})
    for r in results:
        r["score"] = float(rng.choice([0.25, 0.5, rng.random()]))  # ties too: the sort must be stable
    cats = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3, 4)]  # category 4: no ground truth, no detections
    return {"images": images, "annotations": anns, "categories": cats}, results


def _faster_own(gt: dict, results: list[dict], max_dets: int, img_ids=None) -> dict:
    """faster-coco-eval's own segm path (loadRes, COCOeval_faster) on the same records."""
    coco_gt = load_coco_gt(gt, require_segm=True)
    dt = load_results(coco_gt, detections_for("segm", results), "faster_coco_eval")
    ev = faster_coco_eval.COCOeval_faster(coco_gt, dt, "segm", print_function=lambda *_: None)
    return _tables(ev, max_dets, img_ids)


def _prepared(coco_gt, results: list[dict], max_dets: int, img_ids=None) -> dict:
    ev = PreparedMaskEval(coco_gt, results, print_function=lambda *_: None)
    return _tables(ev, max_dets, img_ids)


def _tables(ev, max_dets: int, img_ids) -> dict:
    """``ev``'s accumulated tables with ``max_dets`` (and 1) detections per image, on ``img_ids``."""
    ev.params.maxDets = sorted({1, max_dets})
    if img_ids is not None:
        ev.params.imgIds = img_ids
    ev.evaluate()
    ev.accumulate()
    return ev.eval


def _assert_same_tables(got: dict, ref: dict) -> None:
    for key in ("precision", "recall", "scores"):
        np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(ref[key]), err_msg=key)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tables_equal_faster_coco_evals_own_path(seed: int) -> None:
    gt, results = make_set(seed)
    areas = [a["area"] for a in gt["annotations"]]
    assert min(areas) < 32**2 and any(32**2 < a < 96**2 for a in areas) and max(areas) > 96**2
    assert sum(a["iscrowd"] for a in gt["annotations"]) >= 2
    coco_gt = load_coco_gt(gt, require_segm=True)
    for max_dets in (3, 100):  # 3: fewer than some (image, category) pairs have
        ref = _faster_own(gt, results, max_dets)
        assert (np.asarray(ref["precision"]) > 0).any()  # something matched
        _assert_same_tables(_prepared(coco_gt, results, max_dets), ref)
    # The ground truth prepared once serves another image subset, and a bbox evaluation in between
    # (faster-coco-eval's own _prepare on the same annotations) changes nothing.
    evaluate_predictions(coco_gt, [{**r, "bbox": [0, 0, 5, 5]} for r in results], ("bbox",))
    _assert_same_tables(_prepared(coco_gt, results, 3, [2, 3, 5]), _faster_own(gt, results, 3, [2, 3, 5]))


@pytest.mark.parametrize("max_dets", [3, 100])
def test_all_twelve_stats_equal_pycocotools(max_dets: int) -> None:
    gt, results = make_set(3)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        ref = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), "segm")
        ref.params.maxDets = sorted({1, 10, max_dets})
        ref.evaluate()
        ref.accumulate()
    at = ref.params.maxDets.index(max_dets)  # scratchlab's AP and ARs/m/l are at max_dets
    precision = np.asarray(ref.eval["precision"])[..., at]
    recall = np.asarray(ref.eval["recall"])
    got = evaluate_predictions(gt, results, ("segm",), max_dets=max_dets, recall=True)["segm"]
    expected = {}
    for a, suffix in enumerate(("", "s", "m", "l")):
        p = precision[..., a]
        expected["AP" + suffix] = p[p > -1].mean() * 100 if (p > -1).any() else None
    for t, key in ((0, "AP50"), (5, "AP75")):
        p = precision[t, :, :, 0]
        expected[key] = p[p > -1].mean() * 100
    for m, dets in enumerate(ref.params.maxDets):
        r = recall[:, :, 0, m]
        expected[f"AR{dets}"] = r[r > -1].mean() * 100
    for a, key in ((1, "ARs"), (2, "ARm"), (3, "ARl")):
        r = recall[:, :, a, at]
        expected[key] = r[r > -1].mean() * 100 if (r > -1).any() else None
    assert set(expected) <= set(got)
    for key, value in expected.items():
        assert (got[key] is None) if value is None else got[key] == pytest.approx(value, abs=1e-9), key


def test_mask_areas_past_pycocotools_uint8_limit() -> None:
    """More than 255 masks (pycocotools' area fails on that many at once) give faster-coco-eval's areas."""
    masks = np.zeros((20, 20, 300), np.uint8, order="F")
    for k in range(300):
        masks[: k % 20, : (k * 7) % 20, k] = 1
    rles = mask_util.encode(masks)
    assert _mask_areas(rles) == faster_coco_eval.mask.area(rles).tolist()


def test_results_are_not_modified_and_empty_results_evaluate() -> None:
    gt, results = make_set(4)
    before = copy.deepcopy(results)
    evaluate_predictions(gt, results, ("segm",))
    assert results == before
    assert evaluate_predictions(gt, [], ("segm",))["segm"]["AP"] == 0.0
