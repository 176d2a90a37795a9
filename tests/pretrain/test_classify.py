import json

import pytest
import torch

from scratchlab.config import load_config
from scratchlab.models import build_model
from scratchlab.pretrain.classify import pretrain_classify
from tests.conftest import ROOT, TINY

CLASSIFY = ROOT / "configs" / "mini" / "classify_gn.yaml"
SMALL = ["classify.epochs=3", "classify.batch_size=8", "classify.synth.classes=4", "classify.synth.per_class=12",
         "classify.synth.image_size=40", "classify.image_size=32", "classify.warmup_epochs=0",
         "classify.base_lr=0.05"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cls")
    meta = pretrain_classify(load_config(CLASSIFY, [*TINY, *SMALL]), out)
    return out, meta


def test_writes_backbone_and_meta_and_learns(pretrained):
    out, meta = pretrained
    assert (out / "backbone.pth").is_file()
    saved = json.loads((out / "pretrain_meta.json").read_text())
    assert saved == meta
    assert meta["images"] == 4 * 12 and meta["epochs"] == 3
    assert meta["images_seen"] == 3 * (48 // 8) * 8
    assert meta["pixels_seen"] == meta["images_seen"] * 32 * 32
    assert meta["wall_s"] > 0 and 0 <= meta["top1"] <= 100
    assert meta["epoch_losses"][-1] < meta["epoch_losses"][0], "training reduces the loss"


def test_backbone_loads_into_the_detector_with_no_missing_body_key(pretrained):
    out, _ = pretrained
    cfg = load_config(ROOT / "configs" / "mini" / "mask_rcnn_gn_pretrained.yaml", [*TINY, f"model.init={out / 'backbone.pth'}"])
    model = build_model(cfg, num_classes=3)
    report = model.init_report
    assert not [k for k in report["missing"] if k.startswith("backbone.body.")]
    assert not report["unexpected"]
    state = torch.load(out / "backbone.pth", weights_only=True)
    assert torch.equal(model.backbone.body.layer3[0].conv1.weight, state["layer3.0.conv1.weight"])
    assert set(state) == {k for k in model.backbone.body.state_dict()}


def test_finetuned_run_adds_the_pretraining_cost(pretrained, tmp_path, synth_data):
    from scratchlab.engine import train
    from tests.conftest import MINI

    out, meta = pretrained
    cfg = load_config(MINI, [*TINY, *[f"data.{k}={v}" for k, v in synth_data.items()],
                             f"model.init={out / 'backbone.pth'}", "eval.period=0", "solver.max_iter=2"])
    cost = train(cfg, tmp_path)["cost"]
    assert cost["pretrain"]["kind"] == "classify"
    assert cost["pretrain"]["images_seen"] == meta["images_seen"]
    for key in ("images_seen", "instances_seen", "pixels_seen"):
        assert cost["total"][key] == cost[key] + meta[key]
    assert cost["total"]["wall_s"] == pytest.approx(cost["wall_s"] + meta["wall_s"])
