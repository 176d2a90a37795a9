"""validate_data: checks once, caches a clean verdict by annotation content and image folder, and lets
non-zero ranks act on rank 0's verdict without decoding anything themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import scratchlab.engine.data as engine_data
from scratchlab.data.check import check_dataset
from scratchlab.engine.data import DatasetError, check_cache_dir, validate_data


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """The real checker, with its calls counted, and an empty cache of the test's own."""
    monkeypatch.setenv("SCRATCHLAB_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[str] = []

    def checker(ann, images, progress=False):
        calls.append(Path(ann).name)
        return check_dataset(ann, images, progress=progress)

    monkeypatch.setattr(engine_data, "check_dataset", checker)
    return calls


def test_second_call_skips_the_check_and_a_changed_file_is_checked_again(tiny_cfg, counted, tmp_path):
    validate_data(tiny_cfg)
    assert counted == ["instances_train.json", "instances_val.json"]
    verdicts = list(check_cache_dir().glob("*.json"))
    assert len(verdicts) == 2 and check_cache_dir().parent == tmp_path / "cache"
    validate_data(tiny_cfg)  # resume / another study arm on the same data
    assert len(counted) == 2
    # A changed annotation file (same path) is a different dataset: checked again.
    train = json.loads(Path(tiny_cfg.data.train_json).read_text())
    train["info"] = {"description": "edited"}
    edited = tmp_path / "instances_train.json"
    edited.write_text(json.dumps(train))
    tiny_cfg.data.train_json = str(edited)
    validate_data(tiny_cfg)
    assert counted[2:] == ["instances_train.json"]
    edited.write_text(json.dumps({**train, "info": {"description": "edited again"}}))
    validate_data(tiny_cfg)
    assert counted[3:] == ["instances_train.json"]


def test_errors_are_raised_every_time_and_never_cached(tiny_cfg, counted, tmp_path):
    train = json.loads(Path(tiny_cfg.data.train_json).read_text())
    train["annotations"][0]["bbox"] = [0, 0, -5, 4]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(train))
    tiny_cfg.data.train_json = str(bad)
    for _ in range(2):
        with pytest.raises(
            DatasetError, match=r"bad\.json: annotation id 1: bbox width and height must be > 0"
        ):
            validate_data(tiny_cfg)
    assert counted.count("bad.json") == 2
    assert len(list(check_cache_dir().glob("*.json"))) == 1  # only the clean val split


def test_other_ranks_take_rank_zeros_verdict(tiny_cfg, counted, monkeypatch):
    monkeypatch.setattr(engine_data, "is_main_process", lambda: False)
    monkeypatch.setattr(
        engine_data, "_share_from_main", lambda obj: "rank 0 found: x.json: image id 3: broken"
    )
    with pytest.raises(DatasetError, match="rank 0 found"):
        validate_data(tiny_cfg)
    monkeypatch.setattr(engine_data, "_share_from_main", lambda obj: None)
    validate_data(tiny_cfg)
    assert counted == []  # a non-zero rank never decodes the images itself


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


def test_an_image_rewritten_in_place_is_checked_again(tiny_cfg, counted, tmp_path):
    import os
    import shutil

    images = tmp_path / "images"
    shutil.copytree(tiny_cfg.data.train_images, images)
    tiny_cfg.data.train_images, tiny_cfg.data.val_json = str(images), None
    validate_data(tiny_cfg)
    victim = sorted(images.iterdir())[0]
    folder_times = os.stat(images)
    victim.write_bytes(victim.read_bytes()[:40])  # truncated: the folder's mtime does not change
    os.utime(images, ns=(folder_times.st_atime_ns, folder_times.st_mtime_ns))
    with pytest.raises(DatasetError, match=victim.name):
        validate_data(tiny_cfg)
    assert counted == ["instances_train.json"] * 2
