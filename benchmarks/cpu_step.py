"""Time (and optionally profile) training steps of a config on this machine's CPU.

    .venv/bin/python benchmarks/cpu_step.py configs/mini/mask_rcnn_gn_scratch.yaml [--profile] [key=value ...]

Generates the config's synthetic data under /tmp/scratchlab_bench if it has no data keys, runs 2 warm-up
steps and times the next 6 (data loading excluded: batches are prepared first).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from scratchlab.config import load_config
from scratchlab.data.coco import collate
from scratchlab.engine.data import build_datasets, resolve_data
from scratchlab.models import build_model


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--profile", action="store_true")
    a = p.parse_intermixed_args()
    torch.manual_seed(0)
    cfg = resolve_data(load_config(a.config, a.overrides), "/tmp/scratchlab_bench")
    train_set, _ = build_datasets(cfg)
    model = build_model(cfg, train_set.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    bs = int(cfg.solver.ims_per_batch)
    batches = [collate([train_set[(i + k * bs) % len(train_set)] for i in range(bs)]) for k in range(8)]

    def step(images, targets) -> None:
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    for images, targets in batches[:2]:
        step(images, targets)
    times = []
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if a.profile else None
    if prof:
        prof.__enter__()
    for images, targets in batches[2:]:
        t0 = time.perf_counter()
        step(images, targets)
        times.append(time.perf_counter() - t0)
    if prof:
        prof.__exit__(None, None, None)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    print(
        f"{a.config} {' '.join(a.overrides)}: batch {bs}, threads {torch.get_num_threads()}, "
        f"median {statistics.median(times):.3f} s/step (min {min(times):.3f}, max {max(times):.3f})"
    )


if __name__ == "__main__":
    main()
