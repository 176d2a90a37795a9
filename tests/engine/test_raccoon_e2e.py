"""End to end on real photographs: convert the raccoon VOC set, check it, train the mini Faster R-CNN
and evaluate it, through the command line, writing nothing into the shared folder."""

import json

import pytest

from scratchlab.cli import main
from tests.conftest import RACCOON, ROOT, TINY

pytestmark = pytest.mark.skipif(
    not (RACCOON / "annotations").is_dir(),
    reason=f"raccoon dataset not found at {RACCOON} (../shared/data/raccoon)",
)


def test_raccoon_convert_check_train_eval(tmp_path, capsys):
    before = sorted((p.name, p.stat().st_mtime_ns) for p in RACCOON.rglob("*"))
    coco = tmp_path / "coco"
    assert main(["data", "convert", "--from", "voc", str(RACCOON), "--out", str(coco), "--split", "0.2"]) == 0
    train_json, val_json = (
        coco / "annotations" / "instances_train.json",
        coco / "annotations" / "instances_val.json",
    )
    images = RACCOON / "images"
    assert main(["data", "check", str(train_json), "--images", str(images)]) == 0
    assert main(["data", "check", str(val_json), "--images", str(images)]) == 0
    n_val = len(json.loads(val_json.read_text())["images"])
    assert n_val == 40

    run = tmp_path / "run"
    code = main(
        [
            "train",
            str(ROOT / "configs" / "mini" / "faster_rcnn_gn_scratch.yaml"),
            "--out",
            str(run),
            *TINY,
            "solver.max_iter=4",
            "eval.period=0",
            f"data.train_json={train_json}",
            f"data.train_images={images}",
            f"data.val_json={val_json}",
            f"data.val_images={images}",
        ]
    )
    assert code == 0
    final = json.loads((run / "final_metrics.json").read_text())
    assert "segm" not in final and 0.0 <= final["bbox"]["AP"] <= 100.0
    assert final["cost"]["instances_seen"] > 0
    # `scratchlab eval` in a fresh model finds what the run's own final evaluation found, box for box
    evaluated = tmp_path / "eval"
    cfg, weights = str(run / "config.yaml"), str(run / "model_final.pth")
    assert main(["eval", cfg, "--weights", weights, "--out", str(evaluated), "--dump-detections"]) == 0
    in_run = json.loads((run / "inference" / "detections_0000004.json").read_text())
    assert in_run and json.loads((evaluated / "detections.json").read_text()) == in_run
    assert sorted((p.name, p.stat().st_mtime_ns) for p in RACCOON.rglob("*")) == before
