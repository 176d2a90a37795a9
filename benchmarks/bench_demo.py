"""Rows 4 and 6: one ``scratchlab demo`` run, its wall time on 2 cores (goal: at most 10 minutes) and, from
its study.json, what direct and classification pre-training cost to reach their fine-tuned AP (the
paper's "> 11x cheaper" claim for direct pre-training, measured on the miniature).

    python benchmarks/bench_demo.py [--out DIR] [--quick]

The demo runs in a child process restricted to 2 cores (the first 2 this process may use), so the figure
is a 2-core figure anywhere; it gives its jobs their threads itself (one each, two jobs at a time). Costs are
the runs' own counts (engine/cost.py: images, pixels and wall seconds of training, plus those of the
pre-training the arm started from); AP intervals are the study's 95% intervals: a paired bootstrap over
val images with the recipe's calibrated training noise added.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from common import emit, log, timed_on_cores

CORES = 2


def run_demo(out: Path, quick: bool) -> tuple[float, int]:
    """(wall seconds, cores used) of ``scratchlab demo --out out`` (``--quick``: its smoke-test size)."""
    return timed_on_cores(["demo", "--out", str(out), *(["--quick"] if quick else [])], CORES)


def _interval(groups: list[dict[str, Any]], arm: str) -> list[float] | None:
    """The arm's 95% interval as the report gives it: images and training noise together."""
    for g in groups:
        if arm in g.get("arms", []):
            ap = (g.get("bbox") or {}).get("AP", {})
            return ap.get("noise_interval") or ap.get("bootstrap_interval")
    return None


def arm_rows(study: dict[str, Any]) -> list[list[Any]]:
    """Per arm: start, bbox AP [interval], pre-training and total images / pixels / wall seconds."""
    groups, rows = study["verdict"].get("groups", []), []
    for arm in study["arms"]:
        cost, ap = arm.get("cost") or {}, ((arm.get("final") or {}).get("bbox") or {}).get("AP")
        pre, total = cost.get("pretrain") or {}, cost.get("total") or {}
        iv = _interval(groups, arm["name"])
        rows.append(
            [arm["name"], ap, "n/a" if iv is None else f"[{iv[0]:.1f}, {iv[1]:.1f}]",
             pre.get("images_seen", 0), pre.get("pixels_seen", 0), pre.get("wall_s", 0.0),
             total.get("images_seen"), total.get("pixels_seen"), total.get("wall_s")]
        )  # fmt: skip
    return rows


def direct_vs_classify(study: dict[str, Any]) -> list[str]:
    """Per pre-training cost, the verdict's comparison of the direct and classification arms it paired
    (fine-tuned at the same schedule): the AP difference with its interval and the cost ratio."""
    lines = []
    for f in study["verdict"].get("findings", {}).get("direct_vs_classify", []):
        iv, pair = f.get("interval"), " vs ".join(f.get("arms") or [])
        span = f" [{iv[0]:+.1f}, {iv[1]:+.1f}]" if iv else " (no interval)"
        diff = f"{f['diff']:+.1f}{span}" if f.get("diff") is not None else "not testable"
        ratio = (
            f"; pre-training {f['cost']}: classification / direct {1 / f['ratio']:.1f}x"
            if f.get("ratio")
            else ""
        )
        lines.append(
            f"direct minus classification ({pair}), {f.get('task')} AP: {diff}{ratio} "
            f"(outcome: {f.get('outcome') or 'undecided'})"
        )
    return lines or ["direct vs classification pre-training: the demo did not finish both arms"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="the demo's folder (default: a new temporary one)")
    p.add_argument(
        "--quick", action="store_true", help="scratchlab demo --quick: checks this script, not the demo"
    )
    a = p.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="bench_demo_")) / "demo"
    log(f"scratchlab demo --out {out} (several minutes)")
    wall, cores = run_demo(out, a.quick)
    study = json.loads((out / "study.json").read_text())
    rows = arm_rows(study)
    rows.append(
        ["`scratchlab demo` wall time (goal <= 600 s)", None, None, None, None, None, None, None, wall]
    )
    emit(
        "4 and 6. `scratchlab demo`: wall time, direct vs classification pre-training cost",
        f"python benchmarks/bench_demo.py{' --quick' if a.quick else ''}",
        ["arm", "bbox AP", "95% interval (images + training noise)", "pre-train images", "pre-train pixels", "pre-train wall s",
         "total images", "total pixels", "total wall s"],
        rows,
        [
            *direct_vs_classify(study),
            f"`scratchlab demo --out DIR{' --quick' if a.quick else ''}` on {cores} cores, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'set per job by the demo')}; wall time "
            f"{wall / 60:.1f} min including data generation, pre-training, {len(study['arms'])} arms, evaluation and the report",
            f"headline: {study['verdict'].get('headline', '')}",
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
