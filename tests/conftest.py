"""Shared fixtures: a tiny generated dataset (made once per session) and overrides that shrink the mini
recipe to a model that trains a few iterations in seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "configs" / "mini" / "mask_rcnn_gn_scratch.yaml"
RACCOON = ROOT.parent / "shared" / "data" / "raccoon"

# A narrow model and a very short schedule: tests check behaviour, not accuracy.
TINY = [
    "model.backbone.depth=18", "model.backbone.width_mult=0.25", "model.gn_groups=4",
    "model.fpn.channels=16", "model.roi_box_head.conv_dim=16", "model.roi_box_head.fc_dim=32",
    "model.roi_mask_head.conv_dim=16", "model.roi_box_head.batch_size_per_image=16",
    "model.rpn.batch_size_per_image=32", "model.rpn.pre_nms_top_n_train=100",
    "model.rpn.post_nms_top_n_train=50", "model.rpn.pre_nms_top_n_test=50", "model.rpn.post_nms_top_n_test=25",
    "model.roi_box_head.detections_per_img=10",
    "input.min_size_train=[56,64]", "input.max_size_train=107", "input.min_size_test=64", "input.max_size_test=107",
    "solver.ims_per_batch=2", "solver.iters_1x=6", "solver.lr_drops_from_end=[4,2]", "solver.warmup_iters=2",
    "log.period=2", "eval.period=3", "checkpoint.period=2",
    "data.synth.num_train=12", "data.synth.num_val=4", "data.synth.image_size=64",
]


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
    return {"train_json": str(root / "annotations" / "instances_train.json"),
            "train_images": str(root / "train"),
            "val_json": str(root / "annotations" / "instances_val.json"),
            "val_images": str(root / "val")}


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

    cfg = load_config(MINI, [*TINY, *[f"data.{k}={v}" for k, v in synth_data.items()],
                             "model.roi_box_head.score_thresh=0.0", "eval.period=0"])
    out = tmp_path_factory.mktemp("tiny_run")
    return out, train(cfg, out)
