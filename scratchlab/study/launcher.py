"""``scratchlab study STUDY.yaml --out DIR --launcher {local,slurm}``: each arm one submitit job.

submitit (the launcher of DETR, MAE, DINO, ConvNeXt) starts each job: ``local`` as subprocesses of this
machine, ``slurm`` through sbatch. A job runs ``gpus_per_node`` tasks on each of ``nodes`` nodes (one
task on a CPU-only job); every task takes its rank, world size and rendezvous (MASTER_ADDR/PORT) from the
job's environment (``submitit.helpers.TorchDistributedEnvironment``) and runs the code path torchrun's
workers run: :meth:`Study.run_arm` -> ``train``. Shared pre-trainings run first, as their own jobs; an
arm that needs one is submitted once it is done (on Slurm: at once, with an ``afterok`` dependency). At
most ``max_parallel`` jobs are queued or running at a time; this process waits for them all, keeping
``DIR/study.json`` current (each arm's status and job id), then writes the verdict and report as
``inline`` does. Stopping that process (Ctrl-C, or SIGTERM to it alone, once or more) cancels the jobs it
has running (submitit's ``Job.cancel``) before it exits non-zero; their arms are recorded failed, and
re-submitting the study resumes them.

On Slurm the jobs' states come from ``squeue`` (see :mod:`.slurm`; accounting may be off), written to
``DIR/jobs/queue.json`` for ``study --status``. A job the partition can never run (a pending reason such
as ``PartitionConfig``, or sbatch refusing it) stops the study with Slurm's reason and the ``launcher:``
setting to change.

Preemption and time limits: a job that submitit requeues or that times out calls
:meth:`StudyJob.checkpoint`, which resubmits the same job; it resumes from the arm's last checkpoint
(``train(resume=True)``). A re-submitted study skips finished arms and resumes unfinished ones.

Resources come from the study file's ``launcher:`` block (``gpus_per_node``, ``nodes``, ``partition``,
``timeout`` in minutes, ``max_parallel``, ``cpus_per_task``, ``mem_gb``), and command-line flags override
them. Unset on Slurm, ``cpus_per_task`` is what the partition's nodes give each task, at most 10.
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
from ..utils.io import write_json
from ..utils.lock import exclusive_directory
from . import slurm
from .arms import ArmRecord, ArmSpec
from .groups import LAUNCHERS
from .plan import Segment, StudyPlan, segment_done
from .runner import Study

__all__ = ["CannotRun", "ClusterOptions", "Scheduler", "StudyJob", "fit_to_partition", "launch_study"]

log = logging.getLogger("scratchlab")


@dataclass(frozen=True)
class ClusterOptions:
    """What each job asks the scheduler for. ``gpus_per_node`` 0: one CPU task per job."""

    gpus_per_node: int = 0
    nodes: int = 1
    partition: str | None = None
    timeout: int = 24 * 60  # minutes
    max_parallel: int = 4
    cpus_per_task: int | None = None  # Slurm: data-loading CPUs of each task (None: see fit_to_partition)
    mem_gb: float | None = None  # Slurm: memory per node (None: the partition's default)
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
    """One submitit job: a segment of an arm's run (``kind="arm"``; ``segment``: its id in the study's
    plan, planned for ``world`` devices) or the shared pre-training it needs (``"pretrain"``). Pickled by
    submitit and called in every task of the job."""

    def __init__(
        self,
        study_file: str | Path,
        out: str | Path,
        arm_name: str,
        kind: str = "arm",
        overrides: tuple[str, ...] = (),
        segment: str | None = None,
        world: int = 1,
    ) -> None:
        self.study_file, self.out, self.arm_name, self.kind = str(study_file), str(out), arm_name, kind
        self.overrides = tuple(overrides)  # the command line's key=value, applied to every arm
        self.segment, self.world = segment, world

    def __call__(self) -> ArmRecord | None:
        _join_job_process_group()
        return self.run()

    def run(self) -> ArmRecord | None:
        """The job's work in this process: the pre-training, or the segment's run (the arm's record once
        it is the last, or failed)."""
        study = Study(self.study_file, self.out, self.overrides)
        arm = study.arm(self.arm_name)
        if self.kind == "pretrain":
            study.run_pretraining(arm)
            return None
        if self.segment is None:
            return study.run_arm(arm)
        plan = study.plan(self.world)
        return study.run_segment(plan.segment(self.segment), plan)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit calls this on preemption or timeout: requeue the same job, which resumes from the
        arm's last checkpoint (every run of it trains with ``resume=True``)."""
        import submitit

        return submitit.helpers.DelayedSubmission(
            StudyJob(
                self.study_file, self.out, self.arm_name, self.kind, self.overrides, self.segment, self.world
            )
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
        params["slurm_signal_delay_s"] = 120
        if opts.cpus_per_task is not None:
            params["cpus_per_task"] = opts.cpus_per_task
        if opts.mem_gb is not None:
            params["mem_gb"] = opts.mem_gb
        if opts.partition:
            params["slurm_partition"] = opts.partition
    executor.update_parameters(**params)
    return executor


DETR_CPUS_PER_TASK = 10  # DETR's and ConvNeXt's submitit default: the most a task asks for unless told


def fit_to_partition(opts: ClusterOptions, nodes: slurm.Nodes | None) -> ClusterOptions:
    """``opts`` with ``cpus_per_task``, when unset, what ``nodes`` give each task (at most
    :data:`DETR_CPUS_PER_TASK`; that many when sinfo could not say)."""
    if opts.cpus_per_task is not None:
        return opts
    tasks = max(1, opts.gpus_per_node)
    cpus = DETR_CPUS_PER_TASK if nodes is None else max(1, min(DETR_CPUS_PER_TASK, nodes.cpus // tasks))
    log.info("cpus_per_task %d: what the nodes of the partition give each of %d task(s)", cpus, tasks)
    return replace(opts, cpus_per_task=cpus)


class CannotRun(ValueError):
    """The cluster refuses the jobs or can never start them: every job asks the same, so none will run."""


class Scheduler:
    """Submits pre-training and arm jobs, at most ``max_parallel`` at a time, and records what they give.
    ``executor``: a submitit executor (``submit(fn) -> job`` with ``job_id``, ``done()``, ``results()``,
    ``cancel()``); with ``slurm``, also ``update_parameters`` for the dependencies. ``nodes``: what the
    Slurm partition's nodes give (to name the setting a job that can never run must change)."""

    def __init__(
        self,
        study: Study,
        launcher: str,
        opts: ClusterOptions,
        executor: Any,
        nodes: slurm.Nodes | None = None,
    ) -> None:
        self.study, self.launcher, self.opts, self.executor = study, launcher, opts, executor
        self.nodes = nodes
        self.states: dict[str, slurm.JobState] = {}  # Slurm job id -> its state at the last poll
        self.queue_error: str | None = None
        self.running: dict[str, tuple[Any, str, ArmSpec]] = {}  # job key -> (job, kind, arm)
        self.pretrain_jobs: dict[str, Any] = {}  # pre-training name -> its job (while it runs)
        self.failed_pretraining: dict[str, str] = {}
        self.segment_jobs: dict[str, Any] = {}  # segment id -> its job (while queued or running)
        self.failed_segments: dict[str, str] = {}  # segment id -> why (the segments after it fail too)
        self.world = opts.nodes * max(1, opts.gpus_per_node)  # the devices of each job

    def _submit(self, kind: str, arm: ArmSpec, key: str, after: Any = None) -> Any:
        """Submit a job; ``key``: a pre-training's ``pretrain/NAME`` or a segment's id."""
        executor = self.executor
        if after is not None:  # Slurm only: the job waits for the one before it in the queue (and is
            # cancelled, hence recorded failed, if that one fails)
            executor.update_parameters(
                slurm_additional_parameters={
                    "dependency": f"afterok:{after.job_id}",
                    "kill-on-invalid-dep": "yes",
                }
            )
        segment = None if kind == "pretrain" else key
        try:
            job = executor.submit(
                StudyJob(
                    self.study.file, self.study.out, arm.name, kind, self.study.overrides, segment, self.world
                )
            )
        except Exception as exc:
            if self.launcher != "slurm":
                raise
            raise CannotRun(f"sbatch refused the job of {kind} {key}: {exc}{self._unfit()}") from exc
        if after is not None:
            executor.update_parameters(slurm_additional_parameters={})
        self.running[key] = (job, kind, arm)
        log.info("submitted %s %s as job %s", kind, key, job.job_id)
        return job

    def _segment_ready(self, seg: Segment, plan: StudyPlan) -> tuple[bool | None, Any]:
        """Whether segment ``seg`` may be submitted now (None: never, the one before it failed), and the
        job it must wait for (Slurm dependency). An arm's first segment waits for its pre-training, every
        other segment for the segment it continues (its own arm's, or its trunk's at its branch point)."""
        if seg.after is None:
            return self._ready(self.study.arm(seg.arm))
        if seg.after in self.failed_segments:
            return None, None
        if segment_done(self.study.out, plan, plan.segment(seg.after)):
            return True, None
        job = self.segment_jobs.get(seg.after)
        if job is not None and self.launcher == "slurm":
            return True, job
        return False, None

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

    def _unfit(self) -> str:
        """What the jobs ask beyond the partition's nodes, as the settings to change ('' if unknown)."""
        if self.nodes is None:
            return ""
        opts = self.opts
        tasks = max(1, opts.gpus_per_node)
        unfit = slurm.unfit_settings(
            self.nodes, opts.cpus_per_task or 1, tasks, opts.gpus_per_node, opts.mem_gb, opts.nodes
        )
        return f". Change the study's launcher: {unfit}" if unfit else ""

    def _poll_queue(self) -> None:
        """Slurm: every running job's state, once per poll; a job that can never start stops the study."""
        ids = [str(job.job_id) for job, _, _ in self.running.values()]
        try:
            states = slurm.queue(ids)
        except OSError as exc:  # the controller is busy or restarting: ask again next poll
            if str(exc) != self.queue_error:
                log.warning("%s: the study waits and asks again", exc)
            self.queue_error = str(exc)
            return
        self.queue_error = None
        # a job just submitted is always listed: one missing has ended and been forgotten
        states = {i: states.get(i, slurm.JobState("ENDED", "None")) for i in ids}
        if states.items() - self.states.items():
            self.states.update(states)
            write_json(
                self.study.out / run_dir.JOBS / run_dir.QUEUE, {i: str(s) for i, s in self.states.items()}
            )
        for key, (job, kind, _) in self.running.items():
            state = states[str(job.job_id)]
            if state.state == "PENDING" and state.reason in slurm.NEVER_RUNS:
                raise CannotRun(
                    f"job {job.job_id} ({kind} {key}) can never start: Slurm's reason {state.reason}"
                    f"{self._unfit() or ' (see scontrol show job ' + str(job.job_id) + ')'}"
                )

    def _ended(self, job: Any) -> bool:
        if self.launcher != "slurm":
            return job.done()
        state = self.states.get(str(job.job_id))
        return state is not None and not state.active

    def _results(self, job: Any) -> Any:
        """Task 0's record (every task returns one). On Slurm a job without its result files ended
        without a result (submitit would ask sacct, and wait)."""
        if self.launcher == "slurm" and not all(
            job.task(i).paths.result_pickle.exists() for i in range(job.num_tasks)
        ):
            raise RuntimeError(f"Slurm state {self.states[str(job.job_id)].state}, no result file")
        return job.results()[0]

    def _collect(self) -> None:
        if self.launcher == "slurm" and self.running:
            self._poll_queue()
        for key, (job, kind, arm) in list(self.running.items()):
            if not self._ended(job):
                continue
            del self.running[key]
            try:
                result, error = self._results(job), None
            except Exception as exc:  # noqa: BLE001 - a dead job (killed, OOM, node failure) fails its arm only
                result, error = None, f"job {job.job_id} ended without a result: {type(exc).__name__}: {exc}"
            if kind == "pretrain":
                name = key.split("/", 1)[1]
                self.pretrain_jobs.pop(name, None)
                if error:
                    self.failed_pretraining[name] = error
                    log.warning("pre-training %s failed: %s", name, error)
                continue
            self.segment_jobs.pop(key, None)
            if result is None and error is None:  # a segment before the arm's last: its checkpoint is on disk
                continue
            record = result if result is not None else self.study.record(arm, "failed", error=error)
            if record.status != "finished":
                self.failed_segments[key] = record.error or record.status
            self.study.records[arm.name] = record.with_(job_id=str(job.job_id))
            self.study.write()

    def run(self, pending: list[ArmSpec]) -> None:
        try:
            self._run(pending)
        except BaseException as exc:  # Ctrl-C, SIGTERM (see _sigterm_raises) or an error: no orphan jobs
            with _stop_signals_deferred():
                self._cancel_running(str(exc) if isinstance(exc, CannotRun) else "the study was stopped")
            raise

    def _cancel_running(self, why: str = "the study was stopped") -> None:
        for key, (job, kind, arm) in self.running.items():
            log.warning("%s: cancelling %s %s (job %s)", why, kind, key, job.job_id)
            try:
                job.cancel(check=False)
            except Exception as exc:  # noqa: BLE001 - still cancel the others, and stop as asked
                log.error("could not cancel job %s: %s", job.job_id, exc)
            if kind == "arm":
                self.study.records[arm.name] = self.study.record(
                    arm,
                    "failed",
                    error=f"job {job.job_id} cancelled: {why}",
                    job_id=str(job.job_id),
                )
        self.running.clear()
        self.study.write()

    def _run(self, pending: list[ArmSpec]) -> None:
        """Submit the segments of the ``pending`` arms as they become ready (at most ``max_parallel``
        queued or running) and collect what they give, until every one has ended."""
        plan = self.study.plan(self.world)
        names = {a.name for a in pending}
        todo = [s for s in plan.segments if s.arm in names]  # parents' segments before their forks'
        while todo or self.running:
            self._collect()
            for seg in list(todo):
                if len(self.running) >= self.opts.max_parallel:
                    break
                ready, after = self._segment_ready(seg, plan)
                if ready is None:
                    todo.remove(seg)
                    self._fail_after(seg)
                elif ready and len(self.running) < self.opts.max_parallel:
                    arm = self.study.arm(seg.arm)
                    self.segment_jobs[seg.id] = job = self._submit("arm", arm, seg.id, after)
                    todo.remove(seg)
                    self.study.records[arm.name] = self.study.record(arm, "running", job_id=str(job.job_id))
                    self.study.write()
            if todo or self.running:
                time.sleep(self.opts.poll_s)

    def _fail_after(self, seg: Segment) -> None:
        """``seg`` cannot run: the segment it continues failed. So does ``seg``, and its arm with it."""
        why = f"segment {seg.after} (which {seg.id} continues) failed: {self.failed_segments[seg.after]}"
        self.failed_segments[seg.id] = why
        log.warning("arm %s: %s", seg.arm, why)
        self.study.records[seg.arm] = self.study.record(self.study.arm(seg.arm), "failed", error=why)
        self.study.write()


@contextmanager
def _stop_signals_deferred() -> Iterator[None]:
    """While the jobs are being cancelled, a second Ctrl-C or SIGTERM only says so: raising then would
    leave the rest of the jobs queued and their arms recorded running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _wait(signum: int, frame: Any) -> None:
        log.warning("already stopping: cancelling the study's jobs first")

    before = {s: signal.signal(s, _wait) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


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
    nodes = slurm.partition_nodes(opts.partition) if launcher == "slurm" else None
    if launcher == "slurm":
        opts = fit_to_partition(opts, nodes)
    study.write()
    pending = []
    for arm in study.arms:
        if run_dir.is_finished(study.out / run_dir.ARMS / arm.name):
            log.info("arm %s already finished: skipping", arm.name)
            study.records[arm.name] = study.run_arm(arm)
        else:
            pending.append(arm)
    with _sigterm_raises():
        executor = executor or _executor(launcher, study.out / run_dir.JOBS, opts)
        Scheduler(study, launcher, opts, executor, nodes).run(pending)
    return study.finish()
