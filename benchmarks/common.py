"""What the row scripts of ``make bench`` share: the repeat count, summary statistics, the data they
measure on, and the one JSON line each prints for benchmarks/run.py."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "configs" / "mini" / "mask_rcnn_gn_scratch.yaml"
MINI_BOXES = ROOT / "configs" / "mini" / "faster_rcnn_gn_scratch.yaml"
RACCOON = ROOT.parent / "shared" / "data" / "raccoon"
REPEATS_ENV = "SCRATCHLAB_BENCH_REPEATS"


def repeats(default: int) -> int:
    """The repeat count ``make bench --repeats N`` asked for, else ``default``."""
    return int(os.environ.get(REPEATS_ENV) or default)


def spread(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def emit(title: str, command: str, columns: list[str], rows: list[list[Any]], notes: list[str]) -> None:
    """Print the row's result: one JSON object on the last stdout line (benchmarks/run.py reads it)."""
    print(json.dumps({"title": title, "command": command, "columns": columns, "rows": rows, "notes": notes}))


def timed_on_cores(args: list[str], cores: int, env: dict[str, str] | None = None) -> tuple[float, int]:
    """(wall seconds, cores used) of ``python -m scratchlab ARGS`` restricted to the first ``cores`` CPUs
    this process may use, so its figure is a ``cores``-core figure anywhere; exits naming the failure."""
    env = dict(env if env is not None else os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    use = sorted(os.sched_getaffinity(0))[:cores]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "scratchlab", *args],
        env=env,
        preexec_fn=lambda: os.sched_setaffinity(0, use),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"scratchlab {' '.join(args)} failed with exit code {proc.returncode}")
    return wall, len(use)


def log(message: str) -> None:
    print(f"[{Path(sys.argv[0]).stem}] {message}", file=sys.stderr, flush=True)


def synth_keys(folder: Path, num_train: int, num_val: int, config: Path = MINI) -> list[str]:
    """data.* overrides for the generated set ``config`` describes, resized to ``num_train``/``num_val``
    images and made once under ``folder``."""
    from scratchlab.config import load_config
    from scratchlab.data.synth import make_synth_detection

    ann = folder / "annotations"
    if not (ann / "instances_val.json").exists():
        s = load_config(config).data.synth
        make_synth_detection(
            folder, num_train, num_val, s.image_size, s.seed, s.min_object_size, s.max_objects,
            s.object_textures, s.shapes, s.class_colours, s.max_object_size,
        )  # fmt: skip
    return [
        f"data.train_json={ann / 'instances_train.json'}",
        f"data.train_images={folder / 'train'}",
        f"data.val_json={ann / 'instances_val.json'}",
        f"data.val_images={folder / 'val'}",
    ]


def raccoon_keys(folder: Path) -> list[str] | None:
    """data.* overrides for the raccoon photographs (converted once to COCO JSON under ``folder`` by
    ``scratchlab data convert --from voc``), or None when ../shared/data/raccoon is absent."""
    if not (RACCOON / "images").is_dir():
        return None
    ann = folder / "annotations"
    if not (ann / "instances_val.json").exists():
        cmd = [sys.executable, "-m", "scratchlab", "data", "convert", "--from", "voc", str(RACCOON)]
        subprocess.run([*cmd, "--out", str(folder), "--split", "0.2"], check=True, stdout=subprocess.DEVNULL)
    images = RACCOON / "images"
    return [
        f"data.train_json={ann / 'instances_train.json'}",
        f"data.train_images={images}",
        f"data.val_json={ann / 'instances_val.json'}",
        f"data.val_images={images}",
    ]


def threads_note() -> str:
    import torch

    return f"torch threads {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})"
