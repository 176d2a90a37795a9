"""``scratchlab study --status DIR``: where each arm of a study stands, read from ``DIR/study.json`` and
each arm's run dir (its ``metrics.jsonl`` says how far a running arm has got) and, on Slurm, each job's
state at the launcher's last look (``DIR/jobs/queue.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from .. import run_dir
from ..config import max_iter

__all__ = ["arm_progress", "format_status"]

COLUMNS = ("arm", "status", "iteration", "last AP", "job id", "job state")


def arm_progress(run: Path) -> tuple[int | None, float | None]:
    """The last iteration the run's metrics logged and the last box AP they hold (None when none)."""
    iteration = ap = None
    for row in run_dir.read_metrics(run):
        iteration = row.get("iteration", iteration)
        if row.get("bbox/AP") is not None:
            ap = row["bbox/AP"]
    return iteration, ap


def _job_states(out: Path) -> dict[str, str]:
    """Slurm job id -> its state (``PENDING (Dependency)``, ``RUNNING``, ...); empty off Slurm."""
    try:
        return run_dir.read_json(out / run_dir.JOBS / run_dir.QUEUE)
    except (OSError, ValueError):
        return {}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _planned_length(run: Path) -> int | None:
    """The iterations a running arm trains for, from the config its run wrote (None before it did)."""
    config = run_dir.read_config(run)
    return None if config is None else max_iter(OmegaConf.create(config))


def format_status(out: str | Path) -> str:
    """A table of the study's arms: status (pending / running / finished / failed / diverged), the last
    logged iteration of max_iter, the last box AP, the job id (cluster launchers) and its Slurm state."""
    out = Path(out)
    path = out / run_dir.STUDY
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {out} a study directory (scratchlab study ... --out)?")
    study = run_dir.read_json(path)
    rows, states = [], _job_states(out)
    for arm in study["arms"]:
        run = out / arm.get("run_dir", f"{run_dir.ARMS}/{arm['name']}")
        iteration, ap = arm_progress(run)
        if arm.get("final") and arm["final"].get("bbox"):
            ap = arm["final"]["bbox"].get("AP", ap)
        total = arm.get("max_iter") or _planned_length(run)
        done = f"{_cell(iteration)}/{total}" if total else _cell(iteration)
        job = arm.get("job_id")
        rows.append((arm["name"], arm["status"], done, _cell(ap), _cell(job), _cell(states.get(str(job)))))
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [COLUMNS, *rows]]
    counts = {
        s: sum(r[1] == s for r in rows) for s in ("finished", "running", "pending", "failed", "diverged")
    }
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return "\n".join([f"study {study.get('name', out.name)}: {summary}", *lines])
