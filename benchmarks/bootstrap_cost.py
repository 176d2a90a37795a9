"""Time the study's paired bootstrap at the demo's size: 100 validation images, 5 arms, 500 resamples.

    .venv/bin/python benchmarks/bootstrap_cost.py [--images 100] [--arms 5] [--resamples 500]

The validation set is the mini recipe's generator (configs/mini/mask_rcnn_gn_scratch.yaml's data.synth);
each arm's detections are its ground-truth boxes moved by a few pixels (a different amount per arm) plus
false positives, 50 per image in all (the mini recipe's detections_per_img), with box-shaped masks (RLE, as the engine writes them). It
reports the one-off per-image evaluation, the bootstrap itself (bbox and segm) and the JSON size that
study.json keeps per arm.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import pycocotools.mask as mask_util

from scratchlab.data.synth import make_synth_detection
from scratchlab.evaluation.bootstrap import bootstrap_ap, per_image_eval, resample_indices


def _detections(gt: dict, jitter: float, seed: int, per_image: int = 50) -> list[dict]:
    rng = np.random.default_rng(seed)
    cats = [c["id"] for c in gt["categories"]]
    by_image: dict[int, list[dict]] = {img["id"]: [] for img in gt["images"]}
    for a in gt["annotations"]:
        x, y, w, h = (float(v) for v in np.asarray(a["bbox"]) + rng.normal(0, jitter, 4))
        by_image[a["image_id"]].append(
            {
                "category_id": a["category_id"],
                "bbox": [x, y, max(w, 2), max(h, 2)],
                "score": float(rng.uniform(0.4, 1)),
            }
        )
    out = []
    for img in gt["images"]:
        dets = by_image[img["id"]]
        while len(dets) < per_image:
            x, y = float(rng.uniform(0, img["width"] * 0.7)), float(rng.uniform(0, img["height"] * 0.7))
            dets.append(
                {
                    "category_id": int(rng.choice(cats)),
                    "bbox": [x, y, *rng.uniform(8, 40, 2).tolist()],
                    "score": float(rng.uniform(0, 0.5)),
                }
            )
        for d in dets:
            x, y, w, h = d["bbox"]
            rle = mask_util.merge(
                mask_util.frPyObjects([[x, y, x + w, y, x + w, y + h, x, y + h]], img["height"], img["width"])
            )
            d["segmentation"] = {
                "size": rle["size"],
                "counts": rle["counts"].decode(),
            }  # as the engine writes
            out.append({"image_id": img["id"], **d})
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--arms", type=int, default=5)
    p.add_argument("--resamples", type=int, default=500)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as root:
        make_synth_detection(
            root,
            num_train=1,
            num_val=a.images,
            image_size=128,
            seed=0,
            min_object_size=0.25,
            max_objects=3,
            object_textures=["solid", "gradient"],
        )
        gt = json.loads(open(f"{root}/annotations/instances_val.json").read())
    arms = [_detections(gt, 1.0 + 2 * k, seed=k) for k in range(a.arms)]
    indices = resample_indices(a.images, a.resamples, seed=0)
    for task in ("bbox", "segm"):
        t0 = time.perf_counter()
        data = [per_image_eval(gt, dets, task) for dets in arms]
        t1 = time.perf_counter()
        samples = [bootstrap_ap(d, indices) for d in data]
        t2 = time.perf_counter()
        size = np.mean([len(json.dumps(d, separators=(",", ":"))) for d in data])
        aps = ", ".join(f"{np.nanmean(s['AP']):.1f}" for s in samples)
        print(
            f"{task}: per-image evaluation {t1 - t0:.2f} s for {a.arms} arms; bootstrap {t2 - t1:.2f} s "
            f"({a.arms} arms x {a.resamples} resamples x {a.images} images); {size / 1024:.0f} KiB per arm "
            f"in study.json; mean resampled AP per arm: {aps}"
        )


if __name__ == "__main__":
    main()
