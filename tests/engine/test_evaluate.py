import json

import pytest
from pycocotools.coco import COCO

from scratchlab.cli import main
from scratchlab.config import load_config
from scratchlab.engine import evaluate_checkpoint
from scratchlab.engine.evaluate import format_per_class
from tests.conftest import MINI, TINY


def _val_only(synth_data) -> list[str]:
    return [f"data.val_json={synth_data['val_json']}", f"data.val_images={synth_data['val_images']}"]


def test_config_with_only_val_keys_evaluates(tiny_run, synth_data, capsys):
    run, final = tiny_run
    cfg = load_config(MINI, [*TINY, *_val_only(synth_data)])
    assert cfg.data.train_json is None
    res = evaluate_checkpoint(cfg, run / "model_final.pth")
    assert res["bbox"]["AP"] == pytest.approx(final["bbox"]["AP"])
    assert "evaluating" in capsys.readouterr().err, "a progress bar while the images run"


def test_per_class_table_and_detections_json(tiny_run, synth_data, tmp_path, capsys):
    run, final = tiny_run
    cats = [c["name"] for c in json.loads(open(synth_data["val_json"]).read())["categories"]]
    assert (
        main(
            [
                "eval",
                str(MINI),
                *TINY,
                *_val_only(synth_data),
                "--weights",
                str(run / "model_final.pth"),
                "--out",
                str(tmp_path),
                "--per-class",
                "--dump-detections",
            ]
        )
        == 0
    )
    saved = json.loads((tmp_path / "eval_metrics.json").read_text())
    assert {f"AP-{c}" for c in cats} <= set(saved["bbox"]) and {f"AP-{c}" for c in cats} <= set(saved["segm"])
    assert saved["bbox"]["AP"] == pytest.approx(final["bbox"]["AP"])  # per-class adds rows, changes nothing
    table = format_per_class(saved).splitlines()
    assert table[0].split() == ["class", "bbox", "AP", "segm", "AP"] and len(table) == 1 + len(cats)
    assert "\n".join(table) in capsys.readouterr().out
    gt = COCO(synth_data["val_json"])
    dt = gt.loadRes(str(tmp_path / "detections.json"))
    assert len(dt.anns) > 0 and all("segmentation" in a for a in dt.anns.values())
    assert (tmp_path / "pr_bbox.png").is_file() and (tmp_path / "pr_segm.png").is_file()


def test_dump_detections_needs_out(tiny_run, synth_data, capsys):
    run, _ = tiny_run
    assert (
        main(
            [
                "eval",
                str(MINI),
                *_val_only(synth_data),
                "--weights",
                str(run / "model_final.pth"),
                "--dump-detections",
            ]
        )
        == 2
    )
    assert "--out" in capsys.readouterr().err


def test_missing_weights_file_is_named_as_such(tiny_run, synth_data, tmp_path, capsys):
    run, _ = tiny_run
    for weights in (tmp_path / "nope.pth", run):  # a typo, or the run directory instead of its file
        assert main(["eval", str(MINI), *_val_only(synth_data), "--weights", str(weights)]) == 2
        err = capsys.readouterr().err
        assert f"{weights}: no such weights file" in err and "model.init" not in err


def test_eval_with_tta_gives_box_and_mask_ap(tiny_run, synth_data):
    run, _ = tiny_run
    cfg = load_config(
        MINI,
        [
            *TINY,
            *_val_only(synth_data),
            "eval.tta.enabled=true",
            "eval.tta.min_sizes=[48]",
            "eval.tta.max_size=107",
        ],
    )
    res = evaluate_checkpoint(cfg, run / "model_final.pth")
    assert set(res["bbox"]) >= {"AP", "AP50"} and "AP" in res["segm"]
