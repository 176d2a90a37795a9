import json

import pytest
import torch

from scratchlab.config import load_config
from scratchlab.models import build_model
from scratchlab.pretrain.classify import pretrain_classify
from tests.conftest import ROOT, TINY

CLASSIFY = ROOT / "configs" / "mini" / "classify_gn.yaml"
SMALL = [
    "classify.epochs=3",
    "classify.batch_size=8",
    "classify.synth.classes=4",
    "classify.synth.per_class=12",
    "classify.synth.image_size=40",
    "classify.image_size=32",
    "classify.warmup_epochs=0",
    "classify.base_lr=0.05",
]


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
    cfg = load_config(
        ROOT / "configs" / "mini" / "mask_rcnn_gn_pretrained.yaml",
        [*TINY, f"model.init={out / 'backbone.pth'}"],
    )
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
    cfg = load_config(
        MINI,
        [
            *TINY,
            *[f"data.{k}={v}" for k, v in synth_data.items()],
            f"model.init={out / 'backbone.pth'}",
            "eval.period=0",
            "solver.max_iter=2",
        ],
    )
    cost = train(cfg, tmp_path)["cost"]
    assert cost["pretrain"]["kind"] == "classify"
    assert cost["pretrain"]["images_seen"] == meta["images_seen"]
    for key in ("images_seen", "instances_seen", "pixels_seen"):
        assert cost["total"][key] == cost[key] + meta[key]
    assert cost["total"]["wall_s"] == pytest.approx(cost["wall_s"] + meta["wall_s"])
    # Each peak is its own run's (both ran in this one process), and says so.
    assert cost["peak_memory_scope"] == cost["pretrain"]["peak_memory_scope"] == "run"


def test_meta_has_top5_and_a_checkpoint_per_epoch(pretrained):
    out, meta = pretrained
    assert 0 <= meta["top1"] <= meta["top5"] <= 100 and meta["world_size"] == 1
    ckpt = torch.load(out / "checkpoints" / "last.pth", weights_only=True)
    assert json.loads(ckpt["progress"])["epoch"] == 3


def _torchrun(out, *extra):
    import socket
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = Path(sys.executable).parent / "torchrun"
    return [
        str(torchrun),
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        "-m",
        "scratchlab",
        "pretrain",
        "classify",
        str(CLASSIFY),
        "--out",
        str(out),
        *TINY,
        *SMALL,
        *extra,
    ]


@pytest.mark.slow
def test_ddp_two_ranks_shard_checkpoint_and_resume_exactly(tmp_path):
    """2 gloo ranks, each its half of every epoch; killed (SIGKILL, every rank) after its first epoch's
    checkpoint and resumed with --resume, the backbone is bit-identical to the uninterrupted run's."""
    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not Path(_torchrun(tmp_path)[0]).exists():
        pytest.skip("torchrun not installed beside this Python")
    data = [f"data.root={tmp_path / 'data'}"]
    from scratchlab.data.synth_classify import make_synth_classify

    make_synth_classify(tmp_path / "data", 4, 12, 40, 0)
    res = subprocess.run(
        _torchrun(tmp_path / "ref", *data), env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((tmp_path / "ref" / "pretrain_meta.json").read_text())
    assert meta["world_size"] == 2 and meta["images_seen"] == 3 * (48 // 8) * 8  # 2 ranks x 4 images per step
    assert 0 <= meta["top1"] <= meta["top5"] <= 100
    assert len(torch.load(tmp_path / "ref" / "checkpoints" / "last.pth", weights_only=True)["rng"]) == 2

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _torchrun(killed, *data),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not (killed / "checkpoints" / "last.pth").exists():
        assert proc.poll() is None and time.monotonic() < deadline, (
            "the run ended before its first checkpoint"
        )
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "backbone.pth").exists()
    res = subprocess.run(
        [*_torchrun(killed, *data), "--resume"], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed from" in (killed / "log.txt").read_text()
    got = torch.load(killed / "backbone.pth", weights_only=True)
    want = torch.load(tmp_path / "ref" / "backbone.pth", weights_only=True)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert json.loads((killed / "pretrain_meta.json").read_text())["epoch_losses"] == meta["epoch_losses"]


def test_a_run_resumed_after_an_epoch_ends_with_the_uninterrupted_runs_weights(tmp_path, monkeypatch):
    """Exact resume in one process: a copy of the checkpoint after epoch 1, resumed in another folder (with
    the same data), trains epochs 2-3 into the same bits, classifier included. No loader worker, so the
    augmentation draws from the global RNG that the checkpoint restores."""
    import shutil

    from scratchlab.engine import checkpoint
    from tests.conftest import copy_checkpoints, differing_tensors

    resumed = tmp_path / "resumed"

    def copy_after_epoch_1(state, ckpt_dir):
        if json.loads(state["progress"])["epoch"] != 1:
            return None
        shutil.copytree(tmp_path / "whole" / "data", resumed / "data")
        return resumed / "checkpoints"

    copy_checkpoints(monkeypatch, checkpoint, copy_after_epoch_1)
    cfg = load_config(CLASSIFY, [*TINY, *SMALL, "data.num_workers=0", "seed=1"])
    whole = pretrain_classify(cfg, tmp_path / "whole")
    again = pretrain_classify(cfg, resumed, resume=True)
    assert "resumed from" in (resumed / "log.txt").read_text()
    want, got = (
        torch.load(d / "checkpoints" / "last.pth", weights_only=True) for d in (tmp_path / "whole", resumed)
    )
    assert differing_tensors(want["model"], got["model"]) == []
    assert again["epoch_losses"] == whole["epoch_losses"] and again["top1"] == whole["top1"]


def test_a_non_finite_loss_stops_with_the_last_epochs_checkpoint_on_disk(tmp_path, monkeypatch):
    from scratchlab.engine import NonFiniteLossError
    from scratchlab.pretrain import classify

    real, calls = classify.nn.functional.cross_entropy, []

    def nan_in_epoch_2(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) == 48 // 8 + 1 else loss

    monkeypatch.setattr(classify.nn.functional, "cross_entropy", nan_in_epoch_2)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 1 on rank\(s\) \[0\]"):
        pretrain_classify(load_config(CLASSIFY, [*TINY, *SMALL, "classify.epochs=2"]), tmp_path)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pth", weights_only=True)
    assert json.loads(ckpt["progress"])["epoch"] == 1 and ckpt["cost"]["images_seen"] == 48
    assert not (tmp_path / "backbone.pth").exists()


def test_train_transforms_add_colour_jitter_and_lighting_only_when_set():
    from torchvision.transforms import v2

    from scratchlab.data.lighting import PCALighting
    from scratchlab.pretrain.classify import _transforms

    def kinds(overrides):
        return [type(t) for t in _transforms(load_config(None, overrides), True).transforms]

    plain = kinds([])
    assert v2.ColorJitter not in plain and PCALighting not in plain
    augmented = kinds(["classify.color_jitter=0.4", "classify.pca_lighting=0.1"])
    assert augmented.index(v2.ColorJitter) < augmented.index(PCALighting) < augmented.index(v2.Normalize)
    jitter = _transforms(load_config(None, ["classify.color_jitter=0.4"]), True).transforms[4]
    assert (jitter.brightness, jitter.contrast, jitter.saturation) == ((0.6, 1.4),) * 3


def test_a_checkpoint_from_before_the_cost_record_resumes_with_its_counts():
    from scratchlab.pretrain.classify import _cost_of_progress

    cost = _cost_of_progress({"epoch": 2, "images_seen": 40, "pixels_seen": 9000, "wall_s": 3.5})
    assert (cost.images_seen, cost.instances_seen, cost.pixels_seen, cost.wall_s) == (40, 40, 9000, 3.5)
