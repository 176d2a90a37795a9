"""A stand-in for StudyJob, in a module of its own so the job process that unpickles it imports nothing
heavy (the launcher's stop test)."""

from __future__ import annotations

import os
import time
from pathlib import Path


class SleepingJob:
    """Writes its process id next to the study's output and waits, as a long arm would."""

    def __init__(self, study_file: str, out: str, arm_name: str, kind: str = "arm", *rest) -> None:
        self.out, self.arm_name = Path(out), arm_name

    def __call__(self) -> None:
        tmp = self.out / f"{self.arm_name}.pid.tmp"
        tmp.write_text(str(os.getpid()))
        tmp.rename(tmp.with_suffix(""))
        time.sleep(120)
