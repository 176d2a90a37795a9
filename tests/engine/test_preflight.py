"""The checks before iteration 0: a box-only file refused from its JSON before any image is decoded; the
data check run once per dataset version (a clean verdict cached by annotation content and image folder)
with non-zero ranks acting on rank 0's verdict; the checks on the built datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import scratchlab.engine.preflight as preflight
from scratchlab.config import load_config
from scratchlab.data.check import check_dataset
from scratchlab.data.coco import CocoDetection
from scratchlab.engine import train
from scratchlab.engine.data import DatasetError
from scratchlab.engine.preflight import (
    check_annotation_files,
    check_cache_dir,
    require_class_count,
    require_masks,
    validate_data,
)


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """The real checker, with its calls counted, and an empty cache of the test's own."""
    monkeypatch.setenv("SCRATCHLAB_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[str] = []

    def checker(ann, images, progress=False):
        calls.append(Path(ann).name)
        return check_dataset(ann, images, progress=progress)

    monkeypatch.setattr(preflight, "check_dataset", checker)
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
    monkeypatch.setattr(preflight, "is_main_process", lambda: False)
    monkeypatch.setattr(preflight, "_share_from_main", lambda obj: "rank 0 found: x.json: image id 3: broken")
    with pytest.raises(DatasetError, match="rank 0 found"):
        validate_data(tiny_cfg)
    monkeypatch.setattr(preflight, "_share_from_main", lambda obj: None)
    validate_data(tiny_cfg)
    assert counted == []  # a non-zero rank never decodes the images itself


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


def _copy(synth_data: dict, tmp_path: Path, unmasked: int | None = None) -> dict:
    """The training split copied under ``tmp_path`` with its images made unreadable; ``unmasked``
    annotations lose their segmentation (None: all of them)."""
    images = tmp_path / "images"
    shutil.copytree(synth_data["train_images"], images)
    for f in images.iterdir():
        f.write_bytes(b"not an image")
    data = json.loads(Path(synth_data["train_json"]).read_text())
    for a in data["annotations"][:unmasked]:
        a.pop("segmentation", None)
    ann = tmp_path / "train.json"
    ann.write_text(json.dumps(data))
    return {"train_json": str(ann), "train_images": str(images), "val_json": "", "val_images": ""}


def test_refusal_comes_before_the_image_check(tiny_cfg, synth_data, tmp_path):
    tiny_cfg.data.update(_copy(synth_data, tmp_path))
    with pytest.raises(DatasetError, match="box-only data cannot train Mask R-CNN") as info:
        train(tiny_cfg, tmp_path / "run")
    assert str(tmp_path / "train.json") in str(info.value) and "failed validation" not in str(info.value)


def test_partly_masked_data_is_left_to_the_checks(tiny_cfg, synth_data, tmp_path):
    tiny_cfg.data.update(_copy(synth_data, tmp_path, unmasked=1))
    check_annotation_files(tiny_cfg)  # some masks: the per-image checks decide
    with pytest.raises(DatasetError, match="failed validation"):
        train(tiny_cfg, tmp_path / "run")


def test_box_only_data_suits_a_box_detector(tiny_cfg, synth_data, tmp_path):
    tiny_cfg.data.update(_copy(synth_data, tmp_path))
    tiny_cfg.model.arch = "faster_rcnn"
    check_annotation_files(tiny_cfg)


def test_an_unreadable_file_is_left_to_the_data_check(tiny_cfg, tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    tiny_cfg.data.train_json = str(tmp_path / "broken.json")
    check_annotation_files(tiny_cfg)


def test_box_only_data_suits_faster_rcnn(synth_data, tmp_path):
    ds = CocoDetection(_copy(synth_data, tmp_path)["train_json"], synth_data["train_images"])
    assert len(ds.annotations_without_masks()) == sum(
        not a.get("iscrowd", 0) for i in ds.ids for a in ds.anns[i]
    )
    require_masks(load_config(None, ["model.arch=faster_rcnn"]), ds)  # no error


def test_num_classes_the_data_contradicts_is_refused(synth_data):
    ds = CocoDetection(synth_data["train_json"], synth_data["train_images"])
    require_class_count(load_config(None, [f"model.num_classes={ds.num_classes}"]), ds)  # agrees
    require_class_count(load_config(None, []), ds)  # unset: taken from the data
    with pytest.raises(
        DatasetError, match=rf"model.num_classes={ds.num_classes + 1}, but .* has {ds.num_classes}"
    ):
        require_class_count(load_config(None, [f"model.num_classes={ds.num_classes + 1}"]), ds)
