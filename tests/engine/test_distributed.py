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
from tests.conftest import MINI, TINY


@pytest.mark.skipif(shutil.which("torchrun", path=str(__import__("pathlib").Path(sys.executable).parent)) is None,
                    reason="torchrun not installed beside this Python")
def test_torchrun_two_processes(tmp_path, synth_data):
    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    torchrun = str(__import__("pathlib").Path(sys.executable).parent / "torchrun")
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", "29533", "-m", "scratchlab", "train", str(MINI),
           "--out", str(tmp_path), *TINY, *data, "solver.max_iter=4", "eval.period=0"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    final = json.loads((tmp_path / "final_metrics.json").read_text())
    assert final["cost"]["images_seen"] == 4 * 2  # 4 iterations x global batch 2 (1 image per rank)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pth", weights_only=True)
    assert len(ckpt["rng"]) == 2  # every rank's RNG state, for an exact resume
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])
    single = evaluate_checkpoint(load_config(tmp_path / "config.yaml"), tmp_path / "model_final.pth")
    assert final["bbox"] == pytest.approx(single["bbox"], nan_ok=True)
