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

from ..config import overrides_of
from .runner import run_study

__all__ = ["demo_study", "run_demo"]

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "mini"

# Evaluating the val set is a large share of the demo's 10 minutes on 2 cores, so only the two arms the
# early-convergence finding compares (classification-pre-trained 1x against the longest random schedule,
# at the 1x's first LR drop) evaluate during training; the others only at the end.
FINAL_EVAL_ONLY = ["eval.period=0"]
ARMS = [
    {"name": "scratch_gn_1x", "init": "random", "norm": "GN", "schedule": 1, "overrides": FINAL_EVAL_ONLY},
    {"name": "scratch_gn_3x", "init": "random", "norm": "GN", "schedule": 3},
    {"name": "classify_gn_1x", "init": "classify", "norm": "GN", "schedule": 1},
    {"name": "direct_gn_1x", "init": "direct", "norm": "GN", "schedule": 1, "overrides": FINAL_EVAL_ONLY},
    {"name": "scratch_bn_1x", "init": "random", "norm": "BN", "schedule": 1, "overrides": FINAL_EVAL_ONLY},
]

# --quick: the same study on configs/mini/tiny.yaml (narrower model, fewer images, a few iterations): a
# smoke test of the whole pipeline (it checks plumbing, not findings).
TINY = CONFIGS / "tiny.yaml"
QUICK_PRETRAIN = [
    "classify.epochs=1",
    "classify.batch_size=8",
    "classify.synth.classes=4",
    "classify.synth.per_class=8",
    "classify.synth.image_size=48",
    "classify.image_size=40",
]


def demo_study(quick: bool = False) -> dict[str, Any]:
    """The embedded study definition (written to ``OUT/study.yaml`` so a user can re-run or edit it)."""
    if not (CONFIGS / "mask_rcnn_gn_scratch.yaml").is_file():
        raise FileNotFoundError(f"{CONFIGS}: the mini configs are not there (run the demo from a checkout)")
    shrink = overrides_of(TINY) if quick else []
    return {
        "name": "scratchlab demo" + (" (quick)" if quick else ""),
        "base": str(TINY if quick else CONFIGS / "mask_rcnn_gn_scratch.yaml"),
        "pretrain": {
            "classify": {
                "config": str(CONFIGS / "classify_gn.yaml"),
                "overrides": [*shrink, *(QUICK_PRETRAIN if quick else [])],
                "finetune": ["model.backbone.freeze_at=2"],
            },
            "direct": {"config": str(CONFIGS / "direct_gn.yaml"), "overrides": shrink},
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
    print(study["verdict"]["headline"])
    print("\n".join(study["verdict"]["lines"]))
    print(f"\nreport: {(out / 'report.html').resolve()}\n        {(out / 'report.md').resolve()}")
    return study
