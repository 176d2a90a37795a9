"""What the Slurm launcher reads from ``squeue`` and ``sinfo`` (stand-in commands on PATH; the real
cluster's tests are in test_slurm_launcher.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scratchlab.study.slurm import JobState, Nodes, partition_nodes, queue, unfit_settings


def _command(tmp_path: Path, monkeypatch, name: str, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text(f"#!/bin/sh\n{script}\n")
    (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_partition_nodes_reads_the_biggest_node_of_the_partition(tmp_path, monkeypatch):
    rows = [
        "learn*|80|512000|gpu:a100:8(S:0-1)|4",
        "learn*|96+|256000|gpu:4,gpu:v100:2|2",
        "cpu|2|4000|(null)|1",
    ]
    _command(tmp_path, monkeypatch, "sinfo", "printf '" + "\\n".join(rows) + "\\n'")
    assert partition_nodes(None) == Nodes("learn", cpus=96, mem_mb=512000, gpus=8, count=6)
    assert partition_nodes("cpu") == Nodes("cpu", cpus=2, mem_mb=4000, gpus=0, count=1)
    assert partition_nodes("nope") is None


def test_unfit_settings_name_what_to_change():
    nodes = Nodes("debug", cpus=2, mem_mb=4000, gpus=0, count=1)
    assert unfit_settings(nodes, 2, 1, 0, 3.5, 1) == ""
    said = unfit_settings(nodes, 10, 1, 1, 8, 2)
    for part in ("cpus_per_task: 10", "set cpus_per_task to 2", "gpus_per_node: 1", "mem_gb: 8", "nodes: 2"):
        assert part in said, part


def test_queue_reads_states_and_reasons_and_says_when_it_cannot(tmp_path, monkeypatch):
    _command(tmp_path, monkeypatch, "squeue", "printf '7|PENDING|PartitionConfig\\n8|COMPLETED|None\\n'")
    states = queue(["7", "8", "9"])
    assert states == {"7": JobState("PENDING", "PartitionConfig"), "8": JobState("COMPLETED", "None")}
    assert states["7"].active and not states["8"].active and str(states["7"]) == "PENDING (PartitionConfig)"
    _command(
        tmp_path, monkeypatch, "squeue", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1"
    )
    assert queue(["9"]) == {}  # ended and forgotten
    _command(tmp_path, monkeypatch, "squeue", "echo 'Unable to contact slurm controller' >&2; exit 1")
    with pytest.raises(OSError, match="Unable to contact"):
        queue(["9"])
