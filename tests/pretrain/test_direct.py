import json
import shutil

import pytest
import torch

from scratchlab.config import load_config
from scratchlab.models import build_model
from scratchlab.pretrain.direct import pretrain_direct, stage_configs
from tests.conftest import ROOT, TINY

DIRECT = ROOT / "configs" / "mini" / "direct_gn.yaml"


def test_both_stages_run_and_stage2_starts_from_stage1(tmp_path, synth_data):
    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    cfg = load_config(
        DIRECT,
        [
            *TINY,
            *data,
            "eval.period=0",
            "direct.stage1=[input.crop_size=48, 'input.scale_jitter=[0.8,1.2]', "
            "solver.ims_per_batch=4, solver.constant_lr=true, solver.max_iter=3]",
            "direct.stage2=[solver.max_iter=2]",
        ],
    )
    s1, s2 = stage_configs(cfg, tmp_path)
    assert s1.input.crop_size == 48 and s1.solver.constant_lr and s1.model.init == "random"
    assert s2.input.crop_size is None and s2.model.init == str(tmp_path / "stage1" / "model_final.pth")

    final = pretrain_direct(cfg, tmp_path)
    for stage in ("stage1", "stage2"):
        assert (tmp_path / stage / "final_metrics.json").is_file()
    assert json.loads((tmp_path / "final_metrics.json").read_text())["iteration"] == 2

    # Stage 2's model is built from stage 1's whole detector: every tensor equal before fine-tuning.
    stage1 = torch.load(tmp_path / "stage1" / "model_final.pth", weights_only=True)["model"]
    model = build_model(s2, num_classes=len(json.loads(open(synth_data["train_json"]).read())["categories"]))
    assert model.init_report["missing"] == [] and model.init_report["loaded"] == len(
        [k for k in stage1 if not k.endswith("num_batches_tracked")]
    )
    for key in ("backbone.body.layer2.0.conv1.weight", "roi_heads.box_predictor.cls_score.weight"):
        assert torch.equal(model.state_dict()[key], stage1[key])
    # ... and the fine-tuning changed them.
    stage2 = torch.load(tmp_path / "stage2" / "model_final.pth", weights_only=True)["model"]
    assert not torch.equal(
        stage2["backbone.body.layer2.0.conv1.weight"], stage1["backbone.body.layer2.0.conv1.weight"]
    )

    # Stage 1 ran at low resolution: 48 px crops.
    c1 = json.loads((tmp_path / "stage1" / "final_metrics.json").read_text())["cost"]
    assert c1["pixels_seen"] == c1["images_seen"] * 48 * 48
    # The cost adds up: stage 2's total = its own + stage 1's.
    cost = final["cost"]
    assert cost["pretrain"]["kind"] == "direct"
    for key in ("images_seen", "instances_seen", "pixels_seen"):
        assert cost["pretrain"][key] == c1["total"][key]
        assert cost["total"][key] == cost[key] + c1["total"][key]


def test_stage1_epochs_set_its_length_from_the_training_images_the_regime_keeps(tmp_path, synth_data):
    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    stage1 = "direct.stage1=[solver.ims_per_batch=4, solver.max_iter=999]"
    images = sum(1 for i in json.loads(open(synth_data["train_json"]).read())["images"])  # all have shapes
    s1, _ = stage_configs(load_config(DIRECT, [*data, stage1, "direct.stage1_epochs=3"]), tmp_path)
    assert s1.solver.max_iter == -(-3 * images // 4)  # 3 passes over the 12 images, rounded up
    half, _ = stage_configs(
        load_config(DIRECT, [*data, stage1, "direct.stage1_epochs=3", "data.subset=0.5"]), tmp_path
    )
    assert half.solver.max_iter == -(-3 * (images // 2) // 4)
    unset, _ = stage_configs(load_config(DIRECT, [*data, stage1]), tmp_path)
    assert unset.solver.max_iter == 999  # without stage1_epochs the list's own length stands


@pytest.mark.slow
def test_a_run_killed_in_either_stage_and_resumed_ends_with_the_uninterrupted_runs_weights(
    tmp_path, synth_data, monkeypatch
):
    """Exact resume across both stages: copies of stage 1's and stage 2's iteration-2 checkpoints, each
    resumed in its own folder (the second beside a copy of the finished stage 1), end with the uninterrupted
    run's stage-2 weights, bit for bit; stage 2 evaluates at 3, between its checkpoint and its end."""
    from scratchlab.engine import checkpoint
    from tests.conftest import copy_checkpoints, differing_tensors

    cfg = load_config(
        DIRECT,
        [
            *TINY,
            *[f"data.{k}={v}" for k, v in synth_data.items()],
            "seed=1",
            "direct.stage1=[input.crop_size=48, 'input.scale_jitter=[0.8,1.2]', "
            "solver.ims_per_batch=4, solver.constant_lr=true, solver.max_iter=4, eval.period=0]",
            "direct.stage2=[solver.max_iter=4, eval.period=3]",
        ],
    )
    killed = {"stage1": tmp_path / "killed_in_stage1", "stage2": tmp_path / "killed_in_stage2"}

    def copy_at_2(state, ckpt_dir):  # the uninterrupted run's only: the resumed ones save at 2 in stage 2 too
        stage, run = ckpt_dir.parent.name, ckpt_dir.parent.parent.name
        return killed[stage] / stage / "checkpoints" if state["iteration"] == 2 and run == "whole" else None

    copy_checkpoints(monkeypatch, checkpoint, copy_at_2)
    pretrain_direct(cfg, tmp_path / "whole")
    (killed["stage2"] / "stage1").mkdir()
    for name in ("model_final.pth", "final_metrics.json"):
        shutil.copy(tmp_path / "whole" / "stage1" / name, killed["stage2"] / "stage1" / name)
    for stage, out in killed.items():
        pretrain_direct(cfg, out, resume=True)
        assert "resumed from" in (out / stage / "log.txt").read_text()
    for stage in ("stage1", "stage2"):
        want = torch.load(tmp_path / "whole" / stage / "model_final.pth", weights_only=True)["model"]
        for out in killed.values():
            got = torch.load(out / stage / "model_final.pth", weights_only=True)["model"]
            assert differing_tensors(want, got) == [], (stage, out.name)
