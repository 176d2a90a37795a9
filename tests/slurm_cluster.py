"""A throw-away one-node Slurm cluster for the launcher's tests: Debian's munged, slurmctld and slurmd
with their own key, slurm.conf, state, spool and logs under one temporary folder, the node's real CPUs and
memory (``slurmd -C``), and free ports, so neither a real cluster on the machine nor another test session
is touched. ``make test`` installs the packages when it can; without them the tests skip and say why."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel")
PARTITION = "debug"


class ClusterUnavailable(RuntimeError):
    """The cluster could not be started here; the message says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """``NodeName=... CPUs=... RealMemory=...`` as slurmd measures this machine."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0]


def _slurm_conf(root: Path, node_line: str) -> str:
    node = node_line.split()[0].split("=", 1)[1]
    return "\n".join(
        [
            "ClusterName=scratchlab-test",
            f"SlurmctldHost={node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={root}/munge/socket",
            "CredType=cred/munge",
            f"StateSaveLocation={root}/state",
            f"SlurmdSpoolDir={root}/spool",
            f"SlurmctldPidFile={root}/slurmctld.pid",
            f"SlurmdPidFile={root}/slurmd.pid",
            f"SlurmctldLogFile={root}/slurmctld.log",
            f"SlurmdLogFile={root}/slurmd.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            # memory is not consumed by a job (no DefMemPerCPU here would give each job the whole node)
            "SelectTypeParameters=CR_Core",
            "MpiDefault=none",
            "MailProg=/bin/true",
            "ReturnToService=2",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SchedulerParameters=sched_interval=1",
            "MinJobAge=600",
            "KillWait=1",  # a requeued or cancelled job's task ignores SIGTERM (submitit): kill it soon
            f"{node_line} NodeAddr=127.0.0.1 State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


class SlurmCluster:
    """``start()`` the daemons (env: :attr:`env`), ``stop()`` them all, even half-started ones."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="scratchlab-slurm-"))
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self, timeout_s: float = 30.0) -> None:
        if missing := [p for p in (*DAEMONS, *CLIENTS) if shutil.which(p) is None]:
            raise ClusterUnavailable(
                f"{', '.join(missing)} not installed (Debian: apt-get install slurmctld slurmd slurm-client "
                "munge; `make test` does it as root)"
            )
        if os.geteuid() != 0:
            raise ClusterUnavailable("slurmd must run as root to start jobs")
        for sub in ("munge", "state", "spool"):
            (self.root / sub).mkdir(mode=0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        munge = self.root / "munge"
        self._run(
            "munged",
            "--force",
            f"--key-file={key}",
            f"--socket={munge}/socket",
            f"--pid-file={munge}/munged.pid",
            f"--log-file={munge}/munged.log",
            f"--seed-file={munge}/munged.seed",
        )
        self.conf.write_text(_slurm_conf(self.root, _node_line()))
        self._run("slurmctld", "-f", str(self.conf), "-i")
        self._run("slurmd", "-f", str(self.conf))
        deadline = time.monotonic() + timeout_s
        while self.sinfo("%T") != "idle":
            if time.monotonic() > deadline:
                raise ClusterUnavailable(f"the node did not come up in {timeout_s:.0f} s:\n{self.logs()}")
            time.sleep(0.2)

    def _run(self, *cmd: str) -> None:
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=30)
        if done.returncode:
            raise ClusterUnavailable(f"{' '.join(cmd)} failed: {done.stderr.strip()}\n{self.logs()}")

    def sinfo(self, fmt: str) -> str:
        done = subprocess.run(
            ["sinfo", "-h", "-p", PARTITION, "-o", fmt],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return done.stdout.strip()

    def squeue(self, *job_ids: str) -> dict[str, str]:
        """Job id -> state of the given jobs (every job when none given), finished ones included."""
        cmd = ["squeue", "-h", "-t", "all", "-o", "%i %T"]
        if job_ids:
            cmd += ["-j", ",".join(job_ids)]
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=10).stdout
        return dict(line.split() for line in out.splitlines())

    def logs(self, tail: int = 20) -> str:
        parts = []
        for path in sorted(self.root.glob("*.log")) + sorted(self.root.glob("munge/*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel every job (a job's slurmstepd outlives slurmd), then end each daemon that started."""
        if self.conf.is_file() and shutil.which("scancel"):
            subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True, timeout=30)
            deadline = time.monotonic() + 15
            active = ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED")
            while any(s in active for s in self.squeue().values()) and time.monotonic() < deadline:
                time.sleep(0.2)
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            _end(self.root / pid_file)
        shutil.rmtree(self.root, ignore_errors=True)


def _end(pid_file: Path, timeout_s: float = 10.0) -> None:
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
