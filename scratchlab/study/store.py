"""``study.json``: written atomically with each arm's bulky per-image data on one line, and the verdict
and report rebuilt from it alone (``scratchlab study --report-only DIR``). No torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .. import run_dir
from ..utils.io import write_text
from .noise import calibrate
from .report import load_study, write_report
from .verdict import RESAMPLES, compute_verdict

__all__ = ["write_study", "rebuild_report", "calibrate_noise"]


def write_study(path: Path, study: dict[str, Any]) -> None:
    """Write study.json atomically: indented, but each arm's per-image data on one line (it is bulky and
    only read by the bootstrap)."""
    blobs: list[str] = []

    def stash(block: Any) -> Any:
        if block is None:
            return None
        blobs.append(json.dumps(block, separators=(",", ":"), allow_nan=False))
        return f"@per_image_{len(blobs) - 1}@"

    arms = [
        {
            **a,
            "per_image": stash(a.get("per_image")),
            "curve": [{**p, "per_image": stash(p.get("per_image"))} for p in a.get("curve") or []],
        }
        for a in study["arms"]
    ]
    text = json.dumps({**study, "arms": arms}, indent=2, allow_nan=False)
    for i, blob in enumerate(blobs):
        text = text.replace(f'"@per_image_{i}@"', blob, 1)
    write_text(path, text)


def rebuild_report(out: str | Path, resamples: int = RESAMPLES) -> dict[str, Any]:
    """``scratchlab study --report-only DIR``: recompute the verdict (bootstrap included) from the arms
    kept in DIR/study.json, without running any arm, and rewrite study.json and the report."""
    out = Path(out)
    study = load_study(out / run_dir.STUDY)
    study["verdict"] = compute_verdict(study["arms"], resamples=resamples, noise=study.get("noise"))
    study.pop("report", None)
    write_study(out / run_dir.STUDY, study)
    study["report"] = write_report(study, out)
    return study


def calibrate_noise(out: str | Path) -> str:
    """``scratchlab study --calibrate-noise DIR``: the ``noise:`` block of DIR's finished seeds (pooled
    within-configuration spread), written to DIR/noise.yaml; returns its YAML text."""
    out = Path(out)
    study = load_study(out / run_dir.STUDY)
    text = yaml.safe_dump({"noise": calibrate(study["arms"], str(out)).as_block()}, sort_keys=False)
    write_text(out / run_dir.NOISE, text)
    return text
