"""Metric writers in Detectron2's manner: JSON lines, TensorBoard and a console line with an ETA.
Only the main process writes; other ranks get no-op writers."""

from __future__ import annotations

import datetime
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from .. import run_dir
from ..utils.dist import is_main_process
from ..utils.io import write_text

__all__ = ["MetricWriters", "flatten_metrics", "drop_rows_after"]

log = logging.getLogger("scratchlab")


def flatten_metrics(results: dict[str, dict[str, float | None]]) -> dict[str, float | None]:
    """``{"bbox": {"AP": 1}}`` -> ``{"bbox/AP": 1}`` (Detectron2's key style in metrics.jsonl)."""
    return {f"{task}/{k}": v for task, res in results.items() for k, v in res.items()}


def _json_safe(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def drop_rows_after(path: Path, iteration: int, final_eval: bool = False) -> None:
    """Rewrite ``path`` (metrics.jsonl) without the rows past ``iteration`` and without torn lines: a run
    killed after its last checkpoint logged iterations the resumed run logs again. ``final_eval``: also drop
    the evaluation rows (rows without a loss) at ``iteration``: the final evaluation comes after the last
    checkpoint, so resuming a finished run evaluates, and logs, again."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # the line a kill tore in half
            continue
        if not isinstance(row, dict):
            continue
        at = int(row.get("iteration", 0))
        if at < iteration or (at == iteration and not (final_eval and "loss" not in row)):
            keep.append(line + "\n")
    write_text(path, "".join(keep))


class MetricWriters:
    """``metrics.jsonl`` + TensorBoard events in ``out_dir`` and a console line with progress and ETA."""

    def __init__(self, out_dir: str | Path, max_iter: int, start_iter: int = 0) -> None:
        self.enabled = is_main_process()
        self.max_iter, self.start_iter = max_iter, start_iter
        self._t0 = time.perf_counter()
        self._jsonl = self._tb = None
        if self.enabled:
            out_dir = Path(out_dir)
            if start_iter > 0:
                drop_rows_after(out_dir / run_dir.METRICS, start_iter, final_eval=start_iter >= max_iter)
            # A run from iteration 0 starts its own history: appending to an earlier run's rows in the same
            # folder drew both runs as one curve in plots/ and in a study's AP-vs-iteration figure.
            mode = "a" if start_iter > 0 else "w"
            self._jsonl = open(out_dir / run_dir.METRICS, mode)  # noqa: SIM115 - closed in close()
            if start_iter == 0:  # the same for TensorBoard, which reads every event file in the folder
                for earlier in out_dir.glob("events.out.tfevents.*"):
                    earlier.unlink()
            try:
                from torch.utils.tensorboard import SummaryWriter

                # purge_step hides the events a killed run wrote after its last checkpoint.
                self._tb = SummaryWriter(str(out_dir), purge_step=start_iter + 1 if start_iter > 0 else None)
            except ImportError:  # tensorboard is a dependency; degrade rather than fail a run over it
                log.warning("tensorboard is not installed: no event files will be written")

    def write(self, iteration: int, metrics: dict[str, Any], console: bool = True) -> None:
        """Record ``metrics`` for ``iteration`` (1-based count of finished iterations)."""
        if not self.enabled:
            return
        row = {"iteration": iteration, **{k: _json_safe(v) for k, v in metrics.items()}}
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, int | float) and v is not None and math.isfinite(v):
                    self._tb.add_scalar(k, v, iteration)
        if console:
            log.info(self._console_line(iteration, metrics))

    def _console_line(self, iteration: int, metrics: dict[str, Any]) -> str:
        done = iteration - self.start_iter
        elapsed = time.perf_counter() - self._t0
        eta = elapsed / done * (self.max_iter - iteration) if done > 0 else float("nan")
        eta_s = str(datetime.timedelta(seconds=int(eta))) if math.isfinite(eta) else "?"
        parts = [f"iter {iteration}/{self.max_iter}", f"eta {eta_s}"]
        for k, v in metrics.items():
            if isinstance(v, float):
                parts.append(f"{k} {v:.4g}")
        return "  ".join(parts)

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
