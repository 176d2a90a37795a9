"""A box-only annotation file is refused for a mask config from its JSON, before any image is decoded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scratchlab.engine import train
from scratchlab.engine.categories import check_annotation_files
from scratchlab.engine.data import DatasetError


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
