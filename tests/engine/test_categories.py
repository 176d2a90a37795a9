"""Evaluation reads the model's labels through the model's own categories, whatever the validation file
lists; a validation file that contradicts them is refused before training and by ``scratchlab eval``."""

import json
import logging

import pytest
import torch

from scratchlab.cli import main
from scratchlab.config import load_config
from scratchlab.data.synth import SHAPES
from scratchlab.engine import evaluate_checkpoint, train
from scratchlab.engine.data import DatasetError
from scratchlab.run_dir import detections_file
from tests.conftest import MINI, TINY


def _val_variant(synth_data, path, edit) -> str:
    """A copy of the generated validation file, ``edit``ed."""
    data = json.loads(open(synth_data["val_json"]).read())
    edit(data)
    path.write_text(json.dumps(data))
    return str(path)


def _reordered_with_unused(data) -> None:
    """Categories in reverse order, plus a category no annotation uses at the lowest id (an exporter's
    supercategory entry at id 0): a val file's own sorted list would read every label as the next class."""
    data["categories"] = [{"id": 0, "name": "shapes", "supercategory": "none"}, *reversed(data["categories"])]


def _renamed(data) -> None:
    data["categories"][1]["name"] = "blob"


def _unknown_used(data) -> None:
    data["categories"].append({"id": 42, "name": "zebra", "supercategory": "animal"})
    data["annotations"][0]["category_id"] = 42


def _train_cfg(synth_data, val_json):
    data = {**synth_data, "val_json": val_json}
    return load_config(
        MINI,
        [
            *TINY,
            *[f"data.{k}={v}" for k, v in data.items()],
            "model.roi_box_head.score_thresh=0.0",
            "eval.period=0",
        ],
    )


def test_training_on_a_val_file_listing_categories_otherwise_evaluates_as_the_original(
    tiny_run, synth_data, tmp_path
):
    run, final = tiny_run  # the same recipe, validated on the generated file itself
    val = _val_variant(synth_data, tmp_path / "val.json", _reordered_with_unused)
    out = tmp_path / "run"
    again = train(_train_cfg(synth_data, val), out)
    iteration = final["iteration"]
    ours = json.loads(detections_file(out, iteration).read_text())
    assert ours and ours == json.loads(detections_file(run, iteration).read_text())
    assert (again["bbox"], again["segm"]) == (final["bbox"], final["segm"])


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_renamed, "id 2 is 'blob' there, 'ellipse' in the model"),
        (_unknown_used, r"id 42 'zebra' \(1 annotation\(s\)\).*AP could only be 0"),
    ],
)
def test_a_contradicting_val_file_is_refused_before_training(synth_data, tmp_path, edit, expected):
    val = _val_variant(synth_data, tmp_path / "val.json", edit)
    out = tmp_path / "run"
    with pytest.raises(DatasetError, match=expected) as err:
        train(_train_cfg(synth_data, val), out)
    assert val in str(err.value) and synth_data["train_json"] in str(err.value)
    assert not (out / "config.yaml").exists() and not (out / "checkpoints").exists()


def test_eval_of_a_run_with_a_val_file_listing_categories_otherwise_gives_its_own_final_ap(
    tiny_run, synth_data, tmp_path
):
    run, final = tiny_run
    val = _val_variant(synth_data, tmp_path / "val.json", _reordered_with_unused)
    overrides = [f"data.val_json={val}", "--weights", str(run / "model_final.pth"), "--out", str(tmp_path)]
    assert main(["eval", str(run / "config.yaml"), *overrides, "--dump-detections"]) == 0
    saved = json.loads((tmp_path / "eval_metrics.json").read_text())
    assert (saved["bbox"], saved["segm"]) == (final["bbox"], final["segm"])
    run_detections = json.loads(detections_file(run, final["iteration"]).read_text())
    assert json.loads((tmp_path / "detections.json").read_text()) == run_detections


def test_eval_maps_through_the_training_file_when_a_checkpoint_carries_no_categories(tiny_run, tmp_path):
    """checkpoints/last.pth carries the categories too; a file without them (written before it did) maps
    through the run config's data.train_json."""
    run, final = tiny_run
    last = torch.load(run / "checkpoints" / "last.pth", weights_only=True)
    assert last["category_ids"] == list(range(1, 9)) and last["classes"] == list(SHAPES)
    bare = {k: v for k, v in last.items() if k not in ("classes", "category_ids")}
    torch.save(bare, tmp_path / "last.pth")
    cfg = load_config(run / "config.yaml")
    assert evaluate_checkpoint(cfg, tmp_path / "last.pth")["bbox"] == final["bbox"]
    # A training file of fewer categories than the weights' class layers: refused, not re-initialised.
    train_json = json.loads(open(cfg.data.train_json).read())
    train_json["categories"] = train_json["categories"][:7]
    (tmp_path / "train.json").write_text(json.dumps(train_json))
    cfg.data.train_json = str(tmp_path / "train.json")
    with pytest.raises(ValueError, match=r"its 7 categories .*keys not loaded: \['roi_heads.box_predictor"):
        evaluate_checkpoint(cfg, tmp_path / "last.pth")


def test_eval_refuses_a_renamed_category_and_logs_categories_without_ground_truth(
    tiny_run, synth_data, tmp_path, caplog
):
    run, final = tiny_run
    cfg = load_config(run / "config.yaml")
    cfg.data.val_json = _val_variant(synth_data, tmp_path / "renamed.json", _renamed)
    with pytest.raises(DatasetError, match="id 2 is 'blob' there, 'ellipse' in the model"):
        evaluate_checkpoint(cfg, run / "model_final.pth")

    def only_present(data) -> None:  # an exporter that lists only the categories present in the split
        data["annotations"] = [a for a in data["annotations"] if a["category_id"] != 2]
        data["categories"] = [c for c in data["categories"] if c["id"] != 2]

    cfg.data.val_json = _val_variant(synth_data, tmp_path / "present.json", only_present)
    with caplog.at_level(logging.INFO, logger="scratchlab"):
        res = evaluate_checkpoint(cfg, run / "model_final.pth", per_class=True)
    assert "AP-ellipse" not in res["bbox"] and "AP-circle" in res["bbox"]
    notes = [r.getMessage() for r in caplog.records if "has no annotation of" in r.getMessage()]
    assert len(notes) == 1 and "'ellipse' (id 2)" in notes[0]


def _shifted_ids(src: str, dst) -> str:
    """A copy of a COCO file with every category id moved up by 100 (names unchanged)."""
    data = json.loads(open(src).read())
    for c in data["categories"]:
        c["id"] += 100
    for a in data["annotations"]:
        a["category_id"] += 100
    dst.write_text(json.dumps(data))
    return str(dst)


def test_resume_refuses_a_training_file_whose_category_ids_changed(tiny_cfg, tmp_path):
    tiny_cfg.eval.period = 0
    train(tiny_cfg, tmp_path / "run")
    tiny_cfg.data.train_json = _shifted_ids(tiny_cfg.data.train_json, tmp_path / "train.json")
    tiny_cfg.data.val_json = _shifted_ids(tiny_cfg.data.val_json, tmp_path / "val.json")
    with pytest.raises(
        DatasetError, match=r"last\.pth: its run trained on category ids \[1, 2.*train\.json now gives \[101"
    ):
        train(tiny_cfg, tmp_path / "run", resume=True)
