"""The engine's data: a converted dataset trains end to end; the training set's size without building it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import scratchlab.engine.data as engine_data


def test_instance_mask_pngs_convert_check_and_train_with_masks(tmp_path, capsys):
    """The issue's path: a folder of images with instance-id PNGs -> convert -> check -> Mask R-CNN run."""
    import numpy as np
    from PIL import Image

    from scratchlab.cli import main
    from tests.conftest import MINI, TINY

    src, rng = tmp_path / "src", np.random.default_rng(0)
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(src / "images" / f"{i}.jpg")
        ids = np.zeros((48, 64), np.uint8)
        ids[4:20, 6:30], ids[25:45, 35 + i : 60] = 1, 2
        Image.fromarray(ids).save(src / "masks" / f"{i}_mask.png")
    coco = tmp_path / "coco"
    assert (
        main(
            [
                "data",
                "convert",
                "--from",
                "masks",
                str(src),
                "--out",
                str(coco),
                "--split",
                "0.34",
                "--class-name",
                "blob",
            ]
        )
        == 0
    )
    ann = coco / "annotations"
    data = [
        f"data.train_json={ann / 'instances_train.json'}",
        f"data.train_images={src / 'images'}",
        f"data.val_json={ann / 'instances_val.json'}",
        f"data.val_images={src / 'images'}",
    ]
    assert (
        main(
            [
                "train",
                str(MINI),
                "--out",
                str(tmp_path / "run"),
                *TINY,
                *data,
                "solver.max_iter=2",
                "eval.period=0",
            ]
        )
        == 0
    )
    final = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
    assert 0.0 <= final["segm"]["AP"] <= 100.0 and final["cost"]["instances_seen"] > 0


# --- train_set_size: build_train_set's length, the annotation file parsed once per version --------------


@pytest.mark.parametrize("subset", [None, 0.5, 5])
def test_train_set_size_is_the_train_sets_length(tiny_cfg, subset):
    from scratchlab.config import apply_overrides

    cfg = apply_overrides(
        tiny_cfg, [f"data.subset={'null' if subset is None else subset}", "data.subset_seed=3"]
    )
    assert engine_data.train_set_size(cfg) == len(engine_data.build_train_set(cfg))


def test_train_set_size_parses_a_file_again_only_once_it_changed(tiny_cfg, tmp_path, monkeypatch):
    from scratchlab.config import apply_overrides

    ann = tmp_path / "train.json"
    coco = json.loads(Path(tiny_cfg.data.train_json).read_text())
    ann.write_text(json.dumps(coco))
    cfg = apply_overrides(tiny_cfg, [f"data.train_json={ann}"])
    parsed = []
    real = engine_data.CocoDetection
    monkeypatch.setattr(
        engine_data, "CocoDetection", lambda path, *a, **k: parsed.append(path) or real(path, *a, **k)
    )
    sizes = [engine_data.train_set_size(apply_overrides(cfg, [f"data.subset={s}"])) for s in ("null", 0.5, 4)]
    assert sizes == [12, 6, 4] and len(parsed) == 1
    # One image loses its instances: a new version of the file, parsed again.
    first = coco["images"][0]["id"]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != first]
    ann.write_text(json.dumps(coco))
    assert engine_data.train_set_size(cfg) == 11 and len(parsed) == 2
