"""Shared fixtures: a tiny generated dataset (made once per session) and overrides that shrink the mini
recipe to a model that trains a few iterations in seconds on a CPU."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from scratchlab.config import overrides_of

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "configs" / "mini" / "mask_rcnn_gn_scratch.yaml"
RACCOON = ROOT.parent / "shared" / "data" / "raccoon"

# A narrow model and a very short schedule (configs/mini/tiny.yaml, as overrides so that configs with their
# own base shrink the same way): tests check behaviour, not accuracy.
TINY = overrides_of(ROOT / "configs" / "mini" / "tiny.yaml")


@pytest.fixture(autouse=True)
def _data_check_cache(tmp_path_factory, monkeypatch):
    """Data-check verdicts go to the session's temp folder, never to the user's ~/.cache."""
    monkeypatch.setenv("SCRATCHLAB_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "scratchlab-cache"))


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> dict[str, str]:
    """A tiny generated COCO set; returns the data.* keys pointing at it."""
    from scratchlab.data.synth import make_synth_detection

    root = tmp_path_factory.mktemp("synth")
    make_synth_detection(root, num_train=12, num_val=4, image_size=64, seed=0)
    return {
        "train_json": str(root / "annotations" / "instances_train.json"),
        "train_images": str(root / "train"),
        "val_json": str(root / "annotations" / "instances_val.json"),
        "val_images": str(root / "val"),
    }


@pytest.fixture
def tiny_cfg(synth_data):
    """The mini recipe shrunk by TINY, on the session's tiny generated set."""
    from scratchlab.config import load_config

    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    return load_config(MINI, [*TINY, *data])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, synth_data):
    """A finished tiny Mask R-CNN run (6 iterations) whose box head keeps every detection (score_thresh 0),
    so prediction tests always have detections to look at. Returns (run dir, final metrics)."""
    from scratchlab.config import load_config
    from scratchlab.engine import train

    cfg = load_config(
        MINI,
        [
            *TINY,
            *[f"data.{k}={v}" for k, v in synth_data.items()],
            "model.roi_box_head.score_thresh=0.0",
            "eval.period=0",
        ],
    )
    out = tmp_path_factory.mktemp("tiny_run")
    return out, train(cfg, out)


def hand_made_coco(n_images: int) -> dict:
    """A hand-made COCO validation set: two categories, 1-3 boxes per image, from a fixed seed."""
    import numpy as np

    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "width": 100, "height": 100})
        for _ in range(1 + i % 3):
            x, y, w, h = *rng.uniform(0, 50, 2), *rng.uniform(15, 45, 2)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": 1 + i % 2,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    return {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }


def jittered_detections(
    gt: dict, jitter: float, seed: int, miss: float | None = None, fp_score: float = 0.5
) -> list[dict]:
    """Detections of ``gt``: each box found with probability ``1 - miss``, moved by ~``jitter`` px, plus one
    false positive per image scored below ``fp_score``; distinct scores. Small jitter, no misses: a good
    detector."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for a in gt["annotations"]:
        if miss is not None and rng.uniform() < miss:  # a draw per box whenever misses are modelled
            continue
        box = list(np.asarray(a["bbox"]) + rng.normal(0, jitter, 4) * [1, 1, 0.5, 0.5])
        out.append(
            {
                "image_id": a["image_id"],
                "category_id": a["category_id"],
                "bbox": box,
                "score": float(rng.uniform(0.3, 1.0)),
            }
        )
    for img in gt["images"]:
        out.append(
            {
                "image_id": img["id"],
                "category_id": 1,
                "bbox": [60.0, 60.0, 20.0, 20.0],
                "score": float(rng.uniform(0.0, fp_score)),
            }
        )
    return out


def copy_checkpoints(monkeypatch, module, where: Callable[[dict, Path], Path | None]) -> None:
    """Make ``module.save_checkpoint`` also copy each checkpoint it writes to ``where(state, ckpt_dir) /
    last.pth`` when ``where`` names a folder: the state a run killed right after that save would resume
    from, for exact-resume tests (the copy resumes elsewhere while the run goes on uninterrupted)."""
    save = module.save_checkpoint

    def save_and_copy(state, ckpt_dir):
        path = save(state, ckpt_dir)
        if (dest := where(state, Path(ckpt_dir))) is not None:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dest / "last.pth")
        return path

    monkeypatch.setattr(module, "save_checkpoint", save_and_copy)


def differing_tensors(a: dict, b: dict) -> list[str]:
    """The keys of two state dicts whose tensors are not bit for bit equal (or are in one only)."""
    return sorted(k for k in a.keys() | b.keys() if k not in a or k not in b or not a[k].equal(b[k]))
