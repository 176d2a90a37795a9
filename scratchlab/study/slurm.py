"""What the Slurm launcher asks the cluster itself: ``squeue`` for its jobs' states and pending reasons
(it answers with accounting off, where ``sacct``, which submitit's own watcher calls, fails on every
poll) and ``sinfo`` for what the partition's nodes can give a job."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

__all__ = ["NEVER_RUNS", "JobState", "Nodes", "partition_nodes", "queue", "unfit_settings"]

# Slurm's states of a job that has not ended (a requeued job passes through REQUEUED and PENDING).
ACTIVE = frozenset(
    "PENDING RUNNING CONFIGURING COMPLETING REQUEUED REQUEUE_FED REQUEUE_HOLD RESIZING SUSPENDED STOPPED "
    "SIGNALING STAGE_OUT".split()
)
# Pending reasons that no amount of waiting clears: the job asks more than the partition allows.
NEVER_RUNS = frozenset(
    "PartitionConfig PartitionNodeLimit PartitionTimeLimit BadConstraints InvalidQOS InvalidAccount".split()
)


@dataclass(frozen=True)
class JobState:
    state: str  # PENDING, RUNNING, COMPLETED, CANCELLED, ...
    reason: str  # why a pending job waits ("None" once it runs)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def __str__(self) -> str:
        return f"{self.state} ({self.reason})" if self.state == "PENDING" else self.state


def queue(job_ids: list[str]) -> dict[str, JobState]:
    """The state of each of ``job_ids`` that Slurm still knows (ended ones too, for MinJobAge); a job
    missing from the answer has ended and been forgotten. Raises ``OSError`` when squeue cannot answer
    (controller down), so the caller can wait and ask again."""
    if not job_ids:
        return {}
    cmd = ["squeue", "--noheader", "--states=all", "--format=%i|%T|%r", "--jobs", ",".join(job_ids)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise OSError(f"squeue did not answer in 60 s: {exc}") from exc
    if done.returncode:
        if "Invalid job id" in done.stderr:  # every one of them ended and was forgotten
            return {}
        raise OSError(f"squeue failed: {done.stderr.strip()}")
    states = {}
    for line in done.stdout.splitlines():
        job_id, state, reason = line.split("|", 2)
        states[job_id] = JobState(state, reason)
    return states


@dataclass(frozen=True)
class Nodes:
    """The most any one node of ``partition`` has."""

    partition: str
    cpus: int
    mem_mb: int
    gpus: int
    count: int


def _gpus(gres: str) -> int:
    return sum(int(n) for n in re.findall(r"gpu(?::[^:,(]+)?:(\d+)", gres))


def partition_nodes(partition: str | None) -> Nodes | None:
    """What the nodes of ``partition`` (None: the default one) can give, from ``sinfo``; None when sinfo
    cannot say (not installed, no such partition)."""
    try:
        done = subprocess.run(
            ["sinfo", "--noheader", "--format=%P|%c|%m|%G|%D"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    rows = [line.split("|") for line in done.stdout.splitlines() if line.count("|") == 4]
    if partition is None:
        rows = [r for r in rows if r[0].endswith("*")]
    else:
        rows = [r for r in rows if r[0].rstrip("*") == partition]
    if done.returncode or not rows:
        return None
    return Nodes(
        partition=rows[0][0].rstrip("*"),
        cpus=max(int(r[1].rstrip("+")) for r in rows),
        mem_mb=max(int(r[2].rstrip("+")) for r in rows),
        gpus=max(_gpus(r[3]) for r in rows),
        count=sum(int(r[4]) for r in rows),
    )


def unfit_settings(
    nodes: Nodes, cpus_per_task: int, tasks: int, gpus: int, mem_gb: float | None, n: int
) -> str:
    """What a job of ``n`` nodes, ``tasks`` tasks of ``cpus_per_task`` CPUs, ``gpus`` GPUs and ``mem_gb``
    per node asks beyond what ``nodes`` have, as the ``launcher:`` settings to change ('' if nothing)."""
    where = f"the nodes of partition {nodes.partition}"
    unfit = []
    if cpus_per_task * tasks > nodes.cpus:
        unfit.append(
            f"cpus_per_task: {cpus_per_task} CPUs for each of {tasks} task(s) per node, but {where} have "
            f"at most {nodes.cpus} CPUs (set cpus_per_task to {max(1, nodes.cpus // tasks)} or less)"
        )
    if gpus > nodes.gpus:
        unfit.append(f"gpus_per_node: {gpus} GPUs, but {where} have at most {nodes.gpus}")
    if mem_gb is not None and mem_gb * 1024 > nodes.mem_mb:
        unfit.append(f"mem_gb: {mem_gb} GB, but {where} have at most {nodes.mem_mb} MB")
    if n > nodes.count:
        unfit.append(f"nodes: {n}, but partition {nodes.partition} has {nodes.count}")
    return "; ".join(unfit)
