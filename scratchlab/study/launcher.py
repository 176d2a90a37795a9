"""``scratchlab study STUDY.yaml --out DIR --launcher {local,slurm}``: each arm one submitit job.

submitit (the launcher of DETR, MAE, DINO, ConvNeXt) starts each job: ``local`` as subprocesses of this
machine, ``slurm`` through sbatch. A job runs ``gpus_per_node`` tasks on each of ``nodes`` nodes (one
task on a CPU-only job); every task takes its rank, world size and rendezvous (MASTER_ADDR/PORT) from the
job's environment (``submitit.helpers.TorchDistributedEnvironment``) and runs the code path torchrun's
workers run: :meth:`Study.run_arm` -> ``train``. Shared pre-trainings run first, as their own jobs; an
arm that needs one is submitted once it is done (on Slurm: at once, with an ``afterok`` dependency). At
most ``max_parallel`` jobs are queued or running at a time; this process waits for them all, keeping
``DIR/study.json`` current (each arm's status and job id), then writes the verdict and report as
``inline`` does. Stopping that process (Ctrl-C, or SIGTERM to it alone) cancels the jobs it has running
(submitit's ``Job.cancel``) before it exits non-zero; their arms are recorded failed, and re-submitting
the study resumes them.

Preemption and time limits: a job that submitit requeues or that times out calls
:meth:`StudyJob.checkpoint`, which resubmits the same job; it resumes from the arm's last checkpoint
(``train(resume=True)``). A re-submitted study skips finished arms and resumes unfinished ones.

Resources come from the study file's ``launcher:`` block (``gpus_per_node``, ``nodes``, ``partition``,
``timeout`` in minutes, ``max_parallel``, ``cpus_per_task``), and command-line flags override them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .. import run_dir
from ..utils.lock import exclusive_directory
from .arms import ArmRecord, ArmSpec
from .groups import LAUNCHERS
from .runner import Study

__all__ = ["ClusterOptions", "StudyJob", "launch_study"]

log = logging.getLogger("scratchlab")


@dataclass(frozen=True)
class ClusterOptions:
    """What each job asks the scheduler for. ``gpus_per_node`` 0: one CPU task per job."""

    gpus_per_node: int = 0
    nodes: int = 1
    partition: str | None = None
    timeout: int = 24 * 60  # minutes
    max_parallel: int = 4
    cpus_per_task: int = 10  # Slurm: data-loading CPUs of each task (DETR's and ConvNeXt's submitit default)
    poll_s: float = 2.0  # how often this process looks at its jobs

    @classmethod
    def from_study(cls, spec: dict[str, Any], **flags: Any) -> ClusterOptions:
        """The study file's ``launcher:`` block, then the flags that are not None."""
        block = spec.get("launcher") or {}
        known = {f.name for f in fields(cls)}
        if unknown := set(block) - known:
            raise ValueError(f"launcher: unknown field(s) {sorted(unknown)}; allowed: {sorted(known)}")
        opts = replace(cls(), **block, **{k: v for k, v in flags.items() if v is not None})
        if opts.max_parallel < 1 or opts.nodes < 1 or opts.gpus_per_node < 0:
            raise ValueError(
                f"launcher: max_parallel and nodes must be >= 1 and gpus_per_node >= 0, got {opts}"
            )
        return opts


class StudyJob:
    """One submitit job: an arm (``kind="arm"``) or the shared pre-training it needs (``"pretrain"``).
    Pickled by submitit and called in every task of the job."""

    def __init__(
        self,
        study_file: str | Path,
        out: str | Path,
        arm_name: str,
        kind: str = "arm",
        overrides: tuple[str, ...] = (),
    ) -> None:
        self.study_file, self.out, self.arm_name, self.kind = str(study_file), str(out), arm_name, kind
        self.overrides = tuple(overrides)  # the command line's key=value, applied to every arm

    def __call__(self) -> ArmRecord | None:
        _join_job_process_group()
        return self.run()

    def run(self) -> ArmRecord | None:
        """The job's work in this process: the pre-training, or the arm's run and its record."""
        study = Study(self.study_file, self.out, self.overrides)
        arm = study.arm(self.arm_name)
        if self.kind == "pretrain":
            study.run_pretraining(arm)
            return None
        return study.run_arm(arm)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit calls this on preemption or timeout: requeue the same job, which resumes from the
        arm's last checkpoint (every run of it trains with ``resume=True``)."""
        import submitit

        return submitit.helpers.DelayedSubmission(
            StudyJob(self.study_file, self.out, self.arm_name, self.kind, self.overrides)
        )


def _join_job_process_group() -> None:
    """Export RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT from the job's environment, as torchrun
    does for its workers, and join the group (train's own init_distributed then finds it)."""
    import submitit

    from ..utils.dist import init_distributed

    env = submitit.JobEnvironment()
    if env.num_tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        init_distributed()
    else:
        os.environ.pop("WORLD_SIZE", None)


def _executor(launcher: str, folder: Path, opts: ClusterOptions) -> Any:
    import submitit

    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=launcher)
    tasks = max(1, opts.gpus_per_node)
    params: dict[str, Any] = {
        "timeout_min": opts.timeout,
        "nodes": opts.nodes,
        "tasks_per_node": tasks,
        "gpus_per_node": opts.gpus_per_node,
        "name": "scratchlab",
    }
    if launcher == "slurm":
        # USR2 two minutes before the time limit: submitit then calls StudyJob.checkpoint and requeues.
        params.update(cpus_per_task=opts.cpus_per_task, slurm_signal_delay_s=120)
        if opts.partition:
            params["slurm_partition"] = opts.partition
    executor.update_parameters(**params)
    return executor


class Scheduler:
    """Submits pre-training and arm jobs, at most ``max_parallel`` at a time, and records what they give.
    ``executor``: a submitit executor (``submit(fn) -> job`` with ``job_id``, ``done()``, ``results()``,
    ``cancel()``); with ``slurm``, also ``update_parameters`` for the dependencies."""

    def __init__(self, study: Study, launcher: str, opts: ClusterOptions, executor: Any) -> None:
        self.study, self.launcher, self.opts, self.executor = study, launcher, opts, executor
        self.running: dict[str, tuple[Any, str, ArmSpec]] = {}  # job key -> (job, kind, arm)
        self.pretrain_jobs: dict[str, Any] = {}  # pre-training name -> its job (while it runs)
        self.failed_pretraining: dict[str, str] = {}

    def _submit(self, kind: str, arm: ArmSpec, key: str, after: Any = None) -> Any:
        executor = self.executor
        if after is not None:  # Slurm only: the arm waits for its pre-training in the queue (and is
            # cancelled, hence recorded failed, if that pre-training fails)
            executor.update_parameters(
                slurm_additional_parameters={
                    "dependency": f"afterok:{after.job_id}",
                    "kill-on-invalid-dep": "yes",
                }
            )
        job = executor.submit(StudyJob(self.study.file, self.study.out, arm.name, kind, self.study.overrides))
        if after is not None:
            executor.update_parameters(slurm_additional_parameters={})
        self.running[key] = (job, kind, arm)
        log.info("submitted %s %s as job %s", kind, key, job.job_id)
        return job

    def _ready(self, arm: ArmSpec) -> tuple[bool, Any]:
        """Whether ``arm`` may be submitted now, and the job it must wait for (Slurm dependency)."""
        pre = self.study.pretraining(arm)
        if pre is None or pre[1].is_file():
            return True, None
        name = pre[0]
        if name in self.failed_pretraining:
            return True, None  # the arm's own job fails with the pre-training's message
        if name not in self.pretrain_jobs:
            if len(self.running) < self.opts.max_parallel:
                self.pretrain_jobs[name] = self._submit("pretrain", arm, f"pretrain/{name}")
            return False, None
        return (True, self.pretrain_jobs[name]) if self.launcher == "slurm" else (False, None)

    def _collect(self) -> None:
        for key, (job, kind, arm) in list(self.running.items()):
            if not job.done():
                continue
            del self.running[key]
            try:
                result, error = job.results()[0], None  # task 0's record (every task returns one)
            except Exception as exc:  # noqa: BLE001 - a dead job (killed, OOM, node failure) fails its arm only
                result, error = None, f"job {job.job_id} ended without a result: {type(exc).__name__}: {exc}"
            if kind == "pretrain":
                name = key.split("/", 1)[1]
                self.pretrain_jobs.pop(name, None)
                if error:
                    self.failed_pretraining[name] = error
                    log.warning("pre-training %s failed: %s", name, error)
                continue
            record = result if result is not None else self.study.record(arm, "failed", error=error)
            self.study.records[arm.name] = record.with_(job_id=str(job.job_id))
            self.study.write()

    def run(self, pending: list[ArmSpec]) -> None:
        try:
            self._run(pending)
        except BaseException:  # Ctrl-C, SIGTERM (see _sigterm_raises) or an error here: no orphan jobs
            self._cancel_running()
            raise

    def _cancel_running(self) -> None:
        for key, (job, kind, arm) in self.running.items():
            log.warning("the study was stopped: cancelling %s %s (job %s)", kind, key, job.job_id)
            try:
                job.cancel(check=False)
            except Exception as exc:  # noqa: BLE001 - still cancel the others, and stop as asked
                log.error("could not cancel job %s: %s", job.job_id, exc)
            if kind == "arm":
                self.study.records[arm.name] = self.study.record(
                    arm,
                    "failed",
                    error=f"job {job.job_id} cancelled: the study was stopped",
                    job_id=str(job.job_id),
                )
        self.running.clear()
        self.study.write()

    def _run(self, pending: list[ArmSpec]) -> None:
        while pending or self.running:
            self._collect()
            for arm in list(pending):
                if len(self.running) >= self.opts.max_parallel:
                    break
                ready, after = self._ready(arm)
                if ready and len(self.running) < self.opts.max_parallel:
                    job = self._submit("arm", arm, arm.name, after)
                    pending.remove(arm)
                    self.study.records[arm.name] = self.study.record(arm, "running", job_id=str(job.job_id))
                    self.study.write()
            if pending or self.running:
                time.sleep(self.opts.poll_s)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises ``SystemExit(143)`` while the study waits for its jobs, as Ctrl-C raises
    KeyboardInterrupt, so the jobs are cancelled on the way out: by default SIGTERM ends this process at
    once and its jobs run on. Only the main thread may set a handler; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    before = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def launch_study(
    study_file: str | Path,
    out: str | Path,
    launcher: str,
    overrides: tuple[str, ...] = (),
    executor: Any = None,
    **flags: Any,
) -> dict[str, Any]:
    """Run (or resume) ``study_file`` into ``out`` with each arm a submitit job; return study.json's
    content with the report. ``flags`` (:class:`ClusterOptions` fields; None = not given) override the
    study file's ``launcher:`` block. Finished arms are recorded without a job. ``executor`` replaces the
    launcher's submitit executor (see :class:`Scheduler`)."""
    if launcher not in LAUNCHERS[1:]:
        raise ValueError(f"--launcher must be one of {LAUNCHERS}, got {launcher!r}")
    with exclusive_directory(out):  # two studies in one folder would submit the same arms twice
        return _launch(Study(study_file, out, overrides), launcher, flags, executor)


def _launch(study: Study, launcher: str, flags: dict[str, Any], executor: Any) -> dict[str, Any]:
    opts = ClusterOptions.from_study(study.spec, **flags)
    study.write()
    pending = []
    for arm in study.arms:
        if run_dir.is_finished(study.out / run_dir.ARMS / arm.name):
            log.info("arm %s already finished: skipping", arm.name)
            study.records[arm.name] = study.run_arm(arm)
        else:
            pending.append(arm)
    with _sigterm_raises():
        executor = executor or _executor(launcher, study.out / "jobs", opts)
        Scheduler(study, launcher, opts, executor).run(pending)
    return study.finish()
