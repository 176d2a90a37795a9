"""How often the study's 95% bootstrap intervals contain the true AP: a coverage check of the interval
kinds the paired bootstrap could report (percentile, basic, bias-corrected percentile).

A "population" of hand-made validation images with detections of two detectors (A: boxes jittered by
``--jitter`` px, B: by ``--jitter-b``; better-placed boxes score higher; 30% of objects missed; two false
positives per image) is evaluated once with faster-coco-eval (``per_image_eval``). Its AP over all images
is the truth. Each trial draws ``--val`` images from it, as a study's validation set, and builds the
intervals from ``--resamples`` paired resamples, as the study does: for A's AP and for the difference
A - B. Prints the share of trials whose interval contains the truth (nominal 0.95) and the mean bootstrap
bias (mean over resamples minus the estimate on the drawn set).

    .venv/bin/python benchmarks/bootstrap_coverage.py --trials 400
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from scratchlab.evaluation.bootstrap import ap_on_images, bootstrap_ap, per_image_eval
from scratchlab.study.stats import bias_corrected_interval, percentile_interval


def population(n_images: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "width": 100, "height": 100})
        for _ in range(1 + i % 3):
            x, y, w, h = *rng.uniform(0, 50, 2), *rng.uniform(15, 45, 2)
            anns.append(
                {"id": len(anns) + 1, "image_id": i, "category_id": 1 + i % 2, "bbox": [x, y, w, h]}
                | {"area": w * h, "iscrowd": 0}
            )
    cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    return {"images": images, "annotations": anns, "categories": cats}


def detections(gt: dict, jitter: float, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for a in gt["annotations"]:
        if rng.uniform() < 0.3:
            continue
        quality = rng.uniform()
        box = np.asarray(a["bbox"]) + rng.normal(0, jitter * (1.5 - quality), 4)
        score = 0.7 * quality + 0.3 * rng.uniform()
        out.append(
            {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(box), "score": score}
        )
    for img in gt["images"]:
        for _ in range(2):
            x, y = rng.uniform(0, 70, 2)
            out.append(
                {"image_id": img["id"], "category_id": int(rng.integers(1, 3)), "bbox": [x, y, 25.0, 25.0]}
                | {"score": float(rng.uniform(0, 0.6))}
            )
    return out


def intervals(draws: np.ndarray, estimate: float) -> dict[str, tuple[float, float]]:
    low, high = percentile_interval(draws)
    return {
        "percentile": (low, high),
        "basic": (2 * estimate - high, 2 * estimate - low),
        "bias-corrected": bias_corrected_interval(draws, estimate),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--population", type=int, default=4000)
    p.add_argument("--val", type=int, default=200)
    p.add_argument("--resamples", type=int, default=300)
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--jitter", type=float, default=6.0)
    p.add_argument("--jitter-b", type=float, default=7.0)
    args = p.parse_args()
    gt = population(args.population)
    arms = [
        per_image_eval(gt, detections(gt, j, seed=s), "bbox")
        for s, j in ((1, args.jitter), (2, args.jitter_b))
    ]
    everything = np.arange(args.population)
    truth_a, truth_b = (ap_on_images(d, everything)["AP"] for d in arms)
    rng = np.random.default_rng(0)
    hits = {(q, k): 0 for q in ("AP of A", "A - B") for k in ("percentile", "basic", "bias-corrected")}
    bias, start = [], time.time()
    for _ in range(args.trials):
        val = rng.choice(args.population, args.val, replace=False)
        resamples = val[rng.integers(0, args.val, (args.resamples, args.val))]
        est = [ap_on_images(d, val)["AP"] for d in arms]
        draws = [bootstrap_ap(d, resamples)["AP"] for d in arms]
        bias.append(draws[0].mean() - est[0])
        for q, e, d, truth in (
            ("AP of A", est[0], draws[0], truth_a),
            ("A - B", est[0] - est[1], draws[0] - draws[1], truth_a - truth_b),
        ):
            for k, (low, high) in intervals(d, e).items():
                hits[q, k] += low <= truth <= high
    print(
        f"population {args.population} images: AP A {truth_a:.2f}, B {truth_b:.2f}; {args.trials} val sets of "
        f"{args.val}, {args.resamples} resamples each, {time.time() - start:.0f} s; "
        f"mean bootstrap bias of A's AP {np.mean(bias):+.3f}"
    )
    for (q, k), n in hits.items():
        print(f"coverage {q:8s} {k:15s} {n / args.trials:.3f}")


if __name__ == "__main__":
    main()
