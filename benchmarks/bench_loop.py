"""Row 1: the training loop's overhead, ``scratchlab train`` against a bare loop in the manner of
torchvision's references/detection ``train_one_epoch``.

    python benchmarks/bench_loop.py [--rounds N] [--iters N] [--warmup N] [key=value ...]

Both arms train the mini Mask R-CNN recipe (configs/mini/mask_rcnn_gn_scratch.yaml) on a generated set:
the same model from ``build_model`` under the same seed, the same dataset and transforms, the same
resumable batch sampler and loader (``build_train_loader``: batch, workers), the same optimizer and LR
schedule, the same torch threads (one process runs both). The bare loop does what the reference does per
step: move to the device, forward, sum the losses, ``loss.item()`` for its finiteness check, zero_grad,
backward, step, scheduler step. The trainer does everything it always does (cost counting, metric
writes every ``log.period``, a checkpoint at ``checkpoint.period``); no evaluation in either arm.

Rounds interleave the arms (ABBA order), so load that drifts during the run hits both. Each arm's s/iter
comes from clocks read by this script, not the trainer's own timer: a forward pre-hook on the model (the
same in both arms) stamps the start of every iteration, and the iterations after ``--warmup`` are kept
(the trainer's metric writes and checkpoints fall inside them). Ratio = bare s/iter / trainer s/iter of
the means: 1.0 means no overhead; the issue's goal is >= 0.98. The ratio of the medians, less sensitive
to bursts of other jobs on a shared machine, is shown beside it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from common import MINI, emit, log, repeats, spread, synth_keys, threads_note

from scratchlab.config import load_config
from scratchlab.engine import trainer as trainer_module
from scratchlab.engine.data import build_datasets, build_train_loader
from scratchlab.engine.schedule import build_optimizer, build_scheduler
from scratchlab.models import build_model


def _clocked(build):
    """``build_model`` whose model records ``time.perf_counter()`` at the start of every forward in
    ``starts`` (the same hook in both arms): consecutive starts bound one whole iteration of the loop,
    data wait, backward, optimizer step, logging and checkpoints included."""
    starts: list[float] = []

    def build_clocked(*args, **kwargs):
        model = build(*args, **kwargs)
        model.register_forward_pre_hook(lambda *_: starts.append(time.perf_counter()))
        return model

    return build_clocked, starts


def trainer_times(cfg, out: Path) -> tuple[list[float], float]:
    """(seconds of each iteration, data_time share) of ``scratchlab train``."""
    build, starts = _clocked(trainer_module.build_model)
    with mock.patch.object(trainer_module, "build_model", build):
        trainer_module.train(cfg, out)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "data_time" in r]
    rows = rows[1:] or rows  # the first log period holds the loader's start-up
    share = sum(r["data_time"] for r in rows) / sum(r["time"] for r in rows)
    return [b - a for a, b in itertools.pairwise(starts)], share


def bare_times(cfg) -> list[float]:
    """Seconds of each iteration of a torchvision-references-style loop over the same model, data and
    sampler."""
    build, starts = _clocked(build_model)
    torch.manual_seed(cfg.seed)  # the trainer seeds the same way before building its model
    train_set, _ = build_datasets(cfg)
    model = build(cfg, num_classes=train_set.num_classes)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    loader = build_train_loader(cfg, train_set, 0, 0, 1)
    device = torch.device("cpu")
    model.train()
    for it, (images, targets) in zip(range(int(cfg.solver.max_iter)), loader, strict=False):
        images = [i.to(device) for i in images]
        targets = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]
        loss_dict = model(images, targets)
        losses = sum(loss_dict.values())
        if not math.isfinite(losses.item()):
            raise FloatingPointError(f"loss is {losses.item()} at iteration {it}")
        optimizer.zero_grad()
        losses.backward()
        optimizer.step()
        scheduler.step()
    return [b - a for a, b in itertools.pairwise(starts)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=repeats(4))
    p.add_argument("--iters", type=int, default=60, help="iterations per arm, warm-up included")
    p.add_argument("--warmup", type=int, default=10, help="first iterations left out")
    p.add_argument("overrides", nargs="*")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_loop_"))
    keys = synth_keys(work / "data", 64, 8)
    cfg = load_config(
        MINI,
        [*keys, "data.val_json=null", "data.val_images=null", "eval.period=0", f"solver.max_iter={a.iters}"]
        + a.overrides,
    )
    rows, ratios, median_ratios, shares = [], [], [], []
    for r in range(a.rounds):
        order = ("trainer", "bare") if r % 2 == 0 else ("bare", "trainer")
        got = {}
        for arm in order:
            if arm == "trainer":
                got[arm], share = trainer_times(cfg, work / f"run{r}")
                shares.append(share)
            else:
                got[arm] = bare_times(cfg)
        (t_mean, t_med), (b_mean, b_med) = (
            (statistics.fmean(got[k][a.warmup :]), statistics.median(got[k][a.warmup :]))
            for k in ("trainer", "bare")
        )
        ratios.append(b_mean / t_mean)
        median_ratios.append(b_med / t_med)
        rows.append([f"round {r + 1}", t_mean, b_mean, ratios[-1], t_med, b_med, median_ratios[-1]])
        log(
            f"round {r + 1}: trainer {t_mean:.4f} s/iter, bare {b_mean:.4f}, ratio {ratios[-1]:.3f} (medians {median_ratios[-1]:.3f})"
        )
    for name, pick in (("median", 0), ("min", 1), ("max", 2)):
        rows.append(
            [f"ratio {name}", None, None, spread(ratios)[pick], None, None, spread(median_ratios)[pick]]
        )
    emit(
        "1. Training loop overhead: `scratchlab train` vs a bare loop",
        " ".join(
            [
                "python benchmarks/bench_loop.py",
                f"--rounds {a.rounds} --iters {a.iters} --warmup {a.warmup}",
                *a.overrides,
            ]
        ),
        [
            "round",
            "train s/iter (mean)",
            "bare s/iter (mean)",
            "ratio bare/train of means (goal >= 0.98)",
            "train median s/iter",
            "bare median s/iter",
            "ratio of medians",
        ],
        rows,
        [
            f"configs/mini/mask_rcnn_gn_scratch.yaml on 64 generated images (its data.synth), batch "
            f"{cfg.solver.ims_per_batch}, data.num_workers={cfg.data.num_workers}, {threads_note()}; "
            f"iterations {a.warmup + 1}-{a.iters - 1} of each arm, arms interleaved ABBA",
            f"trainer data_time share of the step: median {spread(shares)[0]:.1%}",
            "an iteration = from one forward's start to the next (a forward pre-hook, the same in both arms); "
            "the mean counts the trainer's periodic work (metric writes every log.period, a checkpoint every "
            "checkpoint.period), the median is less sensitive to other jobs on a shared machine",
        ],
    )


if __name__ == "__main__":
    main()
