"""Provenance of model.init: source, sha256, pre-training data and a label that names them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
import torchvision

from scratchlab.models import describe_init

REPORT = {"loaded": 3, "missing": ["a"], "unexpected": ["fc.weight"], "skipped_shape": [], "format": "timm"}


def test_random():
    p = describe_init("random", {"loaded": 0})
    assert p["source"] == "random" and p["sha256"] is None and p["label"] == "none (random init)"


def test_published_file_names_its_data_when_stated(tmp_path: Path):
    path = tmp_path / "resnet50_gn.pth"
    torch.save({"conv1.weight": torch.ones(1)}, path)
    p = describe_init(str(path), REPORT, init_data="ImageNet-1k")
    assert p["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert p["label"] == "ImageNet-1k (timm file resnet50_gn.pth)" and p["file"] == str(path.resolve())
    assert p["load"] == {"loaded": 3, "missing": 1, "unexpected": ["fc.weight"], "re_initialised": []}
    assert describe_init(str(path), REPORT)["data"] == "not stated (set model.init_data)"


def test_torchvision_enum_and_its_released_file(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    p = describe_init("ResNet50_Weights.IMAGENET1K_V2", {"format": "torchvision"})
    assert p["label"] == "ImageNet-1k (torchvision IMAGENET1K_V2)" and p["sha256"] is None  # not cached
    name = os.path.basename(torchvision.models.get_weight("ResNet50_Weights.IMAGENET1K_V2").url)
    path = tmp_path / name
    torch.save({"conv1.weight": torch.ones(1)}, path)
    p = describe_init(str(path), {"format": "torchvision"})
    assert p["label"] == "ImageNet-1k (torchvision ResNet50_Weights.IMAGENET1K_V2 file)"


def test_own_classification_backbone_reads_pretrain_meta(tmp_path: Path):
    path = tmp_path / "backbone.pth"
    torch.save({"conv1.weight": torch.ones(1)}, path)
    (tmp_path / "pretrain_meta.json").write_text(json.dumps({"data": "generated shapes, 8 classes"}))
    p = describe_init(str(path), {"format": "scratchlab"})
    assert p["label"] == "generated shapes, 8 classes (scratchlab pretrain classify)"


def test_detector_trained_on_the_target_set(tmp_path: Path):
    run = tmp_path / "stage1"
    run.mkdir()
    torch.save({"model": {"conv1.weight": torch.ones(1)}}, run / "model_final.pth")
    (run / "final_metrics.json").write_text("{}")
    (run / "config.yaml").write_text(f"data: {{train_json: {tmp_path / 'train.json'}}}\n")
    p = describe_init(
        str(run / "model_final.pth"), {"format": "scratchlab"}, train_json=str(tmp_path / "train.json")
    )
    assert p["data"] == "the target set" and p["label"] == "the target set (scratchlab detector stage1)"
