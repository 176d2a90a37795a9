"""``--launcher local``: each arm a submitit job (real subprocesses), two at once; the same final metrics as
``inline`` for the same seeds; a job killed mid-arm is resumed by re-submitting the study and ends with
the same weights; stopping the study's own process cancels its jobs; ``--status`` prints the arms'
table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from scratchlab.study.launcher import ClusterOptions
from scratchlab.study.runner import run_study
from tests.conftest import MINI, ROOT, TINY

pytest.importorskip("submitit")


def _study_file(tmp_path: Path, synth_data: dict[str, str]) -> Path:
    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    spec = {
        "name": "t",
        "base": str(MINI),
        "overrides": [*TINY, *data, "eval.period=0"],
        "arms": [{"init": "random", "seed": [0, 1, 2]}],
        "launcher": {"max_parallel": 2, "poll_s": 0.2},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _study_json(out: Path) -> dict:
    try:
        return json.loads((out / "study.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {"arms": []}


def _launch(study: Path, out: Path, env: dict[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "scratchlab", "study", str(study), "--out", str(out), "--launcher", "local"]
    with open(out.parent / "launcher.log", "a") as log:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)


def _kill_an_arm_when_two_run(proc: subprocess.Popen, out: Path) -> str:
    """Wait until two arms run at once (and the third waits), then SIGKILL the first arm's job tasks once
    it has checkpointed; return that arm's name."""
    deadline = time.monotonic() + 400
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "the study ended before two arms ran"
        arms = _study_json(out)["arms"]
        running = [a for a in arms if a["status"] == "running"]
        assert len(running) <= 2  # --max-parallel
        logged = [a for a in running if (out / "arms" / a["name"] / "checkpoints" / "last.pth").exists()]
        if len(running) == 2 and logged and [a["status"] for a in arms].count("pending") == 1:
            victim = logged[0]
            tasks = _children(int(victim["job_id"]))
            assert tasks, "no task process under the job's controller"
            for pid in tasks:
                os.kill(pid, signal.SIGKILL)
            return victim["name"]
        time.sleep(0.05)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model_final.pth", weights_only=True)["model"]


@pytest.mark.slow
def test_local_launcher_matches_inline_and_resumes_a_killed_arm(tmp_path, synth_data):
    study = _study_file(tmp_path, synth_data)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    local = tmp_path / "local"
    local.mkdir()
    proc = _launch(study, local, env)
    killed = _kill_an_arm_when_two_run(proc, local)
    # exit 1: an arm failed (the killed one); the study still completes and writes its report
    assert proc.wait(timeout=400) == 1, (tmp_path / "launcher.log").read_text()[-3000:]
    first = {a["name"]: a for a in _study_json(local)["arms"]}
    assert first[killed]["status"] == "failed" and "without a result" in first[killed]["error"]
    assert sorted(a["status"] for a in first.values()) == ["failed", "finished", "finished"]
    assert all(a["job_id"] for a in first.values())

    # Re-submitting skips the finished arms and resumes the killed one from its checkpoint.
    assert _launch(study, local, env).wait(timeout=400) == 0, (tmp_path / "launcher.log").read_text()[-3000:]
    second = {a["name"]: a for a in _study_json(local)["arms"]}
    assert all(a["status"] == "finished" for a in second.values())
    assert "resumed from" in (local / "arms" / killed / "log.txt").read_text()
    for name, arm in first.items():
        if name != killed:  # not run again
            assert second[name]["final"] == arm["final"]

    inline = run_study(study, tmp_path / "inline")
    for arm in inline["arms"]:
        assert second[arm["name"]]["final"] == arm["final"], arm["name"]
    got, want = _weights(local / "arms" / killed), _weights(tmp_path / "inline" / "arms" / killed)
    assert all(torch.equal(got[k], want[k]) for k in want)

    status = subprocess.run(
        [sys.executable, "-m", "scratchlab", "study", "--status", str(local)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "3 finished" in status and killed in status and "6/6" in status


# The study's process with SleepingJob for StudyJob: argv is STUDY.yaml OUT.
_SLEEPING_STUDY = """
import sys
from scratchlab.study import launcher
from tests.study.sleeping_job import SleepingJob
launcher.StudyJob = SleepingJob
launcher.launch_study(sys.argv[1], sys.argv[2], "local")
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.slow
def test_stopping_the_study_process_cancels_its_jobs(tmp_path, synth_data, stop):
    """The signal goes to the study's process alone (not its group, as a terminal's Ctrl-C would)."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "launcher.log", "w") as log:
        cmd = [sys.executable, "-c", _SLEEPING_STUDY, str(_study_file(tmp_path, synth_data)), str(out)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(pids) < 2:  # max_parallel: two jobs run, the third arm waits
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "launcher.log"
            ).read_text()
            time.sleep(0.1)
            pids = [int(p.read_text()) for p in out.glob("*.pid")]
        proc.send_signal(stop)
        assert proc.wait(timeout=60) != 0
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids), "a job outlived the study"
        arms = _study_json(out)["arms"]
        assert sorted(a["status"] for a in arms) == ["failed", "failed", "pending"]
        assert all("cancelled" in a["error"] for a in arms if a["status"] == "failed")
    finally:
        proc.kill()
        for pid in filter(_alive, pids):
            os.kill(pid, signal.SIGKILL)


class _Job:
    def __init__(self, job_id: str, refuses: bool = False) -> None:
        self.job_id, self.refuses, self.cancelled = job_id, refuses, False

    def cancel(self, check: bool = True) -> None:
        if self.refuses:
            raise FileNotFoundError("scancel")
        self.cancelled = True


def test_a_job_that_cannot_be_cancelled_spares_no_other(monkeypatch):
    from scratchlab.study.arms import ArmRecord, ArmSpec
    from scratchlab.study.launcher import Scheduler

    class _Study:
        def __init__(self) -> None:
            self.records: dict = {}

        def record(self, arm: ArmSpec, status: str, **known) -> ArmRecord:
            return ArmRecord.of(arm, status, "mask_rcnn", **known)

        def write(self) -> None:
            pass

    def _interrupted(self, pending: list) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Scheduler, "_run", _interrupted)
    jobs = [_Job("1", refuses=True), _Job("2")]
    scheduler = Scheduler(_Study(), "local", ClusterOptions(), executor=None)  # the jobs are stand-ins
    arms = [ArmSpec(f"scratch_gn_1x_s{i}") for i in range(2)]
    scheduler.running = {a.name: (j, "arm", a) for a, j in zip(arms, jobs, strict=True)}
    with pytest.raises(KeyboardInterrupt):
        scheduler.run([])
    assert jobs[1].cancelled and not scheduler.running
    assert [r.status for r in scheduler.study.records.values()] == ["failed", "failed"]


def test_launcher_options_come_from_the_study_file_then_flags():
    opts = ClusterOptions.from_study(
        {"launcher": {"gpus_per_node": 8, "partition": "learn"}}, nodes=2, partition=None, max_parallel=3
    )
    assert (opts.gpus_per_node, opts.nodes, opts.partition, opts.max_parallel) == (8, 2, "learn", 3)
    with pytest.raises(ValueError, match="unknown field"):
        ClusterOptions.from_study({"launcher": {"gpu": 8}})


def test_slurm_jobs_ask_for_the_options_and_wait_for_their_pretraining(tmp_path, monkeypatch):
    """The sbatch file submitit writes for an arm (a stand-in srun on PATH: no cluster here)."""
    from scratchlab.study.launcher import _executor

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    opts = ClusterOptions(
        gpus_per_node=8, nodes=2, partition="learn", timeout=4320, cpus_per_task=6, mem_gb=64
    )
    executor = _executor("slurm", tmp_path / "jobs", opts)
    executor.update_parameters(
        slurm_additional_parameters={"dependency": "afterok:123", "kill-on-invalid-dep": "yes"}
    )
    sbatch = executor._executor._make_submission_file_text("python -m job", "uid")
    for line in (
        "--nodes=2",
        "--ntasks-per-node=8",
        "--gpus-per-node=8",
        "--partition=learn",
        "--time=4320",
        "--signal=USR2@120",
        "--dependency=afterok:123",
        "--cpus-per-task=6",
        "--mem=64GB",
    ):
        assert f"#SBATCH {line}" in sbatch, line


class _DeferredExecutor:
    """A submitit executor whose jobs run in this process when first polled, not when submitted, so a
    dependent segment submitted too early would find no branch checkpoint. Records the segments in
    submission order and the most jobs submitted and not yet done at once."""

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.active = self.most_active = 0

    def update_parameters(self, **params) -> None:
        pass

    def submit(self, job):
        self.submitted.append(job.segment or f"{job.kind}/{job.arm_name}")
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        return _LazyJob(str(len(self.submitted)), job, self)


class _LazyJob:
    def __init__(self, job_id: str, job, executor: _DeferredExecutor) -> None:
        self.job_id, self.job, self.executor, self.result = job_id, job, executor, None
        self.ran = False

    def done(self) -> bool:
        if not self.ran:
            self.ran, self.result = True, self.job.run()
            self.executor.active -= 1
        return True

    def results(self) -> list:
        return [self.result]

    def cancel(self, check: bool = True) -> None:
        pass


def _fork_study(tmp_path: Path, synth_data: dict[str, str], max_parallel: int) -> Path:
    data = [f"data.{k}={v}" for k, v in synth_data.items()]
    spec = {
        "name": "t",
        "base": str(MINI),
        "overrides": [*TINY, *data, "eval.period=3", "device=cpu"],
        "arms": [{"init": "random", "schedule": [1, 2]}, {"name": "alone", "init": "random", "seed": 1}],
        "launcher": {"max_parallel": max_parallel, "poll_s": 0.01},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.slow
def test_segments_wait_for_their_branch_point_and_count_toward_max_parallel(tmp_path, synth_data):
    """The 2x trunk runs as two segments cut at the 1x's branch point (3); the 1x's own segment is
    submitted only once the trunk's first has ended, and ends with the inline study's bits."""
    from scratchlab.study.launcher import launch_study

    study = _fork_study(tmp_path, synth_data, max_parallel=2)
    executor = _DeferredExecutor()
    local = launch_study(study, tmp_path / "local", "local", executor=executor)
    trunk, fork = "random_gn_2x_100pct_s0", "random_gn_1x_100pct_s0"
    assert executor.submitted[:2] == [f"{trunk}@0-3", "alone@0-6"]
    assert sorted(executor.submitted[2:]) == sorted([f"{trunk}@3-12", f"{fork}@3-6"])
    assert executor.most_active == 2
    inline = run_study(study, tmp_path / "inline")
    for a, b in zip(local["arms"], inline["arms"], strict=True):
        assert a["status"] == "finished" and a["final"] == b["final"], a["name"]
        assert a.get("forked") == (b.get("forked") and {**b["forked"], "wall_s": a["forked"]["wall_s"]})
    got, want = _weights(tmp_path / "local" / "arms" / fork), _weights(tmp_path / "inline" / "arms" / fork)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert local["sharing"]["saved_iterations"] == 3


@pytest.mark.slow
def test_local_launcher_forks_bit_exactly(tmp_path, synth_data):
    """The same study on real local jobs (one process per segment): the fork ends with the inline bits."""
    study = _fork_study(tmp_path, synth_data, max_parallel=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (tmp_path / "local").mkdir()
    assert _launch(study, tmp_path / "local", env).wait(timeout=400) == 0, (
        tmp_path / "launcher.log"
    ).read_text()[-3000:]
    inline = run_study(study, tmp_path / "inline")
    local = {a["name"]: a for a in _study_json(tmp_path / "local")["arms"]}
    for arm in inline["arms"]:
        assert local[arm["name"]]["final"] == arm["final"], arm["name"]
        run = tmp_path / "local" / arm["run_dir"]
        got, want = _weights(run), _weights(tmp_path / "inline" / arm["run_dir"])
        assert all(torch.equal(got[k], want[k]) for k in want), arm["name"]
    assert local["random_gn_1x_100pct_s0"]["forked"]["iteration"] == 3
