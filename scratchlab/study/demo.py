"""``scratchlab demo``: a miniature but honest pre-training-vs-scratch study on generated data.

It generates a detection set and a classification set, pre-trains once (classification backbone, and
stage 1 of direct detection pre-training), then trains six arms of the same mini GN-all Mask R-CNN:
random init and classification pre-training each at 1x and 3x, direct pre-training at 1x, and a poorly
normalised (per-batch BN) scratch arm at 1x — and writes the report. Every number comes from those runs;
the training noise in its intervals from ``configs/studies/noise/demo.yaml``, which ``--calibrate-noise``
measures. ``--quick`` is the same study shrunk to a smoke test.

The arms and pre-trainings run as ``--launcher local`` jobs, two at a time, each with half the cores'
threads: on 2 cores, two 1-thread processes train these small models faster than one 2-thread process
(BENCHMARKS.md, issue #10). ``--quick`` runs them inline, one after the other: its models train in
seconds, less than a job process takes to start (the local launcher has its own tests).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from .. import run_dir
from ..config import overrides_of
from .launcher import launch_study
from .runner import run_study
from .store import calibrate_noise as calibrate_block
from .verdict import verdict_lines

__all__ = ["demo_study", "run_demo"]

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "mini"

# The early-convergence and catch-up claims compare both starts at the same long schedule (the paper's
# Figure 1 and Table 1): the two 3x arms evaluate every 50 iterations, a curve before their first LR drop
# at 467. Evaluating the val set is a large share of the demo's 10 minutes on 2 cores, so the 1x arms
# evaluate only at the end; they fork from their 3x trunk at 132 (``study --plan``).
FINAL_EVAL_ONLY = ["eval.period=0"]
CURVE = ["eval.period=50"]
ARMS = [
    {"name": "scratch_gn_1x", "init": "random", "norm": "GN", "schedule": 1, "overrides": FINAL_EVAL_ONLY},
    {"name": "scratch_gn_3x", "init": "random", "norm": "GN", "schedule": 3, "overrides": CURVE},
    {"name": "classify_gn_1x", "init": "classify", "norm": "GN", "schedule": 1, "overrides": FINAL_EVAL_ONLY},
    {"name": "classify_gn_3x", "init": "classify", "norm": "GN", "schedule": 3, "overrides": CURVE},
    {"name": "direct_gn_1x", "init": "direct", "norm": "GN", "schedule": 1, "overrides": FINAL_EVAL_ONLY},
    {"name": "scratch_bn_1x", "init": "random", "norm": "BN", "schedule": 1, "overrides": FINAL_EVAL_ONLY},
]

# One training run per arm: the demo's intervals take the run-to-run noise from a calibration of this
# recipe, three seeds of every arm with the pre-training's seed varied too (`scratchlab demo
# --calibrate-noise`, whose noise.yaml is this file).
NOISE = CONFIGS.parent / "studies" / "noise" / "demo.yaml"
CALIBRATION_SEEDS = [0, 1, 2]

# Each of the JOBS processes has its share of the cores for its model; a data-loading worker process
# (data.num_workers: auto gives one on 2 cores) would take time from the other job.
IN_PROCESS_LOADING = ["data.num_workers=0"]

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


def demo_study(quick: bool = False, calibration: bool = False) -> dict[str, Any]:
    """The embedded study definition (written to ``OUT/study.yaml`` so a user can re-run or edit it).
    ``calibration``: the study that measures its training noise instead (every arm at each of
    :data:`CALIBRATION_SEEDS`, its pre-training with it; final evaluations only, which train the same bits)."""
    if not (CONFIGS / "mask_rcnn_gn_scratch.yaml").is_file():
        raise FileNotFoundError(f"{CONFIGS}: the mini configs are not there (run the demo from a checkout)")
    shrink = [*overrides_of(TINY), *IN_PROCESS_LOADING] if quick else IN_PROCESS_LOADING
    study = _study(quick, shrink)
    if calibration:
        study["name"] += " (noise calibration)"
        study["pretrain"]["vary_seed"] = True
        study["arms"] = [
            {**arm, "seed": CALIBRATION_SEEDS, "overrides": FINAL_EVAL_ONLY} for arm in study["arms"]
        ]
    elif not quick and NOISE.is_file():  # the calibration is of the mini recipe, not of --quick's tiny one
        study["noise"] = (yaml.safe_load(NOISE.read_text()) or {})["noise"]
    return study


def _study(quick: bool, shrink: list[str]) -> dict[str, Any]:
    return {
        "name": "scratchlab demo" + (" (quick)" if quick else ""),
        "base": str(TINY if quick else CONFIGS / "mask_rcnn_gn_scratch.yaml"),
        "overrides": IN_PROCESS_LOADING,
        "pretrain": {
            "classify": {
                "config": str(CONFIGS / "classify_gn.yaml"),
                "overrides": [*shrink, *(QUICK_PRETRAIN if quick else [])],
                "finetune": ["model.backbone.freeze_at=2"],
            },
            "direct": {"config": str(CONFIGS / "direct_gn.yaml"), "overrides": shrink},
        },
        "arms": [dict(arm) for arm in ARMS],
    }


JOBS = 2  # arms (or pre-trainings) trained at once


@contextmanager
def _threads_per_job(jobs: int) -> Iterator[None]:
    """Give each job process an equal share of the cores (``OMP_NUM_THREADS``, read by torch at import in
    the job) unless the user set it; put the variable back afterwards."""
    before = os.environ.get("OMP_NUM_THREADS")
    if before is None:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)


def run_demo(out: str | Path, quick: bool = False, calibrate_noise: bool = False) -> dict[str, Any]:
    """Run the demo study into ``out`` and print where the report is; ``calibrate_noise``: run its noise
    calibration instead and print the ``noise:`` block (also in ``out/noise.yaml``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    study_file = out / "study.yaml"
    study_file.write_text(yaml.safe_dump(demo_study(quick, calibrate_noise), sort_keys=False))
    if calibrate_noise:
        with _threads_per_job(JOBS):
            study = launch_study(study_file, out, "local", max_parallel=JOBS, poll_s=0.5)
        print(calibrate_block(out), end="")
        print(f"training noise of the demo's recipe: {out / run_dir.NOISE} (the demo reads {NOISE})")
        return study
    if quick:
        study = run_study(study_file, out)
    else:
        with _threads_per_job(JOBS):
            study = launch_study(study_file, out, "local", max_parallel=JOBS, poll_s=0.5)
    print(study["verdict"]["headline"])
    print("\n".join(verdict_lines(study["verdict"])))
    print(f"\nreport: {(out / run_dir.REPORT_HTML).resolve()}\n        {(out / run_dir.REPORT_MD).resolve()}")
    return study
