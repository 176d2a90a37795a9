"""Row 2: is the training loader the bottleneck? Loader images/s against model images/s, and the share of
a ``scratchlab train`` step spent waiting for data, on real photographs and on generated data.

    python benchmarks/bench_data.py [--workers auto 0] [--batches N] [--iters N]

Sets: the raccoon photographs (../shared/data/raccoon, 200 JPEGs of 250-1280 px with VOC boxes,
converted once by ``scratchlab data convert --from voc``; trained with the mini Faster R-CNN recipe,
configs/mini/faster_rcnn_gn_scratch.yaml, since VOC has no masks) and the mini Mask R-CNN recipe's
generated set. For each ``data.num_workers`` setting (``auto``, the default, chosen for the machine;
``0``, the old default, for comparison):

* loader images/s: the training loader (``build_train_loader``: sampler, decode, transforms, collate)
  iterated alone for ``--batches`` batches after the first;
* model images/s: training steps (forward, backward, SGD step) on batches loaded beforehand;
* data_time share: ``scratchlab train`` for ``--iters`` iterations, ``data_time / time`` from its
  metrics.jsonl after the first 10 iterations (the issue's goal: under 5%).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from common import MINI, MINI_BOXES, emit, log, raccoon_keys, repeats, spread, synth_keys, threads_note

from scratchlab.config import load_config
from scratchlab.engine.data import build_datasets, build_train_loader
from scratchlab.engine.trainer import train
from scratchlab.models import build_model

NO_VAL = ["data.val_json=null", "data.val_images=null", "eval.period=0"]


def loader_rate(cfg, batches: int) -> tuple[float, int]:
    """(images/s the training loader delivers alone, its worker count); the first batch (worker start-up)
    is left out."""
    train_set, _ = build_datasets(cfg)
    loader = build_train_loader(cfg, train_set, 0, 0, 1)
    it = iter(loader)
    next(it)
    t0, images = time.perf_counter(), 0
    for _ in range(batches):
        images += len(next(it)[0])
    return images / (time.perf_counter() - t0), loader.num_workers


def model_rate(cfg, steps: int) -> float:
    """Images/s of training steps on batches loaded beforehand (2 warm-up steps left out)."""
    torch.manual_seed(0)
    train_set, _ = build_datasets(cfg)
    it = iter(build_train_loader(cfg, train_set, 0, 0, 1))
    batches = [next(it) for _ in range(steps + 2)]
    model = build_model(cfg, num_classes=train_set.num_classes).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    images = 0
    for i, (imgs, targets) in enumerate(batches):
        if i == 2:
            t0 = time.perf_counter()
        loss = sum(model(imgs, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        images += len(imgs) if i >= 2 else 0
    return images / (time.perf_counter() - t0)


def data_share(cfg, out: Path) -> tuple[float, float]:
    """(data_time share of the step, s/iter) of ``scratchlab train`` after its first 10 iterations."""
    train(cfg, out)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "data_time" in r and r["iteration"] > 10]
    step = sum(r["time"] for r in rows)
    return sum(r["data_time"] for r in rows) / step, step / len(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", nargs="+", default=["auto", "0"], help="data.num_workers settings to measure")
    p.add_argument("--batches", type=int, default=20, help="batches per loader measurement")
    p.add_argument("--iters", type=int, default=40, help="scratchlab train iterations per share measurement")
    p.add_argument("--rounds", type=int, default=repeats(2), help="measurements per setting (median shown)")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_data_"))
    sets = [("generated (mini Mask R-CNN)", MINI, synth_keys(work / "synth", 64, 8))]
    if (rac := raccoon_keys(work / "raccoon")) is not None:
        sets.insert(0, ("raccoon photographs (mini Faster R-CNN)", MINI_BOXES, rac))
    rows, notes = [], []
    for name, config, keys in sets:
        for workers in a.workers:
            cfg = load_config(
                config, [*keys, *NO_VAL, f"data.num_workers={workers}", f"solver.max_iter={a.iters}"]
            )
            loader, model, share, step = [], [], [], []
            for r in range(a.rounds):
                rate, count = loader_rate(cfg, a.batches)
                loader.append(rate)
                model.append(model_rate(cfg, 6))
                s, t = data_share(cfg, work / f"run_{len(rows)}_{r}")
                share.append(s)
                step.append(t)
            label = f"{workers} ({count})" if workers == "auto" else workers
            med = spread(share)
            rows.append(
                [name, label, spread(loader)[0], spread(model)[0], spread(loader)[0] / spread(model)[0],
                 f"{med[0]:.1%} ({med[1]:.1%}-{med[2]:.1%})", spread(step)[0]]
            )  # fmt: skip
            log(f"{name} workers={label}: {rows[-1][2:]}")
    if rac is None:
        notes.append("raccoon photographs: not measured, ../shared/data/raccoon is absent")
    notes += [
        f"batch {load_config(MINI).solver.ims_per_batch}, mini input sizes (short side 78-96 px, long <= 160); "
        f"{threads_note()}; median of {a.rounds} rounds; loader alone over {a.batches} batches, model over "
        f"6 steps, data_time share over iterations 11-{a.iters} of `scratchlab train`",
        "loader/model > 1: the loader delivers faster than the model consumes (alone; in training they share the cores)",
    ]
    emit(
        "2. Data loading: loader images/s vs model images/s",
        f"python benchmarks/bench_data.py --workers {' '.join(a.workers)} --batches {a.batches} "
        f"--iters {a.iters} --rounds {a.rounds}",
        ["data", "data.num_workers", "loader img/s", "model img/s", "loader/model",
         "train data_time share, median (min-max) (goal < 5%)", "train s/iter"],
        rows,
        notes,
    )  # fmt: skip


if __name__ == "__main__":
    main()
