"""Done-criterion of published weights in studies: a torchvision-enum arm, a timm-file arm and a
Detectron2-file arm (narrow files made here) run end to end through `scratchlab study ... key=value`;
each arm's report row names its pre-training source and data; a partial file fails its arm naming the
key while the others go on."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
import torchvision
import yaml

from scratchlab.cli import main
from scratchlab.config import load_config
from scratchlab.models import build_backbone_body
from scratchlab.study.verdict import verdict_lines
from tests.conftest import MINI, TINY
from tests.models.weights.formats import to_detectron2

C2_INPUT = ["input.pixel_mean=[0.481458,0.454692,0.403844]", "input.pixel_std=[0.003922,0.003922,0.003922]"]


def _body_state(norm: str, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return build_backbone_body(load_config(MINI, [*TINY, f"model.norm={norm}"])).state_dict()


@pytest.fixture
def weight_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    # torchvision enum: pre-placed in the torch.hub cache under the enum's file name, so nothing downloads.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried to download"))
    url = torchvision.models.get_weight("ResNet18_Weights.IMAGENET1K_V1").url
    cache = tmp_path / "torch" / "hub" / "checkpoints" / os.path.basename(url)
    cache.parent.mkdir(parents=True)
    torch.save(_body_state("BN", 1), cache)
    timm = tmp_path / "resnet18_gn.pth.tar"
    torch.save(
        {"arch": "resnet18_gn", "state_dict": _body_state("GN", 2), "state_dict_ema": _body_state("GN", 3)},
        timm,
    )
    # A Caffe2-convention network sees x * 255 - mean: its conv1 is correspondingly small.
    d2_body = _body_state("BN", 4)
    d2_body["conv1.weight"] = d2_body["conv1.weight"] / 255
    d2 = {k: v.numpy() for k, v in to_detectron2(d2_body).items()}
    d2_file = tmp_path / "R-18-d2.pkl"
    d2_file.write_bytes(pickle.dumps({"model": d2, "__author__": "Detectron2 Model Zoo"}, protocol=2))
    partial = dict(d2)
    partial.pop("backbone.bottom_up.res5.1.conv2.weight")
    partial_file = tmp_path / "partial-d2.pkl"
    partial_file.write_bytes(
        pickle.dumps({"model": partial, "__author__": "Detectron2 Model Zoo"}, protocol=2)
    )
    return {"torchvision": cache, "timm": timm, "detectron2": d2_file, "partial": partial_file}


@pytest.mark.slow
def test_published_weights_arms_end_to_end(tmp_path: Path, synth_data, weight_files, capsys):
    spec = {
        "name": "published weights",
        "base": str(MINI),
        "arms": [
            {"name": "scratch", "init": "random", "norm": "GN"},
            {
                "name": "tv",
                "init": "weights",
                "weights": "ResNet18_Weights.IMAGENET1K_V1",
                "norm": "FrozenBN",
            },
            {
                "name": "timm",
                "init": "weights",
                "weights": str(weight_files["timm"]),
                "weights_data": "ImageNet-1k",
                "norm": "GN",
            },
            {
                "name": "d2",
                "init": "weights",
                "weights": str(weight_files["detectron2"]),
                "weights_data": "ImageNet-1k",
                "norm": "FrozenBN",
                "overrides": C2_INPUT,
            },
            {
                "name": "partial",
                "init": "weights",
                "weights": str(weight_files["partial"]),
                "weights_data": "ImageNet-1k",
                "norm": "FrozenBN",
                "overrides": C2_INPUT,
            },
        ],
    }
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(spec))
    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    out = tmp_path / "out"
    # The dataset and the tiny model come from the command line: overrides applied to every arm. A low
    # LR: the 1x rule keeps 0.02 until 2/3 of the 6 iterations, at which the un-normalised FPN and heads
    # of the FrozenBN arms can blow up; this test is about plumbing, not training.
    assert (
        main(
            [
                "study",
                str(study_file),
                "--out",
                str(out),
                *TINY,
                *data,
                "eval.period=0",
                "solver.base_lr=0.002",
            ]
        )
        == 1  # the "partial" arm fails (as intended); the others finish and the report is written
    )

    study = json.loads((out / "study.json").read_text())
    arms = {a["name"]: a for a in study["arms"]}
    assert {n: a["status"] for n, a in arms.items()} == {
        "scratch": "finished",
        "tv": "finished",
        "timm": "finished",
        "d2": "finished",
        "partial": "failed",
    }
    assert (
        "res5.1.conv2.weight" in arms["partial"]["error"]
        or "layer4.1.conv2.weight" in arms["partial"]["error"]
    )

    labels = {
        "tv": "ImageNet-1k (torchvision IMAGENET1K_V1)",
        "timm": "ImageNet-1k (timm file resnet18_gn.pth.tar)",
        "d2": "ImageNet-1k (detectron2 file R-18-d2.pkl)",
    }
    for name, label in labels.items():
        prov = json.loads((out / "arms" / name / "final_metrics.json").read_text())["provenance"]
        file = weight_files["torchvision" if name == "tv" else "timm" if name == "timm" else "detectron2"]
        assert prov["label"] == label and arms[name]["provenance"]["label"] == label
        assert prov["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
        assert prov["data"] == "ImageNet-1k" and prov["cost"] == "not counted: external"
        assert prov["load"]["missing"] > 0 and prov["load"]["re_initialised"] == []  # heads start at random
    assert arms["scratch"]["provenance"]["label"] == "none (random init)"

    report = (out / "report.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in report.splitlines() if line.startswith("| ")}
    for name, label in labels.items():
        assert label in rows[name] and "not counted: external" in rows[name]
    lines = verdict_lines(study["verdict"])
    for label in labels.values():
        assert any(f"pre-training on {label}" in line for line in lines), label
    assert any("not counted: external" in line for line in lines)
