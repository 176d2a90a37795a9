"""``scratchlab demo``: a miniature but honest pre-training-vs-scratch study on generated data.

It generates a detection set and a classification set, pre-trains once (classification backbone, and
stage 1 of direct detection pre-training), then trains five arms of the same mini GN-all Mask R-CNN:
random init at 1x and 3x, classification-pre-trained at 1x, direct pre-training at 1x, and a poorly
normalised (per-batch BN) scratch arm at 1x — and writes the report. Every number comes from those runs.
``--quick`` is the same study shrunk to a smoke test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .runner import run_study

__all__ = ["demo_study", "run_demo"]

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "mini"

ARMS = [
    {"name": "scratch_gn_1x", "init": "random", "norm": "GN", "schedule": 1},
    {"name": "scratch_gn_3x", "init": "random", "norm": "GN", "schedule": 3},
    {"name": "classify_gn_1x", "init": "classify", "norm": "GN", "schedule": 1},
    {"name": "direct_gn_1x", "init": "direct", "norm": "GN", "schedule": 1},
    {"name": "scratch_bn_1x", "init": "random", "norm": "BN", "schedule": 1},
]

# --quick: the same study with a narrower model, fewer images and a few iterations: a smoke test of
# the whole pipeline (it checks plumbing, not findings).
QUICK = [
    "model.backbone.width_mult=0.25", "model.gn_groups=4", "model.fpn.channels=16",
    "model.roi_box_head.conv_dim=16", "model.roi_box_head.fc_dim=32", "model.roi_mask_head.conv_dim=16",
    "model.roi_box_head.batch_size_per_image=16", "model.rpn.pre_nms_top_n_train=100",
    "model.rpn.post_nms_top_n_train=50", "model.rpn.pre_nms_top_n_test=50", "model.rpn.post_nms_top_n_test=25",
    "model.roi_box_head.detections_per_img=10",
    "data.synth.num_train=16", "data.synth.num_val=4", "data.synth.image_size=64",
    "input.min_size_train=[56,64]", "input.max_size_train=107", "input.min_size_test=64", "input.max_size_test=107",
    "solver.iters_1x=4", "solver.lr_drops_from_end=[3,1]", "solver.warmup_iters=1", "solver.ims_per_batch=2",
    "eval.period=2", "log.period=2", "checkpoint.period=4",
]
QUICK_PRETRAIN = ["classify.epochs=1", "classify.batch_size=8", "classify.synth.classes=4",
                  "classify.synth.per_class=8", "classify.synth.image_size=48", "classify.image_size=40"]


def demo_study(quick: bool = False) -> dict[str, Any]:
    """The embedded study definition (written to ``OUT/study.yaml`` so a user can re-run or edit it)."""
    if not (CONFIGS / "mask_rcnn_gn_scratch.yaml").is_file():
        raise FileNotFoundError(f"{CONFIGS}: the mini configs are not there (run the demo from a checkout)")
    extra = QUICK if quick else []
    return {
        "name": "scratchlab demo" + (" (quick)" if quick else ""),
        "base": str(CONFIGS / "mask_rcnn_gn_scratch.yaml"),
        "overrides": extra,
        "pretrain": {
            "classify": {"config": str(CONFIGS / "classify_gn.yaml"),
                         "overrides": [*extra, *(QUICK_PRETRAIN if quick else [])],
                         "finetune": ["model.backbone.freeze_at=2"]},
            "direct": {"config": str(CONFIGS / "direct_gn.yaml"), "overrides": extra},
        },
        "arms": ARMS,
    }


def run_demo(out: str | Path, quick: bool = False) -> dict[str, Any]:
    """Run the demo study into ``out`` and print where the report is."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    study_file = out / "study.yaml"
    study_file.write_text(yaml.safe_dump(demo_study(quick), sort_keys=False))
    study = run_study(study_file, out)
    print("\n".join(study["verdict"].get("lines", [])))
    print(f"\nreport: {(out / 'report.html').resolve()}\n        {(out / 'report.md').resolve()}")
    return study
