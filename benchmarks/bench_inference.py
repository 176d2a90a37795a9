"""Row 5 of ``make bench``: inference images/s at batch 1 on the CPU, mini and full-size Mask R-CNN.

    python benchmarks/bench_inference.py [--repeats N] [--mini-images 10] [--full-images 1]

Each model is built by scratchlab's ``build_model`` from its recipe with random weights
(configs/mini/mask_rcnn_gn_scratch.yaml, 96-160 px test size, 10 detections per image; and
configs/coco/mask_rcnn_R50_FPN_gn_scratch_3x.yaml, 800-1333 px, 100 detections per image, 80 classes)
and runs in eval mode under ``torch.no_grad`` on 640x480 photographs' worth of random pixels, one image
per call. ``model.roi_box_head.score_thresh=0`` keeps each model's full ``detections_per_img`` (random
weights score every class about equally, below the recipe's 0.05 for 80 classes), so the mask head
and mask pasting do the work a trained model's full detection list asks for. Rows: the plain model call
(torchvision pastes float masks) and the path ``scratchlab predict`` and evaluation take
(``engine.inference.binary_mask_paste``: binary masks, already in RLE layout). After one warm-up call,
each repeat times ``--*-images`` calls; images/s is per repeat.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a clean clone without installing

from scratchlab.config import load_config  # noqa: E402
from scratchlab.engine.inference import binary_mask_paste  # noqa: E402
from scratchlab.models import build_model  # noqa: E402

REPEATS_ENV = "SCRATCHLAB_BENCH_REPEATS"  # make bench --repeats N
# (name, recipe, classes, the option giving its image count, predict path only)
MODELS = (
    (
        "mini Mask R-CNN (R18 x0.5, GN)",
        ROOT / "configs" / "mini" / "mask_rcnn_gn_scratch.yaml",
        3,
        "mini_images",
        False,
    ),
    (
        "R50-FPN GN-all Mask R-CNN",
        ROOT / "configs" / "coco" / "mask_rcnn_R50_FPN_gn_scratch_3x.yaml",
        80,
        "full_images",
        True,
    ),
)


def images_per_second(
    model: torch.nn.Module, images: list[torch.Tensor], repeats: int, binary: bool
) -> tuple[list[float], int]:
    """(images/s over ``images`` in each repeat, detections on the last image), one image per call,
    after one warm-up call."""
    paste = binary_mask_paste(model) if binary else contextlib.nullcontext()
    rates = []
    with torch.no_grad(), paste:
        model([images[0]])
        for _ in range(repeats):
            t0 = time.perf_counter()
            for img in images:
                out = model([img])[0]
            rates.append(len(images) / (time.perf_counter() - t0))
    return rates, len(out["boxes"])


def measure(config: Path, n_classes: int, n_images: int, repeats: int, binary_only: bool) -> list[list]:
    cfg = load_config(config, ["model.roi_box_head.score_thresh=0"])
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=n_classes).eval()
    images = [torch.rand(3, 480, 640, generator=torch.Generator().manual_seed(i)) for i in range(n_images)]
    size = f"{cfg.input.min_size_test}-{cfg.input.max_size_test} px"
    rows = []
    for binary in (False, True)[binary_only:]:
        rates, dets = images_per_second(model, images, repeats, binary)
        path = "predict / evaluation path (binary paste)" if binary else "model call (torchvision paste)"
        rows.append([path, size, dets, statistics.median(rates), min(rates), max(rates)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=int(os.environ.get(REPEATS_ENV) or 3))
    parser.add_argument("--mini-images", type=int, default=10)
    parser.add_argument("--full-images", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for name, config, n_classes, count, binary_only in MODELS:
        print(f"[bench_inference] {name}", file=sys.stderr, flush=True)
        rows += [
            [name, *r] for r in measure(config, n_classes, getattr(args, count), args.repeats, binary_only)
        ]
    notes = [
        f"CPU, batch 1, 640x480 random-pixel images, random weights, score_thresh 0; {args.repeats} repeats of "
        f"{args.mini_images} (mini) / {args.full_images} (full-size) images after one warm-up call.",
        "The full-size row runs the predict path only (the plain call differs by mask pasting alone, which "
        "the mini rows and benchmarks/bench_eval.py measure), to keep the script near two minutes on 2 cores.",
        f"torch threads: {torch.get_num_threads()}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}.",
    ]
    command = "python benchmarks/bench_inference.py" + "".join(f" {a}" for a in sys.argv[1:])
    columns = ["model", "path", "test size", "detections / image", "images/s (median)", "min", "max"]
    title = "5. Inference images/s at batch 1 on CPU"
    print(json.dumps({"title": title, "command": command, "columns": columns, "rows": rows, "notes": notes}))


if __name__ == "__main__":
    main()
