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
        with pytest.raises(DatasetError, match=r"bad\.json: annotation id 1: bbox width and height must be > 0"):
            validate_data(tiny_cfg)
    assert counted.count("bad.json") == 2
    assert len(list(check_cache_dir().glob("*.json"))) == 1  # only the clean val split


def test_other_ranks_take_rank_zeros_verdict(tiny_cfg, counted, monkeypatch):
    monkeypatch.setattr(engine_data, "is_main_process", lambda: False)
    monkeypatch.setattr(engine_data, "all_gather_objects", lambda obj: ["rank 0 found: x.json: image id 3: broken", obj])
    with pytest.raises(DatasetError, match="rank 0 found"):
        validate_data(tiny_cfg)
    monkeypatch.setattr(engine_data, "all_gather_objects", lambda obj: [None, obj])
    validate_data(tiny_cfg)
    assert counted == []  # a non-zero rank never decodes the images itself
