"""Row 8: shared trunks. The iterations a study runs against its arms' summed iterations, from
``scratchlab study STUDY.yaml --plan`` (no training): the paper's Table 1 study
(configs/studies/coco_rethinking_fig1.yaml; goal: at most 55%) and ``make demo``'s study.

    python benchmarks/bench_trunks.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from common import ROOT, emit

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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "study.yaml"
        demo.write_text(yaml.safe_dump(demo_study(), sort_keys=False))
        rows = [[label, *planned(path)] for label, path in (("Table 1 (fig1)", FIG1), ("make demo", demo))]
    emit(
        "8. Shared trunks: iterations a study runs vs its arms' sum (`study --plan`)",
        "python benchmarks/bench_trunks.py",
        ["study", "iterations run", "arms' sum", "run (%)"],
        rows,
        [
            "From the plan alone (no training). Goal: Table 1 at most 55%.",
            "Wall time with and without sharing is not measured: training does not fork from trunks yet.",
        ],
    )


if __name__ == "__main__":
    main()
