"""COCOEvaluator on a tiny generated COCO set with non-identity category ids (3, 7, 11)."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from scratchlab.evaluation import COCOEvaluator, evaluate_predictions, instances_to_coco_results

# pycocotools 2.0.11's mask.decode trips a NumPy 2 copy-keyword DeprecationWarning; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

CATS = [{"id": 3, "name": "rect"}, {"id": 7, "name": "tri"}, {"id": 11, "name": "wedge"}]
LABEL_TO_CAT = [3, 7, 11]  # contiguous label k -> LABEL_TO_CAT[k - 1]
KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
STATS = (*KEYS, "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")  # COCOeval.summarize()'s order


def _polygon(kind: int, x: float, y: float, w: float, h: float) -> list[float]:
    """A rectangle, an isosceles triangle or a right triangle filling the box (x, y, w, h)."""
    if kind == 0:
        return [x, y, x + w, y, x + w, y + h, x, y + h]
    if kind == 1:
        return [x, y + h, x + w, y + h, x + w / 2, y]
    return [x, y, x + w, y, x, y + h]


def _raster(poly: list[float], height: int, width: int) -> np.ndarray:
    return mask_util.decode(mask_util.merge(mask_util.frPyObjects([poly], height, width)))


def make_gt(seed: int = 0, n_images: int = 6) -> dict:
    """Images of 64-96 px with 2-4 polygons each; box widths are multiples of 4; nothing is large."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(n_images):
        width, height = int(rng.integers(64, 97)), int(rng.integers(64, 97))
        images.append({"id": 100 + i, "width": width, "height": height, "file_name": f"{i}.png"})
        for _ in range(int(rng.integers(2, 5))):
            w, h = 4 * int(rng.integers(3, 15)), 4 * int(rng.integers(3, 15))
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            kind = int(rng.integers(0, 3))
            poly = _polygon(kind, x, y, w, h)
            area = float(mask_util.area(mask_util.merge(mask_util.frPyObjects([poly], height, width))))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": 100 + i,
                    "category_id": CATS[kind]["id"],
                    "bbox": [x, y, w, h],
                    "area": area,
                    "segmentation": [poly],
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": anns, "categories": copy.deepcopy(CATS)}


def _output(image: dict, preds: list[tuple[list[float], float, int]], masks: bool = True) -> dict:
    """A torchvision eval-mode output from (polygon, score, category_id) triples."""
    boxes = [[min(p[0::2]), min(p[1::2]), max(p[0::2]), max(p[1::2])] for p, _, _ in preds]
    out = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor([s for _, s, _ in preds], dtype=torch.float32),
        "labels": torch.tensor([LABEL_TO_CAT.index(c) + 1 for _, _, c in preds], dtype=torch.int64),
    }
    if masks:
        h, w = image["height"], image["width"]
        m = [torch.from_numpy(_raster(p, h, w)).float() for p, _, _ in preds]
        out["masks"] = torch.stack(m)[:, None] if m else torch.zeros(0, 1, h, w)
    return out


def _run(gt: dict, pick, masks: bool = True, source=None, **kwargs) -> COCOEvaluator:
    """Feed every image; ``pick(ann)`` returns the (polygon, score, category_id) predictions for a GT."""
    ev = COCOEvaluator(gt if source is None else source, label_to_category_id=LABEL_TO_CAT, **kwargs)
    for img in gt["images"]:
        preds = [p for a in gt["annotations"] if a["image_id"] == img["id"] for p in pick(a)]
        # image_id as a 0-d tensor, as torchvision-style targets often carry it.
        ev.process([{"image_id": torch.tensor(img["id"])}], [_output(img, preds, masks)])
    return ev


def _perfect(ann: dict) -> list:
    return [(ann["segmentation"][0], 1.0, ann["category_id"])]


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
def test_ground_truth_as_predictions_scores_100(backend: str) -> None:
    gt = make_gt()
    metrics = _run(gt, _perfect, backend=backend).evaluate()
    assert set(metrics) == {"bbox", "segm"}
    for iou_type in ("bbox", "segm"):
        m = metrics[iou_type]
        for key in ("AP", "AP50", "AP75", "APs", "APm"):
            assert m[key] == pytest.approx(100.0), (iou_type, key)
        assert m["APl"] is None  # no large GT object: COCOeval's -1 becomes None
    json.dumps(metrics, allow_nan=False)  # the dict stays valid JSON


def test_shifted_boxes_lower_ap75_more_than_ap50() -> None:
    gt = make_gt()

    def shifted(ann: dict) -> list:
        x, y, w, h = ann["bbox"]  # a shift of w/4 gives IoU (w - w/4) / (w + w/4) = 0.6
        return [(_polygon(0, x + w / 4, y, w, h), 1.0, ann["category_id"])]

    base = _run(gt, _perfect, masks=False).evaluate()["bbox"]
    moved = _run(gt, shifted, masks=False).evaluate()["bbox"]
    assert moved["AP50"] == pytest.approx(100.0)
    assert moved["AP75"] == pytest.approx(0.0)
    assert base["AP75"] - moved["AP75"] > base["AP50"] - moved["AP50"]
    assert moved["AP"] < base["AP"]


def _random_predictions(gt: dict, seed: int, backend: str) -> COCOEvaluator:
    """Jittered, rescaled, sometimes mislabelled or duplicated GT plus false positives, random scores."""
    rng = np.random.default_rng(seed)

    def jitter(ann: dict) -> list:
        preds = []
        for _ in range(int(rng.integers(0, 3))):
            x, y, w, h = ann["bbox"]
            s = rng.uniform(0.8, 1.2)
            x, y = x + rng.uniform(-4, 4) + w * (1 - s) / 2, y + rng.uniform(-4, 4) + h * (1 - s) / 2
            cat = ann["category_id"] if rng.random() < 0.8 else int(rng.choice(LABEL_TO_CAT))
            kind = LABEL_TO_CAT.index(ann["category_id"])
            preds.append((_polygon(kind, x, y, w * s, h * s), float(rng.random()), cat))
        if rng.random() < 0.3:  # a false positive somewhere in the image
            x, y = rng.uniform(0, 40, size=2)
            preds.append((_polygon(0, x, y, rng.uniform(8, 24), rng.uniform(8, 24)), float(rng.random()), 7))
        return preds

    return _run(gt, jitter, backend=backend)


def _pycocotools_stats(gt: dict, results: list[dict], iou_type: str) -> np.ndarray:
    """Reference: plain pycocotools COCOeval (as in its README) on the same records."""
    results = copy.deepcopy(results)
    if iou_type == "segm":
        for r in results:
            r.pop("bbox")  # mask area, not box area, decides small/medium/large
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval.stats


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
def test_backends_match_direct_pycocotools(backend: str, tmp_path) -> None:
    gt = make_gt(seed=1, n_images=10)
    ev = _random_predictions(gt, seed=2, backend=backend)
    metrics = ev.evaluate()
    results = json.loads(ev.write_results(tmp_path / "dets" / "coco_results.json").read_text())
    assert len(results) > 20 and all("segmentation" in r for r in results)
    for iou_type in ("bbox", "segm"):
        stats = _pycocotools_stats(gt, results, iou_type)
        assert 0.05 < stats[0] < 0.95  # non-trivial: neither perfect nor empty
        for key, ref in zip(KEYS, stats[:6], strict=True):
            got = metrics[iou_type][key]
            if ref == -1:
                assert got is None, (iou_type, key)
            else:
                assert abs(got / 100 - ref) < 1e-6, (iou_type, key, got, ref)


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
def test_all_twelve_stats_match_direct_pycocotools(backend: str, tmp_path) -> None:
    """With ``recall=True`` the six AR stats join the six AP stats; all twelve are pycocotools'."""
    gt = make_gt(seed=3, n_images=10)
    ev = _random_predictions(gt, seed=4, backend=backend)
    results = json.loads(ev.write_results(tmp_path / "dets.json").read_text())
    metrics = evaluate_predictions(gt, results, ("bbox", "segm"), backend=backend, recall=True)
    for iou_type in ("bbox", "segm"):
        stats = _pycocotools_stats(gt, results, iou_type)
        assert 0.05 < stats[8] < 0.95  # AR100 non-trivial
        for key, ref in zip(STATS, stats, strict=True):
            got = metrics[iou_type][key]
            assert (got is None) if ref == -1 else abs(got / 100 - ref) < 1e-9, (iou_type, key, got, ref)


def test_mask_results_load_as_pycocotools_loadres_does() -> None:
    """The bulk load of mask results gives each record what loadRes gives it: area, box, id, iscrowd."""
    from scratchlab.evaluation.ground_truth import load_coco_gt
    from scratchlab.evaluation.results import detections_for, load_results

    gt = make_gt(seed=5, n_images=10)
    results = _random_predictions(gt, seed=6, backend="faster_coco_eval")._predictions
    fast = load_results(load_coco_gt(gt), detections_for("segm", results), "faster_coco_eval")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        reference = coco_gt.loadRes(detections_for("segm", results))
    assert sorted(fast.anns) == sorted(reference.anns) and len(fast.anns) > 20
    for i, ref in reference.anns.items():
        ann = fast.anns[i]
        assert ann["area"] == ref["area"] and ann["iscrowd"] == ref["iscrowd"] == 0
        assert ann["bbox"] == pytest.approx(list(ref["bbox"]))
        assert ann["segmentation"] == ref["segmentation"] and ann["score"] == ref["score"]


def test_boolean_masks_give_the_records_of_their_probabilities() -> None:
    """Masks thresholded before the evaluator (bool, any memory layout) encode as probabilities do."""
    gt = make_gt(seed=7)
    image = gt["images"][0]
    preds = [
        (a["segmentation"][0], 0.9, a["category_id"])
        for a in gt["annotations"]
        if a["image_id"] == image["id"]
    ]
    output = _output(image, preds)
    probabilities = output["masks"] * torch.linspace(0.3, 1.0, image["width"])  # some pixels <= 0.5
    column_major = torch.from_numpy(np.asfortranarray((probabilities[:, 0] > 0.5).permute(1, 2, 0).numpy()))
    for masks in (probabilities > 0.5, column_major.permute(2, 0, 1)[:, None]):
        assert instances_to_coco_results(image["id"], {**output, "masks": masks}, LABEL_TO_CAT) == (
            instances_to_coco_results(image["id"], {**output, "masks": probabilities}, LABEL_TO_CAT)
        )


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
def test_empty_predictions_give_zero_ap(backend: str) -> None:
    gt = make_gt()
    metrics = _run(gt, lambda ann: [], backend=backend).evaluate()
    for iou_type in ("bbox", "segm"):
        for key in ("AP", "AP50", "AP75", "APs", "APm"):
            assert metrics[iou_type][key] == 0.0, (iou_type, key)
    # Standalone, with no records at all.
    assert evaluate_predictions(gt, [], ["bbox"], backend=backend)["bbox"]["AP"] == 0.0


def test_outputs_without_masks_evaluate_bbox_only() -> None:
    metrics = _run(make_gt(), _perfect, masks=False).evaluate()
    assert set(metrics) == {"bbox"}
    assert metrics["bbox"]["AP"] == pytest.approx(100.0)


@pytest.mark.parametrize("mapping", [LABEL_TO_CAT, {1: 3, 2: 7, 3: 11}])
def test_label_mapping_gives_coco_category_ids(mapping, tmp_path) -> None:
    gt = make_gt()
    image = gt["images"][0]
    poly = _polygon(0, 2, 2, 12, 12)
    out = _output(image, [(poly, 0.9, 3), (poly, 0.8, 7), (poly, 0.7, 11)])
    assert out["labels"].tolist() == [1, 2, 3]
    ev = COCOEvaluator(gt, label_to_category_id=mapping)
    ev.process([{"image_id": image["id"]}], [out])
    records = json.loads(ev.write_results(tmp_path / "r.json").read_text())
    assert [r["category_id"] for r in records] == [3, 7, 11]
    assert records[0]["bbox"] == pytest.approx([2, 2, 12, 12])  # xyxy -> xywh
    rle = records[0]["segmentation"]
    assert (
        isinstance(rle["counts"], str)
        and mask_util.area(rle) == _raster(poly, image["height"], image["width"]).sum()
    )


def test_detections_of_a_category_the_ground_truth_lacks_are_left_out(tmp_path) -> None:
    """A model trained on a category the validation file does not list (id 5 here): nothing can score its
    detections, so they are left out and the other categories' AP is what it would be without them."""
    gt = make_gt()
    images = gt["images"][:2]
    outputs = [
        _output(
            img,
            [
                (a["segmentation"][0], 0.9, a["category_id"])
                for a in gt["annotations"]
                if a["image_id"] == img["id"]
            ],
        )
        for img in images
    ]
    targets = [{"image_id": img["id"]} for img in images]
    alone = COCOEvaluator(gt, label_to_category_id=LABEL_TO_CAT)
    alone.process(targets, outputs)
    extra = COCOEvaluator(gt, label_to_category_id=[*LABEL_TO_CAT, 5], output_file=tmp_path / "d.json")
    stray = {
        "boxes": torch.tensor([[1.0, 1.0, 9.0, 9.0]]),
        "scores": torch.tensor([0.99]),
        "labels": torch.tensor([4]),
    }
    stray["masks"] = torch.ones(1, 1, images[0]["height"], images[0]["width"])
    with_stray = {k: torch.cat([outputs[0][k], stray[k]]) for k in stray}
    extra.process(targets, [with_stray, outputs[1]])
    assert extra.evaluate() == alone.evaluate()
    assert 5 not in {r["category_id"] for r in json.loads((tmp_path / "d.json").read_text())}


def test_bad_labels_and_ids_are_clear_errors() -> None:
    gt = make_gt()
    image = gt["images"][0]
    out = _output(image, [(_polygon(0, 2, 2, 12, 12), 0.9, 3)])
    with pytest.raises(ValueError, match="category id 1 not in the GT"):  # identity mapping: label 1 -> id 1
        COCOEvaluator(gt).process([{"image_id": image["id"]}], [out])
    with pytest.raises(ValueError, match=r"label 1 has no entry"):
        instances_to_coco_results(image["id"], out, {2: 7})
    with pytest.raises(ValueError, match=r"ids \[4, 5\], none of them in the ground truth"):
        COCOEvaluator(gt, label_to_category_id=[5, 4])
    with pytest.raises(ValueError, match="image_id 999"):
        COCOEvaluator(gt, label_to_category_id=LABEL_TO_CAT).process([{"image_id": 999}], [out])
    with pytest.raises(ValueError, match=r"result #0: image_id 999"):
        evaluate_predictions(gt, [{"image_id": 999, "category_id": 3, "bbox": [0, 0, 4, 4], "score": 1.0}])
    good = {"image_id": image["id"], "category_id": 3, "bbox": [0, 0, 4, 4], "score": 1.0}
    with pytest.raises(ValueError, match=r"result #1: image_id None"):
        evaluate_predictions(gt, [good, {"category_id": 3, "bbox": [0, 0, 4, 4], "score": 1.0}], ("bbox",))
    with pytest.raises(ValueError, match=r"segm evaluation: result #0 .* has no segmentation"):
        evaluate_predictions(gt, [good], ("segm",))
    with pytest.raises(ValueError, match=r"segm evaluation: result #0 .* has no segmentation RLE"):
        evaluate_predictions(gt, [{**good, "segmentation": [[0, 0, 4, 0, 4, 4]]}], ("segm",))
    broken = make_gt()
    del broken["annotations"][1]["bbox"]
    with pytest.raises(ValueError, match=r"annotations\[1\] \(id 2\) lacks \['bbox'\]"):
        COCOEvaluator(broken)


def test_missing_gt_file_is_named(tmp_path) -> None:
    with pytest.raises(ValueError, match="nope.json"):
        COCOEvaluator(tmp_path / "nope.json")


def test_gt_json_path_and_per_category_ap(tmp_path) -> None:
    gt = make_gt()
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    # Every category but "wedge" (id 11) is predicted perfectly.
    ev = _run(gt, lambda a: _perfect(a) if a["category_id"] != 11 else [], source=path, per_category=True)
    m = ev.evaluate()["bbox"]
    assert m["AP-rect"] == pytest.approx(100.0) and m["AP-tri"] == pytest.approx(100.0)
    assert m["AP-wedge"] == 0.0
    assert m["AP"] == pytest.approx(200 / 3)  # the mean over the three categories


def test_max_dets_limits_detections_per_image() -> None:
    gt = make_gt()
    counts = {}
    for a in gt["annotations"]:
        counts[a["image_id"], a["category_id"]] = counts.get((a["image_id"], a["category_id"]), 0) + 1
    assert max(counts.values()) >= 2  # some image has two objects of one class
    assert _run(gt, _perfect, max_dets=1).evaluate()["bbox"]["AP"] < 100.0


def test_only_processed_images_are_evaluated_and_reset_clears_state() -> None:
    gt = make_gt()
    ev = COCOEvaluator(gt, label_to_category_id=LABEL_TO_CAT)
    first = gt["images"][0]
    anns = [a for a in gt["annotations"] if a["image_id"] == first["id"]]
    ev.process([{"image_id": first["id"]}], [_output(first, [p for a in anns for p in _perfect(a)])])
    # The other images' GT does not count as missed: only the processed image is evaluated.
    assert ev.evaluate()["segm"]["AP50"] == pytest.approx(100.0)
    ev.reset()
    assert ev.evaluate() == {} and ev._gather() == ([], [])
    ev.process([{"image_id": first["id"]}], [_output(first, [])])
    assert ev.evaluate()["bbox"]["AP"] == 0.0


def test_precision_recall_curve_of_a_perfect_detection_is_flat_at_one():
    from scratchlab.evaluation import precision_recall_curves

    gt = {
        "images": [{"id": 1, "height": 50, "width": 50}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 4, "name": "dog"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [5, 5, 20, 20], "area": 400}],
    }
    dets = [{"image_id": 1, "category_id": 3, "bbox": [5, 5, 20, 20], "score": 0.9}]
    for backend in ("faster_coco_eval", "pycocotools"):
        curves = precision_recall_curves(gt, dets, "bbox", 0.5, backend=backend)
        assert list(curves) == ["cat"], "dog has no ground truth: no curve"
        assert len(curves["cat"]["recall"]) == 101 and min(curves["cat"]["precision"]) == pytest.approx(1.0)
