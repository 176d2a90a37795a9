"""A keypoint_rcnn config trains end to end on the generated keypoint set and reports keypoint AP."""

from __future__ import annotations

import json

from scratchlab.config import load_config
from scratchlab.engine import train
from tests.conftest import ROOT, TINY

MINI = ROOT / "configs" / "mini" / "keypoint_rcnn_gn_scratch.yaml"


def test_keypoint_config_trains_and_writes_keypoint_ap(tmp_path):
    cfg = load_config(MINI, [*TINY, "model.roi_keypoint_head.conv_dim=16", "solver.max_iter=2",
                             "eval.period=0", "checkpoint.period=100", "data.synth.num_train=4",
                             "data.synth.num_val=2", "data.synth.image_size=64"])
    final = train(cfg, tmp_path)
    assert set(final["keypoints"]) == {"AP", "AP50", "AP75", "APm", "APl"}
    assert "segm" not in final
    saved = json.loads((tmp_path / "final_metrics.json").read_text())
    assert saved["keypoints"] == final["keypoints"]
    assert load_config(tmp_path / "config.yaml").model.roi_keypoint_head.num_keypoints == 3
