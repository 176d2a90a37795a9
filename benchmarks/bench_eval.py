"""Row 3 of ``make bench``: scratchlab's COCO evaluation against plain pycocotools, and where the time of
a whole ``inference_on_dataset`` pass goes.

    python benchmarks/bench_eval.py [--repeats N] [--images 200] [--per-image 50] [--profile-images 12]
                                    [--part both|eval|profile] [--profile-data synth|raccoon]

Part 1 (speed and agreement). A COCO ground truth is made here: ``--images`` images of COCO-like sizes,
1-9 star-shaped polygon objects each over 5 categories (sizes spread over COCO's small/medium/large), a
few crowd regions (RLE). The detections are what a detector gives: most objects found once (the
polygon moved, scaled and its vertices shaken; the box a few pixels off the mask's), some twice, some
missed, plus false positives up to ``--per-image`` per image, each with an RLE mask (``counts`` a str,
as scratchlab writes them). Both sides start from the loaded ground truth and the list of result
records: pycocotools runs ``loadRes`` + ``COCOeval`` ``evaluate``/``accumulate``/``summarize`` per IoU
type; scratchlab runs :func:`scratchlab.evaluation.evaluate_predictions` (what ``COCOEvaluator.evaluate``
calls). The two run interleaved, once per repeat; the ratio of each repeat is pycocotools' time over
scratchlab's. scratchlab prepares the ground truth for mask evaluation once per loaded ground truth (as
a training run's COCOEvaluator, which evaluates the same ground truth every eval period): the
repeats reuse it, and two rows give that one-off cost (timed on a freshly loaded copy each repeat) and
the ratio of a first evaluation that pays it. |dAP| is the largest difference over the 12 COCO stats (AP, AP50, AP75, APs, APm, APl,
AR1, AR10, AR100, ARs, ARm, ARl), in AP points (percent).

Part 2 (profile). The mini recipe (configs/mini/mask_rcnn_gn_scratch.yaml, random init, every detection
kept) over ``--profile-images`` generated 1024 px validation images (the recipe tests at 96-160 px, so
like the raccoon photographs the masks are pasted at a much larger size than the model sees). Timers sit
on the seams (the methods are wrapped for the pass; nothing else changes): image loading, the model
(pre-processing, backbone, RPN, RoI heads, post-processing with mask pasting), the evaluator's
``process`` (mask to RLE) and ``evaluate``. Shares are of the pass's wall time. ``--profile-data
raccoon`` profiles the mini Faster R-CNN on the raccoon photographs instead (../shared/data/raccoon;
box-only, so no masks).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import inspect
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.coco
import pycocotools.cocoeval
import pycocotools.mask as mask_util

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a clean clone without installing

from scratchlab.evaluation import evaluate_predictions, load_coco_gt  # noqa: E402

try:  # the ground truth prepared once per loaded GT for mask evaluation (absent in older trees)
    from scratchlab.evaluation.mask_eval import prepared_mask_gt  # noqa: E402
except ImportError:
    prepared_mask_gt = None

REPEATS_ENV = "SCRATCHLAB_BENCH_REPEATS"  # make bench --repeats N
SIZES = [(480, 640), (640, 480), (427, 640), (640, 427), (512, 512), (375, 500)]  # COCO-like (h, w)
STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
N_CATEGORIES = 5
# A scratchlab from before ``recall=`` (run for before/after figures) gives the 6 AP stats only.
HAS_RECALL = "recall" in inspect.signature(evaluate_predictions).parameters


def _star(rng: np.random.Generator, cx: float, cy: float, radius: float, n: int = 16) -> np.ndarray:
    """A star-shaped polygon [n, 2] around (cx, cy)."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.55, 1.0, n)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)


def _rle(polygon: np.ndarray, h: int, w: int) -> dict[str, Any]:
    return mask_util.merge(mask_util.frPyObjects([polygon.ravel().tolist()], h, w))


def _radius(rng: np.random.Generator) -> float:
    return float(np.exp(rng.uniform(np.log(4), np.log(160))))  # areas from ~30 to ~50k px: s, m and l


def make_ground_truth(n_images: int, seed: int) -> tuple[dict[str, Any], dict[int, list]]:
    """A COCO instances dict, and per image the (polygon, category) of each non-crowd object."""
    rng = np.random.default_rng(seed)
    images, anns, objects = [], [], defaultdict(list)
    for image_id in range(1, n_images + 1):
        h, w = SIZES[image_id % len(SIZES)]
        images.append({"id": image_id, "height": h, "width": w, "file_name": f"{image_id:06d}.jpg"})
        for k in range(int(rng.integers(1, 10))):
            r = _radius(rng)
            poly = _star(rng, rng.uniform(0, w), rng.uniform(0, h), r)
            rle, cat = _rle(poly, h, w), int(rng.integers(1, N_CATEGORIES + 1))
            if not mask_util.area(rle):
                continue
            crowd = k == 0 and image_id % 25 == 0  # a few crowd regions, stored as RLE (as COCO does)
            seg = (
                {"size": rle["size"], "counts": rle["counts"].decode()} if crowd else [poly.ravel().tolist()]
            )
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "segmentation": seg,
                    "area": float(mask_util.area(rle)),
                    "bbox": mask_util.toBbox(rle).tolist(),
                    "iscrowd": int(crowd),
                }
            )
            if not crowd:
                objects[image_id].append((poly, cat))
    categories = [{"id": c, "name": f"class{c}"} for c in range(1, N_CATEGORIES + 1)]
    return {"images": images, "annotations": anns, "categories": categories}, objects


def make_detections(gt: dict[str, Any], objects: dict[int, list], per_image: int, seed: int) -> list[dict]:
    """Detector-like COCO results: jittered true positives, duplicates, misses and false positives."""
    rng = np.random.default_rng(seed)
    results = []
    for img in gt["images"]:
        h, w = img["height"], img["width"]
        found = []
        for poly, cat in objects[img["id"]]:
            for _ in range(int(rng.choice([0, 1, 1, 1, 1, 1, 2]))):  # missed, found, found twice
                size = np.ptp(poly, 0).mean()
                moved = (poly - poly.mean(0)) * rng.uniform(0.85, 1.15) + poly.mean(0)
                moved = moved + rng.normal(0, 0.06 * size, 2) + rng.normal(0, 0.03 * size, poly.shape)
                found.append((moved, cat, float(rng.beta(4, 2))))
        while len(found) < per_image:
            poly = _star(rng, rng.uniform(0, w), rng.uniform(0, h), _radius(rng))
            found.append((poly, int(rng.integers(1, N_CATEGORIES + 1)), float(rng.beta(1.5, 4))))
        for poly, cat, score in found[:per_image]:
            rle = _rle(poly, h, w)
            box = mask_util.toBbox(rle) + rng.normal(0, 1.5, 4)
            results.append(
                {
                    "image_id": img["id"],
                    "category_id": cat,
                    "bbox": [float(v) for v in box[:2]] + [float(max(v, 1.0)) for v in box[2:]],
                    "score": score,
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                }
            )
    return results


def pycocotools_stats(gt: Any, results: list[dict], iou_type: str) -> np.ndarray:
    """Plain pycocotools, as its README runs it: loadRes, evaluate, accumulate, summarize."""
    dts = [dict(r) for r in results]  # loadRes writes into the records
    if iou_type == "segm":
        for r in dts:
            r.pop("bbox")  # else loadRes takes the box area as the instance area
    with contextlib.redirect_stdout(io.StringIO()):
        ev = pycocotools.cocoeval.COCOeval(gt, gt.loadRes(dts), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats) * 100


def scratchlab_stats(gt: Any, results: list[dict], iou_type: str) -> np.ndarray:
    recall = {"recall": True} if HAS_RECALL else {}
    metrics = evaluate_predictions(gt, results, (iou_type,), **recall)[iou_type]
    return np.array([np.nan if metrics.get(k) is None else metrics[k] for k in STATS])


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def compare(n_images: int, per_image: int, repeats: int) -> tuple[list[list[Any]], int]:
    gt_dict, objects = make_ground_truth(n_images, seed=0)
    results = make_detections(gt_dict, objects, per_image, seed=1)
    with contextlib.redirect_stdout(io.StringIO()):
        py_gt = pycocotools.coco.COCO()
        py_gt.dataset = copy.deepcopy(gt_dict)
        py_gt.createIndex()
    ours_gt = load_coco_gt(gt_dict, require_segm=True)
    times: dict[tuple[str, str], list[float]] = defaultdict(list)  # (iou type, side) -> seconds per repeat
    if prepared_mask_gt is not None:
        # As in a run: COCOEvaluator loads the ground truth once and evaluates it every eval period; the
        # first segm evaluation prepares it (timed on its own below), the later ones reuse that.
        prepared_mask_gt(ours_gt)
    diff = {"bbox": 0.0, "segm": 0.0}
    for _ in range(repeats):
        if prepared_mask_gt is not None:
            fresh = load_coco_gt(gt_dict, require_segm=True)
            times["segm prep", "scratchlab"].append(_timed(lambda g=fresh: prepared_mask_gt(g))[0])
        for iou_type in diff:
            t_py, s_py = _timed(lambda t=iou_type: pycocotools_stats(py_gt, results, t))
            t_ours, s_ours = _timed(lambda t=iou_type: scratchlab_stats(ours_gt, results, t))
            times[iou_type, "pycocotools"].append(t_py)
            times[iou_type, "scratchlab"].append(t_ours)
            s_py = np.where(s_py < 0, np.nan, s_py)  # COCOeval's -1: nothing to measure (None here)
            if not HAS_RECALL:
                s_py[6:] = np.nan
            if not np.array_equal(np.isnan(s_py), np.isnan(s_ours)):
                raise AssertionError(f"{iou_type}: stats defined differently: {s_py} vs {s_ours}")
            diff[iou_type] = max(diff[iou_type], float(np.nanmax(np.abs(s_py - s_ours))))
    for side in ("pycocotools", "scratchlab"):  # both types: what COCOEvaluator.evaluate runs
        times["bbox + segm", side] = [
            a + b for a, b in zip(times["bbox", side], times["segm", side], strict=True)
        ]
    diff["bbox + segm"] = max(diff.values())
    rows = []
    for what in diff:
        theirs, ours = times[what, "pycocotools"], times[what, "scratchlab"]
        ratios = [t / o for t, o in zip(theirs, ours, strict=True)]
        row = [f"{what}: pycocotools / scratchlab time", *_spread(ratios), statistics.median(theirs)]
        rows.append([*row, statistics.median(ours), diff[what]])
    if prepared_mask_gt is not None:
        prep = times["segm prep", "scratchlab"]
        theirs, ours = times["segm", "pycocotools"], times["segm", "scratchlab"]
        first = [t / (o + p) for t, o, p in zip(theirs, ours, prep, strict=True)]
        rows.append(
            ["segm: one-off ground-truth preparation per loaded GT, s", *_spread(prep), None, None, None]
        )
        rows.append(
            [
                "segm, first evaluation of a loaded GT (preparation included): pycocotools / scratchlab time",
                *_spread(first),
                statistics.median(theirs),
                statistics.median([o + p for o, p in zip(ours, prep, strict=True)]),
                diff["segm"],
            ]
        )
    return rows, len(results)


class _Timers:
    """Seconds spent in each wrapped callable during a pass (nested seams are subtracted below)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        """Time ``owner.name`` under ``label`` until :meth:`restore` (an attribute on the instance or
        module; a module-level function is looked up there by its callers, so wrapping it works)."""
        original = getattr(owner, name)
        had_own = not isinstance(owner, type(sys)) and name in vars(owner)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t0

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original) if had_own or isinstance(owner, type(sys))
                          else delattr(owner, name))  # fmt: skip

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()


class _TimedDataset:
    """``dataset`` with each item's loading timed (a Dataset's ``[]`` cannot be wrapped on the instance)."""

    def __init__(self, dataset: Any, timers: _Timers) -> None:
        self.dataset, self.timers = dataset, timers

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        t0 = time.perf_counter()
        try:
            return self.dataset[i]
        finally:
            self.timers.seconds["image loading"] += time.perf_counter() - t0


# (label, timer, timers whose time is inside it and not its own): the seams nest; the model's forward
# holds the others, and what is left of it is torchvision's post-processing (boxes to the image size).
MODEL = "model forward"
SEAMS = (
    ("image loading", "image loading", ()),
    ("pre-processing (normalize, resize, batch)", "transform", ()),
    ("backbone + FPN", "backbone", ()),
    ("RPN", "rpn", ()),
    ("RoI heads (boxes, NMS, mask head)", "roi_heads", ()),
    ("mask pasting", "mask pasting", ()),
    (
        "post-processing (boxes to image size)",
        MODEL,
        ("transform", "backbone", "rpn", "roi_heads", "mask pasting"),
    ),
    ("evaluator.process (to COCO records)", "process", ("RLE encoding",)),
    ("RLE encoding", "RLE encoding", ()),
    ("evaluator.evaluate (COCO AP)", "evaluate", ()),
)


RACCOON = ROOT.parent / "shared" / "data" / "raccoon"  # VOC boxes; 1280x1024-ish photographs


def _profile_data(data: str, n_images: int, folder: Path) -> tuple[Path, list[str]]:
    """(recipe, data.val_* overrides) for the profile: generated 1024 px images for the mini Mask R-CNN,
    or the raccoon photographs (box-only) for the mini Faster R-CNN."""
    from scratchlab.data.convert import convert_dataset
    from scratchlab.data.synth import make_synth_detection

    if data == "raccoon":
        if not (folder / "annotations").is_dir():
            convert_dataset("voc", RACCOON, folder, split=0.2)
        recipe, images = ROOT / "configs" / "mini" / "faster_rcnn_gn_scratch.yaml", RACCOON / "images"
    else:
        if not (folder / "annotations").is_dir():
            make_synth_detection(folder, 1, n_images, 1024, seed=0, min_object_size=0.25, max_objects=3)
        recipe, images = ROOT / "configs" / "mini" / "mask_rcnn_gn_scratch.yaml", folder / "val"
    return recipe, [
        f"data.val_json={folder / 'annotations' / 'instances_val.json'}",
        f"data.val_images={images}",
    ]


def profile_pass(data: str, n_images: int, folder: Path) -> tuple[float, dict[str, float]]:
    """One timed ``inference_on_dataset`` pass over ``n_images`` of ``data``: (seconds, each seam's share)."""
    import torch
    import torchvision.models.detection.transform as tv_transform

    import scratchlab.engine.inference as inference
    import scratchlab.evaluation.coco_evaluator as coco_evaluator
    from scratchlab.config import load_config
    from scratchlab.engine.categories import category_ids
    from scratchlab.engine.data import build_val_set
    from scratchlab.models import build_model

    recipe, keys = _profile_data(data, n_images, folder)
    cfg = load_config(recipe, [*keys, "model.roi_box_head.score_thresh=0"])
    val_set = build_val_set(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=val_set.num_classes).eval()
    evaluator = inference.coco_evaluator(cfg, val_set, category_ids(val_set.categories))
    timers = _Timers()
    images = torch.utils.data.Subset(_TimedDataset(val_set, timers), range(min(n_images, len(val_set))))
    timers.wrap(model, "forward", MODEL)
    for part in ("transform", "backbone", "rpn", "roi_heads"):
        timers.wrap(getattr(model, part), "forward", part)
    for module, name in ((inference, "paste_masks_binary"), (tv_transform, "paste_masks_in_image")):
        if hasattr(module, name):  # scratchlab's binary paste, or torchvision's where the model pastes
            timers.wrap(module, name, "mask pasting")
    timers.wrap(evaluator, "process", "process")
    timers.wrap(coco_evaluator.mask_util, "encode", "RLE encoding")
    timers.wrap(evaluator, "evaluate", "evaluate")
    try:
        t0 = time.perf_counter()
        inference.inference_on_dataset(model, images, evaluator, torch.device("cpu"))
        total = time.perf_counter() - t0
    finally:
        timers.restore()
    t = timers.seconds
    own = {label: t[timer] - sum(t[i] for i in inner) for label, timer, inner in SEAMS}
    own["other (loop, moving outputs)"] = total - sum(own.values())
    return total, {label: 100 * s / total for label, s in own.items()}


def profile(data: str, n_images: int, repeats: int) -> list[list[Any]]:
    totals, shares = [], defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            total, share = profile_pass(data, n_images, Path(tmp))
            totals.append(total / n_images)
            for label, v in share.items():
                shares[label].append(v)
    rows = [["inference_on_dataset: s per image", *_spread(totals), None, None, None]]
    return rows + [[f"  share: {label} (%)", *_spread(v), None, None, None] for label, v in shares.items()]


def _spread(values: list[float]) -> list[float]:
    return [statistics.median(values), min(values), max(values)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=int(os.environ.get(REPEATS_ENV) or 5))
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--per-image", type=int, default=50)
    parser.add_argument("--profile-images", type=int, default=12)
    parser.add_argument("--part", choices=("both", "eval", "profile"), default="both")
    parser.add_argument("--profile-data", choices=("synth", "raccoon"), default="synth")
    args = parser.parse_args()
    rows, notes = [], []
    if args.part != "profile":
        eval_rows, n_dets = compare(args.images, args.per_image, args.repeats)
        rows += eval_rows
        notes.append(
            f"Evaluation rows: {n_dets} detections with RLE masks on {args.images} images ({args.per_image} "
            "per image; synthetic COCO-like ground truth made by the script), pycocotools loadRes + "
            "evaluate + accumulate + summarize against scratchlab.evaluation.evaluate_predictions, "
            f"interleaved, {args.repeats} repeats; ratio = pycocotools time / scratchlab time per repeat."
        )
    if args.part != "eval":
        rows += profile(args.profile_data, args.profile_images, max(1, args.repeats // 2))
        what = (
            "raccoon photographs (../shared/data/raccoon, VOC converted), mini Faster R-CNN"
            if args.profile_data == "raccoon"
            else "generated 1024 px images, mini Mask R-CNN"
        )
        notes.append(
            f"Profile rows: inference_on_dataset over {args.profile_images} {what} (random init, score_thresh "
            "0: 10 detections per image), batch 2, CPU; each seam's own time (nested seams subtracted) as a "
            "share of the pass."
        )
    notes.append(
        f"torch threads: {_threads()}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}."
    )
    command = "python benchmarks/bench_eval.py" + "".join(f" {a}" for a in sys.argv[1:])
    columns = [
        "measure",
        "median",
        "min",
        "max",
        "pycocotools s (median)",
        "scratchlab s (median)",
        "max |dAP| (AP points, 12 stats)",
    ]
    print(
        json.dumps(
            {
                "title": "3. Evaluation: scratchlab vs pycocotools COCOeval, and where an evaluation pass goes",
                "command": command,
                "columns": columns,
                "rows": rows,
                "notes": notes,
            }
        )
    )


def _threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    main()
