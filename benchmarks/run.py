"""``make bench``: run every benchmark row script and regenerate the measured part of BENCHMARKS.md.

    python benchmarks/run.py [--only NAME ...] [--repeats N] [--file BENCHMARKS.md]

Each row script runs in its own process (no state leaks between rows) and prints ONE JSON object as the
last line of its stdout::

    {"title": str, "command": str, "columns": [str, ...], "rows": [[cell, ...], ...], "notes": [str, ...]}

Numbers are rendered here (3 significant digits; ints as counted), strings as they are. A script that is
missing, fails, times out or prints no such object is reported in the file as such, with the tail of its
stderr: a row is never silently skipped.

The generated part sits between :data:`BEGIN` and :data:`END`; everything outside the markers is
hand-written history and is kept byte for byte. Each row is its own section (``<!-- bench row: NAME -->``),
so ``--only loop`` replaces the loop row and keeps the others from the last run. ``--repeats N`` reaches
the row scripts as ``SCRATCHLAB_BENCH_REPEATS`` (a script reads it as its default repeat count).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # scratchlab.utils.io for the atomic write, from a clean clone

BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"
_ROW_MARK = "<!-- bench row: {} -->"
_ROW_RE = re.compile(r"^<!-- bench row: (\S+) -->$", re.M)
REPEATS_ENV = "SCRATCHLAB_BENCH_REPEATS"
_KEYS = ("title", "command", "columns", "rows", "notes")


@dataclass(frozen=True)
class Row:
    name: str
    script: str
    title: str  # shown when the script itself cannot say (missing, failed)


# The rows in its order; 4 and 6 come from one demo run.
ROWS = (
    Row("loop", "bench_loop.py", "1. Training loop overhead: `scratchlab train` vs a bare loop"),
    Row("data", "bench_data.py", "2. Data loading: loader images/s vs model images/s"),
    Row("eval", "bench_eval.py", "3. Evaluation vs pycocotools"),
    Row(
        "demo",
        "bench_demo.py",
        "4 and 6. `scratchlab demo`: wall time, direct vs classification pre-training",
    ),
    Row("inference", "bench_inference.py", "5. Inference images/s at batch 1"),
    Row("gpu", "bench_gpu.py", "7. Full-size R50-FPN GN-all Mask R-CNN on one GPU"),
    Row(
        "trunks",
        "bench_trunks.py",
        "8. Shared trunks: iterations a study runs vs its arms' sum, demo wall time",
    ),
)


def machine() -> dict[str, str]:
    """What the figures were measured on: CPU model, cores, torch/torchvision, GPU (or none), load."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu, "cores": f"{os.cpu_count()} ({usable} usable)"}
    try:
        import torch
        import torchvision

        info["torch"], info["torchvision"] = torch.__version__, torchvision.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except ImportError as err:
        info["torch"] = f"not importable: {err}"
    return info


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def fmt(cell: Any) -> str:
    """A table cell: floats to 3 significant digits (no exponent), ints as counted, None as n/a."""
    if cell is None:
        return "n/a"
    if isinstance(cell, bool) or not isinstance(cell, int | float):
        return str(cell).replace("|", "\\|").replace("\n", " ")
    if isinstance(cell, int):
        return str(cell)
    if not math.isfinite(cell):
        return str(cell)
    if cell == 0:
        return "0"
    rounded = float(f"{cell:.3g}")
    decimals = max(0, 2 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:.{decimals}f}"


def parse_result(stdout: str) -> dict[str, Any]:
    """The JSON object on the last non-empty stdout line; ValueError says what is wrong with it."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("printed nothing on stdout")
    try:
        obj = json.loads(lines[-1])
    except json.JSONDecodeError as err:
        raise ValueError(f"last stdout line is not JSON ({err}): {lines[-1][:200]}") from None
    if not isinstance(obj, dict) or (missing := [k for k in _KEYS if k not in obj]):
        raise ValueError(f"the JSON object lacks {missing if isinstance(obj, dict) else list(_KEYS)}")
    if any(len(r) != len(obj["columns"]) for r in obj["rows"]):
        raise ValueError(f"a row's cell count differs from the {len(obj['columns'])} columns")
    return obj


def table(columns: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(fmt(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _machine_line(info: dict[str, str], load_before: str, load_after: str, when: str) -> str:
    parts = [f"CPU {info['cpu']}, {info['cores']} cores"]
    parts += [f"{k} {info[k]}" for k in ("torch", "torchvision") if k in info]
    parts.append(f"GPU {info.get('gpu', 'unknown')}")
    return f"Machine: {', '.join(parts)}. Measured {when}; load average (1/5/15 min) {load_before} before, {load_after} after."


def render_row(row: Row, outcome: dict[str, Any]) -> str:
    """One row's markdown section from its outcome: ``{"result"}`` or ``{"status", "detail", "stderr"}``."""
    mark, head = _ROW_MARK.format(row.name), outcome.get("result", {}).get("title") or row.title
    out = [mark, f"### {head}", ""]
    if "machine" in outcome:
        out += [
            _machine_line(outcome["machine"], outcome["load_before"], outcome["load_after"], outcome["when"]),
            "",
        ]
    if "result" in outcome:
        r = outcome["result"]
        out += [f"Command: `{r['command']}` ({outcome['seconds']:.0f} s)", "", table(r["columns"], r["rows"])]
        out += [""] + [f"- {n}" for n in r["notes"]] if r["notes"] else []
    elif outcome["status"] == "not present":
        out.append(f"Not present: `benchmarks/{row.script}` is not in this checkout.")
    else:
        out.append(f"**{outcome['status']}**: `python benchmarks/{row.script}`: {outcome['detail']}")
        if outcome.get("stderr"):
            out += ["", "```", outcome["stderr"].rstrip(), "```"]
    return "\n".join(out) + "\n"


def run_row(row: Row, env: dict[str, str], timeout: float, bench_dir: Path | None = None) -> dict[str, Any]:
    """Run one row script (from ``bench_dir``, default this folder); its outcome for :func:`render_row`."""
    script = (bench_dir or HERE) / row.script
    if not script.is_file():
        return {"status": "not present"}
    info, load_before = machine(), load_average()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    base = {"machine": info, "load_before": load_before, "when": when}
    t0 = datetime.datetime.now().timestamp()
    try:
        proc = subprocess.run(
            [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as err:
        tail = _tail(err.stderr.decode() if isinstance(err.stderr, bytes) else err.stderr or "")
        return {
            **base,
            "load_after": load_average(),
            "status": "timed out",
            "detail": f"after {timeout:.0f} s",
            "stderr": tail,
        }
    base |= {"load_after": load_average(), "seconds": datetime.datetime.now().timestamp() - t0}
    sys.stderr.write(proc.stderr[-2000:])
    if proc.returncode != 0:
        return {
            **base,
            "status": "failed",
            "detail": f"exit code {proc.returncode}",
            "stderr": _tail(proc.stderr),
        }
    try:
        return {**base, "result": parse_result(proc.stdout)}
    except ValueError as err:
        return {**base, "status": "failed", "detail": str(err), "stderr": _tail(proc.stderr)}


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def split_document(text: str) -> tuple[str, dict[str, str], str]:
    """(text before BEGIN, {row name: its section}, text after END). A document without markers gets them
    after its title paragraph: before the first ``## `` heading, or at the end."""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        body, tail = rest.split(END, 1)
        names = _ROW_RE.findall(body)
        chunks = _ROW_RE.split(body)[1:]  # [name, section body, name, section body, ...]
        sections = {
            n: _ROW_MARK.format(n) + chunks[2 * i + 1].rstrip("\n") + "\n" for i, n in enumerate(names)
        }
        return head, sections, tail
    at = text.find("\n## ")
    if at < 0:
        return text.rstrip("\n") + "\n\n", {}, "\n"
    return text[: at + 1], {}, "\n\n" + text[at + 1 :]


def join_document(head: str, sections: dict[str, str], tail: str) -> str:
    intro = (
        "## Measured by `make bench`\n\n"
        "Generated by `python benchmarks/run.py` (`make bench`); edit nothing between the markers, it is "
        "rewritten. Each row: the command, the machine and its load, the figures.\n"
    )
    order = [r.name for r in ROWS] + sorted(set(sections) - {r.name for r in ROWS})
    body = "\n".join(sections[n] for n in order if n in sections)
    return f"{head}{BEGIN}\n{intro}\n{body}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=[r.name for r in ROWS], help="run these rows only")
    p.add_argument("--repeats", type=int, help=f"repeat count for every row script ({REPEATS_ENV})")
    p.add_argument("--file", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per row script")
    a = p.parse_args(argv)
    from scratchlab.utils.io import write_text

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if a.repeats is not None:
        env[REPEATS_ENV] = str(a.repeats)
    head, sections, tail = split_document(a.file.read_text() if a.file.exists() else "# Benchmarks\n")
    failed = 0
    for row in (r for r in ROWS if not a.only or r.name in a.only):
        print(f"[bench] {row.name}: benchmarks/{row.script}", file=sys.stderr, flush=True)
        outcome = run_row(row, env, a.timeout)
        failed += outcome.get("status") in ("failed", "timed out")
        sections[row.name] = render_row(row, outcome)
        write_text(a.file, join_document(head, sections, tail))  # each row lands as soon as it is measured
        print(f"[bench] {row.name}: {outcome.get('status', 'measured')}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
