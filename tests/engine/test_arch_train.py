"""Each mini recipe of another architecture trains end to end (shrunk by configs/mini/tiny.yaml's
overrides) and writes the final metrics of its tasks."""

from __future__ import annotations

import json

import pytest

from scratchlab.config import load_config
from scratchlab.engine import train
from scratchlab.engine.predict import predict
from tests.conftest import ROOT, TINY

MINI = ROOT / "configs" / "mini"
SHORT = [
    "solver.max_iter=2",
    "eval.period=0",
    "checkpoint.period=100",
    "data.synth.num_train=4",
    "data.synth.num_val=2",
    "data.synth.image_size=64",
]


@pytest.mark.slow
def test_keypoint_config_trains_and_writes_keypoint_ap(tmp_path):
    cfg = load_config(
        MINI / "keypoint_rcnn_gn_scratch.yaml", [*TINY, "model.roi_keypoint_head.conv_dim=16", *SHORT]
    )
    final = train(cfg, tmp_path)
    assert set(final["keypoints"]) == {"AP", "AP50", "AP75", "APm", "APl"}
    assert "segm" not in final
    saved = json.loads((tmp_path / "final_metrics.json").read_text())
    assert saved["keypoints"] == final["keypoints"]
    assert load_config(tmp_path / "config.yaml").model.roi_keypoint_head.num_keypoints == 3
    shown = predict(tmp_path, [tmp_path / "data" / "val"], tmp_path / "shown", score_thresh=0.0)
    assert shown[0]["keypoints"].shape[1:] == (3, 3) and shown[0]["drawn"] is not None
    records = json.loads((tmp_path / "shown" / "results.json").read_text())
    assert records and all(len(r["keypoints"]) == 9 for r in records)


@pytest.mark.slow
def test_swin_mask_config_trains_and_writes_box_and_mask_ap(tmp_path):
    final = train(load_config(MINI / "mask_rcnn_swin_t.yaml", [*TINY, *SHORT]), tmp_path)
    assert {"bbox", "segm"} <= set(final) and "AP" in final["segm"]
    assert (tmp_path / "model_final.pth").is_file()


def test_cascade_trains_stage_one_alone_until_its_start_iteration(tmp_path):
    """model.cascade.start_iter=1 of 2: iteration 1 logs stage 1's losses only, iteration 2 every
    stage's; the final metrics carry box and mask AP."""
    overrides = [*TINY, *SHORT, "model.cascade.start_iter=1", "log.period=1"]
    final = train(load_config(MINI / "cascade_mask_rcnn_gn_scratch.yaml", overrides), tmp_path)
    assert {"bbox", "segm"} <= set(final) and "AP" in final["segm"]
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = {
        r["iteration"]: {k for k in r if k.startswith("loss_") and "stage" in k}
        for r in logged
        if "loss" in r
    }
    stage1 = {"loss_classifier_stage1", "loss_box_reg_stage1"}
    assert losses[1] == stage1
    assert losses[2] == stage1 | {f"loss_{k}_stage{t}" for k in ("classifier", "box_reg") for t in (2, 3)}


@pytest.mark.parametrize(
    "name, extra",
    [
        ("cascade_mask_rcnn_gn_scratch.yaml", []),
        ("cascade_mask_rcnn_gn_scratch.yaml", ["model.cascade.start_iter=4"]),  # the switch after the resume
        ("keypoint_rcnn_gn_scratch.yaml", ["model.roi_keypoint_head.conv_dim=16"]),
    ],
)
def test_a_run_resumed_from_a_checkpoint_ends_with_the_uninterrupted_runs_weights(
    tmp_path, monkeypatch, name, extra
):
    """Exact resume of the cascade and keypoint heads: a copy of the iteration-2 checkpoint (and of the
    generated data beside it), resumed in another folder, trains iterations 3-6 (an evaluation at 3
    included) into the uninterrupted run's bits."""
    import shutil

    import torch

    from scratchlab.engine import checkpoint
    from tests.conftest import copy_checkpoints, differing_tensors

    resumed = tmp_path / "resumed"

    def copy_at_2(state, ckpt_dir):
        if state["iteration"] != 2:
            return None
        shutil.copytree(ckpt_dir.parent / "data", resumed / "data")
        return resumed / "checkpoints"

    copy_checkpoints(monkeypatch, checkpoint, copy_at_2)
    cfg = load_config(MINI / name, [*TINY, *extra, "seed=1"])
    assert (cfg.checkpoint.period, cfg.eval.period, cfg.solver.max_iter or 6) == (2, 3, 6)
    whole = train(cfg, tmp_path / "whole")
    again = train(cfg, resumed, resume=True)
    assert "resumed from" in (resumed / "log.txt").read_text()
    want, got = (
        torch.load(d / "model_final.pth", weights_only=True)["model"] for d in (tmp_path / "whole", resumed)
    )
    assert differing_tensors(want, got) == []
    assert {k: v for k, v in again.items() if k != "cost"} == {k: v for k, v in whole.items() if k != "cost"}
