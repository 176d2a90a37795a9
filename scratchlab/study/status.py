"""``scratchlab study --status DIR``: where each arm of a study stands, read from ``DIR/study.json`` and
each arm's run dir (its ``metrics.jsonl`` says how far a running arm has got) and, on Slurm, each job's
state at the launcher's last look (``DIR/jobs/queue.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["arm_progress", "format_status"]

COLUMNS = ("arm", "status", "iteration", "last AP", "job id", "job state")


def arm_progress(run_dir: Path) -> tuple[int | None, float | None]:
    """The last iteration ``run_dir/metrics.jsonl`` logged and the last box AP it holds (None when none);
    a line torn by a kill is skipped."""
    iteration = ap = None
    path = run_dir / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            iteration = row.get("iteration", iteration)
            if row.get("bbox/AP") is not None:
                ap = row["bbox/AP"]
    return iteration, ap


def _job_states(out: Path) -> dict[str, str]:
    """Slurm job id -> its state (``PENDING (Dependency)``, ``RUNNING``, ...); empty off Slurm."""
    try:
        return json.loads((out / "jobs" / "queue.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def format_status(out: str | Path) -> str:
    """A table of the study's arms: status (pending / running / finished / failed / diverged), the last
    logged iteration of max_iter, the last box AP, the job id (cluster launchers) and its Slurm state."""
    out = Path(out)
    path = out / "study.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {out} a study directory (scratchlab study ... --out)?")
    study = json.loads(path.read_text())
    rows, states = [], _job_states(out)
    for arm in study["arms"]:
        iteration, ap = arm_progress(out / arm.get("run_dir", f"arms/{arm['name']}"))
        if arm.get("final") and arm["final"].get("bbox"):
            ap = arm["final"]["bbox"].get("AP", ap)
        done = f"{_cell(iteration)}/{arm['max_iter']}" if arm.get("max_iter") else _cell(iteration)
        job = arm.get("job_id")
        rows.append((arm["name"], arm["status"], done, _cell(ap), _cell(job), _cell(states.get(str(job)))))
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [COLUMNS, *rows]]
    counts = {
        s: sum(r[1] == s for r in rows) for s in ("finished", "running", "pending", "failed", "diverged")
    }
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return "\n".join([f"study {study.get('name', out.name)}: {summary}", *lines])
