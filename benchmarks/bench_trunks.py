"""Row 8: shared trunks. The iterations a study runs against its arms' summed iterations, from
``scratchlab study STUDY.yaml --plan`` (no training): the paper's Table 1 study
(configs/studies/coco_rethinking_fig1.yaml; goal: at most 55%) and ``make demo``'s study; then the demo's
study trained twice in this one run, with its arms forking from their trunks and with ``share: false``
(each through ``--launcher local --max-parallel 2`` on 2 cores, one thread per job, as the demo runs).

    python benchmarks/bench_trunks.py [--plan-only]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from common import ROOT, emit, log, timed_on_cores

from scratchlab.study.demo import demo_study

FIG1 = ROOT / "configs" / "studies" / "coco_rethinking_fig1.yaml"
_LAST = re.compile(r"iterations: (\d+) of (\d+) \(([\d.]+)%\)")


def planned(study: Path) -> tuple[int, int, float]:
    """(iterations run, arms' sum, percent) from the plan's last line, as a script reads it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "scratchlab", "study", str(study), "--plan"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    m = _LAST.fullmatch(out.strip().splitlines()[-1])
    if m is None:
        raise ValueError(f"{study}: --plan's last line is not 'iterations: RUN of SUM (P%)'")
    return int(m.group(1)), int(m.group(2)), float(m.group(3))


CORES = 2


def trained(study: Path, out: Path) -> float:
    """Wall seconds of training ``study`` into ``out`` with the demo's launcher settings on 2 cores."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    args = ["study", str(study), "--out", str(out), "--launcher", "local", "--max-parallel", "2"]
    return timed_on_cores(args, CORES, env)[0]


def demo_walls(tmp: Path) -> tuple[list[list], list[str]]:
    """Rows and notes: the demo's study trained with and without sharing, and what study.json says."""
    rows, notes = [], []
    for share in (True, False):
        study = tmp / f"demo_share_{share}.yaml"
        study.write_text(yaml.safe_dump({**demo_study(), "share": share}, sort_keys=False))
        log(f"training the demo's study with share: {share} (minutes)")
        wall = trained(study, tmp / f"share_{share}")
        sharing = json.loads((tmp / f"share_{share}" / "study.json").read_text())["sharing"]
        label = "make demo's study, trained" + ("" if share else " with share: false")
        rows.append([label, sharing["iterations_run"], sharing["iterations_sum"],
                     round(100 * sharing["iterations_run"] / sharing["iterations_sum"], 1), round(wall, 1)])  # fmt: skip
        if share:
            notes.append(
                f"study.json of the shared run: the forks did not pay again {sharing['saved_iterations']} "
                f"iterations, {sharing['saved_wall_s']:.1f} s of their trunks' training wall time"
            )
    return rows, notes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plan-only", action="store_true", help="only the plans, no training")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "study.yaml"
        demo.write_text(yaml.safe_dump(demo_study(), sort_keys=False))
        rows = [
            [label, *planned(path), None] for label, path in (("Table 1 (fig1)", FIG1), ("make demo", demo))
        ]
        notes = ["Planned rows from the plan alone (no training). Goal: Table 1 at most 55%."]
        if not a.plan_only:
            trained_rows, trained_notes = demo_walls(Path(tmp))
            rows += trained_rows
            notes += [
                *trained_notes,
                f"trained rows: {CORES} cores, OMP_NUM_THREADS=1 per job, 2 jobs at a time",
            ]
    emit(
        "8. Shared trunks: iterations a study runs vs its arms' sum (`study --plan`), demo wall time",
        f"python benchmarks/bench_trunks.py{' --plan-only' if a.plan_only else ''}",
        ["study", "iterations run", "arms' sum", "run (%)", "wall s"],
        rows,
        notes,
    )


if __name__ == "__main__":
    main()
