"""Exact resume, shown: a training run killed with SIGKILL mid-way and resumed with ``--resume`` ends with
weights bit-identical to an uninterrupted run (one process, and two torchrun ranks on gloo), and its
metrics.jsonl holds each iteration once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scratchlab.config import load_config
from scratchlab.engine import train
from tests.conftest import MINI, ROOT, TINY

TORCHRUN = Path(sys.executable).parent / "torchrun"
# Checkpoints at 2 and 4; the run is killed once it has logged iteration 3, so the resumed run starts at
# 2 (or 4, if the kill lands late) and repeats iterations the killed run already logged.
SHORT = [*TINY, "solver.max_iter=5", "checkpoint.period=2", "log.period=1", "eval.period=0"]
KILL_AFTER = 3


def _overrides(synth_data: dict[str, str]) -> list[str]:
    # Training data only: no evaluation, which the weights do not depend on.
    return [
        *SHORT,
        f"data.train_json={synth_data['train_json']}",
        f"data.train_images={synth_data['train_images']}",
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _logged(metrics: Path) -> list[int]:
    if not metrics.exists():
        return []
    rows = []
    for line in metrics.read_text().splitlines():
        try:
            rows.append(json.loads(line)["iteration"])
        except (json.JSONDecodeError, KeyError):
            pass
    return rows


def _train_cmd(out: Path, overrides: list[str], ranks: int) -> list[str]:
    prefix = (
        [sys.executable]
        if ranks == 1
        else [str(TORCHRUN), "--nproc_per_node", str(ranks), "--master_port", str(_free_port())]
    )
    return [*prefix, "-m", "scratchlab", "train", str(MINI), "--out", str(out), *overrides]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "SCRATCHLAB_CACHE_DIR": str(tmp_path / "cache")}


def _run(cmd: list[str], env: dict[str, str]) -> None:
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]


def _kill_after(cmd: list[str], env: dict[str, str], metrics: Path, iteration: int) -> None:
    """Start ``cmd`` in its own process group and SIGKILL the whole group (every rank, as a lost node)
    as soon as ``metrics`` logs ``iteration``."""
    log = metrics.parent.with_name(metrics.parent.name + ".stderr")
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )
    deadline = time.monotonic() + 300
    while iteration not in _logged(metrics):
        assert proc.poll() is None, f"the run ended before iteration {iteration}: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "the run never reached the kill point"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model_final.pth", map_location="cpu", weights_only=True)["model"]


def _assert_resumed_exactly(killed: Path, reference: Path) -> None:
    got, want = _weights(killed), _weights(reference)
    assert got.keys() == want.keys()
    differ = [k for k in want if not torch.equal(got[k], want[k])]
    assert not differ, f"{len(differ)} tensors differ, first {differ[0]}"
    rows = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    ref_rows = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    losses = [(r["iteration"], r["loss"]) for r in rows if "loss" in r]
    assert [it for it, _ in losses] == [1, 2, 3, 4, 5]  # no iteration twice
    assert losses == [(r["iteration"], r["loss"]) for r in ref_rows if "loss" in r]
    assert "resumed from" in (killed / "log.txt").read_text()


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, synth_data):
    overrides, env = _overrides(synth_data), _env(tmp_path)
    train(load_config(MINI, overrides), tmp_path / "reference")
    killed = tmp_path / "killed"
    _kill_after(_train_cmd(killed, overrides, 1), env, killed / "metrics.jsonl", KILL_AFTER)
    assert not (killed / "model_final.pth").exists()
    _run([*_train_cmd(killed, overrides, 1), "--resume"], env)
    _assert_resumed_exactly(killed, tmp_path / "reference")


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed beside this Python")
@pytest.mark.slow
def test_two_rank_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, synth_data):
    overrides, env = _overrides(synth_data), _env(tmp_path)
    _run(_train_cmd(tmp_path / "reference", overrides, 2), env)
    killed = tmp_path / "killed"
    _kill_after(_train_cmd(killed, overrides, 2), env, killed / "metrics.jsonl", KILL_AFTER)
    assert not (killed / "model_final.pth").exists()
    _run([*_train_cmd(killed, overrides, 2), "--resume"], env)
    _assert_resumed_exactly(killed, tmp_path / "reference")
