"""torchrun with 2 CPU processes (gloo): training runs, the cost counts both ranks, and evaluation
gathers both ranks' predictions (the AP equals a single-process evaluation of the same weights)."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from scratchlab.config import load_config
from scratchlab.engine import evaluate_checkpoint
from tests.conftest import MINI, ROOT, TINY


@pytest.mark.skipif(
    shutil.which("torchrun", path=str(__import__("pathlib").Path(sys.executable).parent)) is None,
    reason="torchrun not installed beside this Python",
)
@pytest.mark.slow
def test_torchrun_two_processes(tmp_path, synth_data):
    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    torchrun = str(__import__("pathlib").Path(sys.executable).parent / "torchrun")
    cmd = [
        torchrun,
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "scratchlab",
        "train",
        str(MINI),
        "--out",
        str(tmp_path),
        *TINY,
        *data,
        "solver.max_iter=4",
        "eval.period=0",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    final = json.loads((tmp_path / "final_metrics.json").read_text())
    assert final["cost"]["images_seen"] == 4 * 2  # 4 iterations x global batch 2 (1 image per rank)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pth", weights_only=True)
    assert len(ckpt["rng"]) == 2  # every rank's RNG state, for an exact resume
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])
    single = evaluate_checkpoint(load_config(tmp_path / "config.yaml"), tmp_path / "model_final.pth")
    assert final["bbox"] == pytest.approx(single["bbox"], nan_ok=True)


# Run under torchrun: rank 1's detector returns NaN losses at its second training step; rank 0's stay finite.
NAN_ON_RANK_1 = """
import sys

from scratchlab.config import load_config
from scratchlab.engine import trainer
from scratchlab.utils.dist import get_rank

real_build_model = trainer.build_model


def build_model(cfg, num_classes):
    model = real_build_model(cfg, num_classes=num_classes)
    steps = []

    def poison(module, args, losses):
        steps.append(1)
        if get_rank() == 1 and len(steps) == 2:
            return {k: v * float("nan") for k, v in losses.items()}

    model.register_forward_hook(poison)
    return model


trainer.build_model = build_model
trainer.train(load_config(sys.argv[1], sys.argv[3:]), sys.argv[2])
"""


@pytest.mark.skipif(
    shutil.which("torchrun", path=str(__import__("pathlib").Path(sys.executable).parent)) is None,
    reason="torchrun not installed beside this Python",
)
@pytest.mark.slow
def test_nonfinite_loss_on_one_rank_stops_every_rank(tmp_path, synth_data):
    script = tmp_path / "nan_on_rank_1.py"
    script.write_text(NAN_ON_RANK_1)
    torchrun = str(__import__("pathlib").Path(sys.executable).parent / "torchrun")
    train_only = [
        f"data.train_json={synth_data['train_json']}",
        f"data.train_images={synth_data['train_images']}",
    ]
    cmd = [
        torchrun,
        "--nproc_per_node",
        "2",
        "--master_port",
        "29541",
        str(script),
        str(MINI),
        str(tmp_path / "run"),
        *TINY,
        *train_only,
        "solver.max_iter=4",
        "eval.period=0",
    ]
    res = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert res.returncode != 0
    # Both ranks stop at the same step with the same error (rank 0 does not wait in a collective for ever).
    assert res.stderr.count("NonFiniteLossError: non-finite loss at iteration 2 on rank(s) [1]") == 2, (
        res.stderr[-3000:]
    )
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pth", weights_only=True)
    assert ckpt["iteration"] == 1 and len(ckpt["rng"]) == 2  # the state before the bad step, both ranks' RNG


@pytest.mark.skipif(
    shutil.which("torchrun", path=str(__import__("pathlib").Path(sys.executable).parent)) is None,
    reason="torchrun not installed beside this Python",
)
@pytest.mark.slow
def test_two_nodes_meet_through_the_c10d_rendezvous(tmp_path, synth_data):
    """The README's multi-node command, with two local torchrun agents as the two nodes."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = str(__import__("pathlib").Path(sys.executable).parent / "torchrun")
    train_only = [
        f"data.train_json={synth_data['train_json']}",
        f"data.train_images={synth_data['train_images']}",
    ]
    cmd = [
        torchrun,
        "--nnodes",
        "2",
        "--nproc_per_node",
        "1",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"localhost:{port}",
        "--rdzv-id",
        "scratchlab-test",
        "-m",
        "scratchlab",
        "train",
        str(MINI),
        "--out",
        str(tmp_path / "run"),
        *TINY,
        *train_only,
        "solver.max_iter=2",
        "eval.period=0",
    ]
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    nodes = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = [n.communicate(timeout=240)[1] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], errors[0][-2000:] + errors[1][-2000:]
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pth", weights_only=True)
    assert len(ckpt["rng"]) == 2  # one process on each "node"
    assert json.loads((tmp_path / "run" / "final_metrics.json").read_text())["cost"]["images_seen"] == 2 * 2
