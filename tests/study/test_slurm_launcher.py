"""``--launcher slurm`` on a real one-node Slurm cluster (``slurm_cluster``, accounting off): shared
direct pre-training first (the arms wait with ``afterok``), ``--max-parallel`` jobs at most, a requeued
arm resuming to the uninterrupted arm's weights, finished arms skipped, ``--status`` with job ids and
states; stopping the study cancels every job; a job the partition can never run stops the study with
Slurm's reason and the setting to change."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from scratchlab.study.launcher import ClusterOptions, fit_to_partition
from scratchlab.study.slurm import partition_nodes
from tests.conftest import MINI, ROOT, TINY
from tests.pretrain.test_direct import DIRECT
from tests.study.test_launcher import _study_json

pytest.importorskip("submitit")

DIRECT_STAGES = [
    "direct.stage1=[solver.max_iter=2]",
    "direct.stage2=[solver.max_iter=2]",
]


def _study_file(tmp_path: Path, synth_data: dict[str, str], arms: list[dict], **launcher) -> Path:
    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    spec = {
        "name": "t",
        "base": str(MINI),
        "overrides": [*TINY, *data, "eval.period=0"],
        "pretrain": {"direct": {"config": str(DIRECT), "overrides": [*TINY, *data, *DIRECT_STAGES]}},
        "arms": arms,
        "launcher": {"max_parallel": 2, "poll_s": 0.5, "cpus_per_task": 1, **launcher},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _launch(study: Path, out: Path, *flags: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "scratchlab", "study", str(study), "--out", str(out), "--launcher", "slurm"]
    with open(out.parent / "launcher.log", "a") as log:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.Popen([*cmd, *flags], env=env, stdout=subprocess.DEVNULL, stderr=log)


def _scontrol(*args: str) -> str:
    return subprocess.run(["scontrol", *args], capture_output=True, text=True, check=True).stdout


def _job_times(job_id: str) -> tuple[str, str]:
    """The job's start and end time as Slurm recorded them (kept for MinJobAge)."""
    fields = dict(f.split("=", 1) for f in _scontrol("show", "job", "-o", job_id).split() if "=" in f)
    return fields["StartTime"], fields["EndTime"]


def _status(out: Path) -> str:
    cmd = [sys.executable, "-m", "scratchlab", "study", "--status", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout


def _requeue_when_checkpointed(proc, out, cluster, arm: str) -> tuple[str, str, int]:
    """Watch the queue (never more than --max-parallel jobs) until ``arm`` has checkpointed mid-run, then
    ``scontrol requeue`` its job; return its job id, a ``--status`` table seen while jobs ran and the most
    jobs queued or running at once."""
    deadline, seen, most = time.monotonic() + 300, [], 0
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "the study ended before the requeue"
        active = [s for s in cluster.squeue().values() if s in ("PENDING", "RUNNING")]
        most = max(most, len(active))
        if not seen and (out / "jobs" / "queue.json").exists():
            seen.append(_status(out))
        run = out / "arms" / arm
        if (run / "checkpoints" / "last.pth").exists() and not (run / "model_final.pth").exists():
            job_id = next(a["job_id"] for a in _study_json(out)["arms"] if a["name"] == arm)
            _scontrol("requeue", job_id)
            # Slurm holds a requeued job for 120 s before it may start again: let it start at once.
            while cluster.squeue(job_id)[job_id] != "PENDING":
                assert time.monotonic() < deadline, "the requeued job never went back to the queue"
                time.sleep(0.1)
            _scontrol("update", f"JobId={job_id}", "StartTime=now")
            return job_id, seen[0], most
        time.sleep(0.2)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model_final.pth", weights_only=True)["model"]


@pytest.mark.slow
def test_slurm_study_pretrains_first_requeues_and_resumes(tmp_path, synth_data, slurm_cluster):
    # Two arms alike but for their names: one is requeued mid-run, the other is not. With --max-parallel 2
    # the pre-training and one arm are queued first; the other arm waits for a free slot.
    arms = [
        {"init": "direct", "seed": 0, "name": "direct_a", "overrides": ["solver.max_iter=24"]},
        {"init": "direct", "seed": 0, "name": "direct_b", "overrides": ["solver.max_iter=24"]},
    ]
    study, out = _study_file(tmp_path, synth_data, arms), tmp_path / "out"
    # Alike, direct_b would fork from direct_a one iteration before its end: each trains alone here.
    study.write_text(yaml.safe_dump({**yaml.safe_load(study.read_text()), "share": False}))
    proc = _launch(study, out)
    requeued, status, most = _requeue_when_checkpointed(proc, out, slurm_cluster, "direct_a")
    assert most == 2  # --max-parallel: queued and running together
    assert proc.wait(timeout=400) == 0, (tmp_path / "launcher.log").read_text()[-3000:]
    log = (tmp_path / "launcher.log").read_text()
    assert "sacct" not in log  # accounting is off: the launcher asks squeue, and never warns per poll
    arms = {a["name"]: a for a in _study_json(out)["arms"]}
    assert all(a["status"] == "finished" for a in arms.values())

    # The arms' jobs started only once the pre-training job had ended (afterok).
    (pretrain_id,) = re.findall(r"submitted pretrain pretrain/\S+ as job (\d+)", log)
    pretrain_end = _job_times(pretrain_id)[1]
    for name in ("direct_a", "direct_b"):
        assert _job_times(arms[name]["job_id"])[0] >= pretrain_end, name
    (sbatch,) = (out / "jobs" / arms["direct_b"]["job_id"]).glob("*_submission.sh")
    assert f"--dependency=afterok:{pretrain_id}" in sbatch.read_text()

    # The requeued arm ran again under the same job id, resumed from its checkpoint, and ends with the
    # uninterrupted arm's weights.
    assert arms["direct_a"]["job_id"] == requeued
    (resumed_at,) = re.findall(
        r"resumed from \S+ at iteration (\d+)", (out / "arms" / "direct_a" / "log.txt").read_text()
    )
    assert 0 < int(resumed_at) < 24  # mid-run
    got, want = _weights(out / "arms" / "direct_a"), _weights(out / "arms" / "direct_b")
    assert all(torch.equal(got[k], want[k]) for k in want)

    # --status while the jobs ran: their ids and Slurm states.
    rows = {line.split()[0]: line.split() for line in status.splitlines()[2:]}
    (b_row,) = [r for r in rows.values() if len(r) > 5 and r[0] == "direct_b"]
    assert b_row[1] == "running" and b_row[4] == arms["direct_b"]["job_id"], status
    assert b_row[5] in ("PENDING", "RUNNING"), status  # PENDING (Dependency) while it pre-trains
    final_status = _status(out)
    assert "2 finished" in final_status and all(a["job_id"] in final_status for a in arms.values())

    # A second run submits nothing: every arm is finished.
    jobs_before = set(slurm_cluster.squeue())
    assert _launch(study, out).wait(timeout=120) == 0
    assert set(slurm_cluster.squeue()) == jobs_before
    again = (tmp_path / "launcher.log").read_text()[len(log) :]
    assert "submitted" not in again
    assert all(f"arm {name} already finished: skipping" in again for name in arms)


@pytest.mark.slow
def test_slurm_forks_wait_with_afterok_on_their_branch_segment(tmp_path, synth_data, slurm_cluster):
    """The 1x forks from the 2x trunk at 3: all three segments are queued at once, each waiting with
    ``afterok`` on the segment it continues, and the fork ends with the inline study's bits."""
    from scratchlab.study.runner import run_study

    arms = [{"init": "random", "schedule": [1, 2], "overrides": ["eval.period=3", "device=cpu"]}]
    study, out = _study_file(tmp_path, synth_data, arms, max_parallel=3), tmp_path / "out"
    assert _launch(study, out).wait(timeout=400) == 0, (tmp_path / "launcher.log").read_text()[-3000:]
    log = (tmp_path / "launcher.log").read_text()
    ids = dict(re.findall(r"submitted arm (\S+) as job (\d+)", log))
    trunk, fork = "random_gn_2x_100pct_s0", "random_gn_1x_100pct_s0"
    assert sorted(ids) == sorted([f"{trunk}@0-3", f"{trunk}@3-12", f"{fork}@3-6"])
    for segment, after in ((f"{trunk}@3-12", f"{trunk}@0-3"), (f"{fork}@3-6", f"{trunk}@0-3")):
        (sbatch,) = (out / "jobs" / ids[segment]).glob("*_submission.sh")
        assert f"--dependency=afterok:{ids[after]}" in sbatch.read_text(), segment
    inline = run_study(study, tmp_path / "inline")
    for arm in inline["arms"]:
        got, want = _weights(out / arm["run_dir"]), _weights(tmp_path / "inline" / arm["run_dir"])
        assert all(torch.equal(got[k], want[k]) for k in want), arm["name"]


# The study's process with SleepingJob for StudyJob: argv is STUDY.yaml OUT.
_SLEEPING_STUDY = """
import sys
from scratchlab.study import launcher
from tests.study.sleeping_job import SleepingJob
launcher.StudyJob = SleepingJob
launcher.launch_study(sys.argv[1], sys.argv[2], "slurm")
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "stops",
    [[signal.SIGTERM], [signal.SIGINT], [signal.SIGTERM, signal.SIGTERM]],
    ids=["TERM", "INT", "TERMx2"],
)
def test_stopping_the_study_cancels_every_slurm_job(tmp_path, synth_data, slurm_cluster, stops):
    """The second SIGTERM comes while the first job is being cancelled."""
    out, log_path = tmp_path / "out", tmp_path / "launcher.log"
    arms = [{"init": "random", "seed": [0, 1, 2]}]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log_path, "w") as log:
        cmd = [sys.executable, "-c", _SLEEPING_STUDY, str(_study_file(tmp_path, synth_data, arms)), str(out)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("*.pid"))) < 2:  # max_parallel: two jobs run, the third arm waits
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        ids = [a["job_id"] for a in _study_json(out)["arms"] if a.get("job_id")]
        proc.send_signal(stops[0])
        for again in stops[1:]:
            while "cancelling" not in log_path.read_text():
                time.sleep(0.01)
            proc.send_signal(again)
        assert proc.wait(timeout=60) != 0
        deadline = time.monotonic() + 30
        while set(slurm_cluster.squeue(*ids).values()) != {"CANCELLED"} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert set(slurm_cluster.squeue(*ids).values()) == {"CANCELLED"}, log_path.read_text()
        arms = _study_json(out)["arms"]
        assert sorted(a["status"] for a in arms) == ["failed", "failed", "pending"]
        assert all("cancelled: the study was stopped" in a["error"] for a in arms if a["status"] == "failed")
    finally:
        proc.kill()
        subprocess.run(["scancel", "-u", "root"], check=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    "setting, value, reason",
    [
        ("cpus_per_task", 64, "PartitionConfig"),
        ("mem_gb", 100000, "Memory specification can not be satisfied"),
        ("gpus_per_node", 1, "sbatch refused"),
    ],
)
def test_a_job_the_partition_can_never_run_stops_the_study(
    tmp_path, synth_data, slurm_cluster, setting, value, reason
):
    study = _study_file(tmp_path, synth_data, [{"init": "random"}], **{setting: value})
    proc = _launch(study, tmp_path / "out")
    try:
        assert proc.wait(timeout=60) == 2
    finally:
        proc.kill()
    log = (tmp_path / "launcher.log").read_text()
    assert reason in log and f"Change the study's launcher: {setting}: {value}" in log, log[-3000:]
    active = ("PENDING", "RUNNING")
    assert not [s for s in slurm_cluster.squeue().values() if s in active], "a job was left queued"
    (arm,) = _study_json(tmp_path / "out")["arms"]
    assert arm["status"] in ("failed", "pending")


def test_cpus_per_task_defaults_to_what_the_partitions_nodes_give(slurm_cluster):
    nodes = partition_nodes(None)
    cpus = int(slurm_cluster.sinfo("%c"))
    assert nodes is not None and nodes.cpus == cpus and nodes.partition == "debug"
    assert fit_to_partition(ClusterOptions(), nodes).cpus_per_task == min(10, cpus)
    assert fit_to_partition(ClusterOptions(cpus_per_task=3), nodes).cpus_per_task == 3
    assert fit_to_partition(ClusterOptions(gpus_per_node=cpus), nodes).cpus_per_task == 1
