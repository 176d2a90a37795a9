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


@pytest.mark.parametrize("name", ["cascade_mask_rcnn_gn_scratch.yaml", "mask_rcnn_swin_t.yaml"])
def test_mask_config_trains_and_writes_box_and_mask_ap(tmp_path, name):
    final = train(load_config(MINI / name, [*TINY, *SHORT]), tmp_path)
    assert {"bbox", "segm"} <= set(final) and "AP" in final["segm"]
    assert (tmp_path / "model_final.pth").is_file()
