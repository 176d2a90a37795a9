"""Training curves from a run's ``metrics.jsonl``, the way Ultralytics' results.png shows a run at a
glance: ``loss.png`` (total and each loss term), ``ap.png`` (AP / AP50 per task against iteration) and
``lr.png``. Drawn with matplotlib's object API (Agg), so nothing touches pyplot's global state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

__all__ = ["read_metrics", "plot_run", "plot_pr_curves"]


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` by iteration; a resumed run may log an iteration twice: the later
    row wins for each key. A torn last line (a killed process) is skipped."""
    by_iter: dict[int, dict[str, Any]] = {}
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        by_iter.setdefault(int(row["iteration"]), {}).update(row)
    return [by_iter[i] for i in sorted(by_iter)]


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["iteration"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
    return [p[0] for p in pts], [p[1] for p in pts]


def _plot(
    rows: list[dict[str, Any]], keys: list[str], title: str, ylabel: str, path: Path, log_y: bool = False
) -> Path | None:
    keys = [k for k in keys if _series(rows, k)[0]]
    if not keys:
        return None
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for k in keys:
        xs, ys = _series(rows, k)
        ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, markersize=3, label=k)
    if log_y and all(v > 0 for k in keys for v in _series(rows, k)[1]):
        ax.set_yscale("log")
    ax.set(title=title, xlabel="iteration", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    return path


def plot_run(metrics_jsonl: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the run's curves under ``out_dir`` (created); returns the files written. A figure without
    data (e.g. AP for a run without a validation set) is not written."""
    rows = read_metrics(metrics_jsonl)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in rows for k in r})
    losses = ["loss"] + [k for k in keys if k.startswith("loss_")]
    aps = [k for k in keys if k.split("/")[-1] in ("AP", "AP50") and "/" in k]
    made = [
        _plot(rows, losses, "training loss", "loss", out / "loss.png", log_y=True),
        _plot(rows, aps, "validation AP", "AP (%)", out / "ap.png"),
        _plot(rows, ["lr"], "learning rate", "lr", out / "lr.png"),
    ]
    return [p for p in made if p is not None]


def plot_pr_curves(curves: dict[str, dict[str, list[float]]], title: str, path: str | Path) -> Path:
    """One precision-recall curve per class (``{name: {"recall": [...], "precision": [...]}}``)."""
    fig = Figure(figsize=(6, 5))
    ax = fig.add_subplot()
    for name, c in curves.items():
        ax.plot(c["recall"], c["precision"], label=name)
    ax.set(title=title, xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=7, ncol=1 + len(curves) // 12)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path
