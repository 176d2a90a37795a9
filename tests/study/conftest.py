"""Hand-made study data for the verdict and report tests.

Arms follow the ``study.json`` schema. Curves are ``final * (1 - exp(-it / tau))`` evaluated every 25
iterations, so a small ``tau`` converges fast (pre-trained) and a large one slowly (scratch); the final
metrics and costs are derived from the arguments, so each test states the numbers it relies on. The
session's one-node Slurm cluster is here too (``slurm_cluster``).
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import hand_made_coco, jittered_detections

ITERS_1X = 200
DROPS_FROM_END = (133, 44)  # the paper's "last 60k and last 20k of 90k", scaled to a 200-iteration 1x
IMS_PER_BATCH = 2
IMAGE_PIXELS = 128 * 128


def _arm(
    name: str,
    init: str,
    final_ap: float | None = None,
    *,
    norm: str = "GN",
    schedule: float = 1.0,
    data: str = "100%",
    data_images: int = 10000,
    seed: int = 0,
    status: str = "finished",
    error: str | None = None,
    tau: float | None = None,
    ap50: float = 18.0,
    ap75: float = 0.0,
    segm: bool = False,
    eval_every: int = 25,
    curve: list[dict[str, Any]] | None = None,
    weights: str | None = None,
) -> dict[str, Any]:
    """One arm record. ``ap50``/``ap75`` are offsets from AP; segm AP is bbox AP minus 2. An ``init:
    weights`` arm names its ``weights`` file; its provenance label is "ImageNet-1k (file WEIGHTS)"."""
    max_iter = int(round(schedule * ITERS_1X))
    drops = [max_iter - d for d in DROPS_FROM_END]
    if tau is None:
        tau = 30.0 if init != "random" else 150.0
    final = None
    if final_ap is not None and status in ("finished", "diverged"):
        bbox = {
            "AP": final_ap,
            "AP50": round(final_ap + ap50, 3),
            "AP75": round(final_ap + ap75, 3),
            "APs": round(max(final_ap - 10, 0.0), 3),
            "APm": final_ap,
            "APl": round(final_ap + 8, 3),
        }
        final = {"iteration": max_iter, "bbox": bbox}
        if segm:
            final["segm"] = {k: round(max(v - 2, 0.0), 3) for k, v in bbox.items()}
    if curve is None and final_ap is not None and status == "finished":
        curve = []
        for it in range(eval_every, max_iter + 1, eval_every):
            ap = round(final_ap * (1 - math.exp(-it / tau)), 3)
            pt = {"iteration": it, "bbox_AP": ap}
            if segm:
                pt["segm_AP"] = round(ap - 2, 3)
            curve.append(pt)
    images = max_iter * IMS_PER_BATCH if status == "finished" else 0
    own = {
        "images_seen": images,
        "instances_seen": images * 3,
        "pixels_seen": images * IMAGE_PIXELS,
        "wall_s": images * 0.05,
    }
    pre = None
    if init == "classify":
        pre = {
            "images_seen": 100000,
            "instances_seen": 100000,
            "pixels_seen": 100000 * 224 * 224,
            "wall_s": 500.0,
            "kind": "classify",
        }
    elif init == "direct":
        pre = {
            "images_seen": 4000,
            "instances_seen": 12000,
            "pixels_seen": 4000 * 64 * 64,
            "wall_s": 40.0,
            "kind": "direct",
        }
    total = {k: own[k] + (pre[k] if pre else 0) for k in own}
    published = (
        {
            "weights": weights,
            "weights_data": "ImageNet-1k",
            "provenance": {
                "label": f"ImageNet-1k (file {weights})",
                "data": "ImageNet-1k",
                "cost": "not counted: external",
            },
        }
        if init == "weights"
        else {}
    )
    return {
        "name": name,
        "init": init,
        "norm": norm,
        "schedule": schedule,
        "data": data,
        "data_images": data_images,
        "seed": seed,
        "status": status,
        "error": error,
        "run_dir": f"arms/{name}",
        "final": final,
        "curve": curve or [],
        "max_iter": max_iter,
        "lr_drops": drops,
        "cost": {**own, "pretrain": pre, "total": total},
        **published,
    }


@pytest.fixture
def make_arm() -> Callable[..., dict[str, Any]]:
    """Factory for arm records (see :func:`_arm`)."""
    return _arm


@pytest.fixture
def caught_up_arms() -> list[dict[str, Any]]:
    """Pre-trained far ahead early; random init within 1.0 AP at 2x and ahead at 3x."""
    return [
        _arm("classify_gn_1x", "classify", 30.0, ap75=-1.0),
        _arm("scratch_gn_1x", "random", 22.0),
        _arm("scratch_gn_2x", "random", 29.4, schedule=2.0),
        _arm("scratch_gn_3x", "random", 31.0, schedule=3.0, ap75=0.5, ap50=16.0),
    ]


@pytest.fixture
def never_arms() -> list[dict[str, Any]]:
    """Random init 5.0 AP behind even at its longest schedule (2x)."""
    return [
        _arm("classify_gn_1x", "classify", 30.0),
        _arm("scratch_gn_1x", "random", 20.0),
        _arm("scratch_gn_2x", "random", 25.0, schedule=2.0),
    ]


@pytest.fixture
def regime_arms() -> list[dict[str, Any]]:
    """Full data: random init level with pre-training; 1k images: pre-training leads by 4.2."""
    return [
        _arm("classify_1x_full", "classify", 30.0),
        _arm("scratch_3x_full", "random", 30.5, schedule=3.0),
        _arm("classify_1x_1k", "classify", 20.1, data="1k", data_images=1000),
        _arm("scratch_1x_1k", "random", 12.0, data="1k", data_images=1000),
        _arm("scratch_3x_1k", "random", 15.9, schedule=3.0, data="1k", data_images=1000),
    ]


@pytest.fixture
def seed_arms() -> list[dict[str, Any]]:
    """Three seeds each: random 30.0 ± 1.0 vs classify 30.6 ± 0.5 -> the 0.6 gap is inconclusive."""
    rand = [
        _arm(f"scratch_gn_2x_s{i}", "random", ap, schedule=2.0, seed=i)
        for i, ap in enumerate((29.0, 31.0, 30.0))
    ]
    cls = [
        _arm(f"classify_gn_2x_s{i}", "classify", ap, schedule=2.0, seed=i)
        for i, ap in enumerate((31.1, 30.1, 30.6))
    ]
    return rand + cls


@pytest.fixture(scope="module")
def study() -> dict[str, Any]:
    """A whole study: two regimes, segm, seeds, direct pre-training, a BN arm that diverged, a failed
    arm whose error text needs HTML escaping, and a pending arm. Module-scoped (a report takes seconds
    to draw): tests must not mutate it."""
    m = _arm
    arms = [
        m("scratch_gn_1x", "random", 22.0, segm=True),
        m("scratch_gn_2x_s0", "random", 29.0, schedule=2.0, segm=True),
        m("scratch_gn_2x_s1", "random", 30.0, schedule=2.0, seed=1, segm=True),
        m("scratch_gn_3x", "random", 31.0, schedule=3.0, segm=True, ap75=0.5),
        m("classify_gn_1x", "classify", 30.0, segm=True, ap75=-1.0),
        m("direct_gn_1x", "direct", 30.8, segm=True),
        m(
            "scratch_bn_2x",
            "random",
            None,
            norm="BN",
            schedule=2.0,
            status="diverged",
            error="loss became NaN at iteration 40",
        ),
        m("scratch_gn_1x_10pct", "random", 10.0, data="10%", data_images=1000, segm=True),
        m("scratch_gn_3x_10pct", "random", 14.0, schedule=3.0, data="10%", data_images=1000, segm=True),
        m("classify_gn_1x_10pct", "classify", 19.0, data="10%", data_images=1000, segm=True),
        m(
            "direct_gn_1x_10pct",
            "direct",
            None,
            data="10%",
            data_images=1000,
            status="failed",
            error='CUDA out of memory: <script>alert("x")</script> & more | pipe',
        ),
        m("scratch_gn_6x", "random", None, schedule=6.0, status="pending"),
    ]
    return {"name": "tiny-study", "dataset": {"kind": "synth", "num_train": 10000}, "arms": arms}


# ---------------------------------------------------------------------------- arms with per-image data


def _gt(n_images: int = 40) -> dict:
    return hand_made_coco(n_images)


VAL_GT = _gt()


def predictions(jitter: float, miss: float = 0.0, seed: int = 0) -> list[dict[str, Any]]:
    """Detections of the hand-made validation set (see ``tests.conftest.jittered_detections``)."""
    return jittered_detections(VAL_GT, jitter, seed, miss=miss, fp_score=0.6)


def scored(
    arm: dict[str, Any], final: list[dict[str, Any]], curve: dict[int, list[dict[str, Any]]] | None = None
) -> dict[str, Any]:
    """``arm`` with per-image data and bbox AP measured on ``final`` predictions (and on ``curve``'s, by
    iteration), so its AP values and its intervals come from the same detections."""
    from scratchlab.evaluation.bootstrap import ap_on_images, per_image_eval

    def measure(preds: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        data = per_image_eval(VAL_GT, preds)
        return data, ap_on_images(data, range(len(data["image_ids"])))

    data, ap = measure(final)
    arm = {**arm, "per_image": {"bbox": data}}
    arm["final"] = {**arm["final"], "bbox": {**arm["final"]["bbox"], **ap}}
    arm["curve"] = []
    for it, preds in sorted((curve or {}).items()):
        d, a = measure(preds)
        arm["curve"].append({"iteration": it, "bbox_AP": a["AP"], "per_image": {"bbox": d}})
    return arm


@pytest.fixture
def score() -> Callable[..., dict[str, Any]]:
    """Attach per-image data to an arm (see :func:`scored`)."""
    return scored


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Any]:
    """A one-node Slurm cluster of this machine for the session (see ``tests.slurm_cluster``); skips
    with the reason when it cannot start. SLURM_CONF points every client at it while it runs."""
    from tests.slurm_cluster import ClusterUnavailable, SlurmCluster

    cluster = SlurmCluster()
    try:
        try:
            cluster.start()
        except (ClusterUnavailable, OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"no Slurm cluster: {exc}")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SLURM_CONF", str(cluster.conf))
            yield cluster
    finally:
        cluster.stop()
