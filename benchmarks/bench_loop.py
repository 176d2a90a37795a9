"""Row 1: the training loop's overhead, ``scratchlab train`` against a bare loop in the manner of
torchvision's references/detection ``train_one_epoch``.

    python benchmarks/bench_loop.py [--rounds N] [--iters N] [--warmup N] [key=value ...]

Both arms train the mini Mask R-CNN recipe (configs/mini/mask_rcnn_gn_scratch.yaml) on a generated set:
the same model from ``build_model`` under the same seed, the same dataset and transforms, the same
resumable batch sampler and loader (``build_train_loader``: batch, workers), the same optimizer and LR
schedule, the same torch threads (one process runs both). The bare loop does what the reference does per
step: move to the device, forward, sum the losses, ``loss.item()`` for its finiteness check, zero_grad,
backward, step, scheduler step. The trainer does everything it always does (cost counting, metric
writes every ``log.period``, a checkpoint every ``checkpoint.period``); no evaluation in either arm.

The arms run in lock-step, one iteration each in turn: the trainer's loader runs one iteration of the
bare loop before it hands the trainer each batch. So both arms meet the same machine,
iteration by iteration: on a shared machine whose speed drifts by 10% over seconds (earlier versions of
this row ran the arms one after the other and their ratio moved by that much from round to round), the
drift cancels in each pair. Clocks are read by this script: a trainer iteration runs from one batch
request to the next (data wait, forward, backward, step, logging, checkpoint), a bare iteration from its
data fetch to its scheduler step, so each arm's loader worker starts its next batch in that arm's own
turn (a turn taken at the trainer's forward instead, after its fetch, put the trainer's worker in the
bare arm's turn: the bare arm ran 2-16% slower than the trainer). The trainer writes its checkpoints on a
background thread; the turn waits for a write in flight before it stops the trainer's clock, so the write
counts wholly to the trainer (the conservative side: the bare arm never pays for it).

Ratio = bare s/iter / trainer s/iter over the iterations after ``--warmup``: 1.0 means no overhead; the
issue's goal is >= 0.98. The median of the per-iteration ratios (each pair of neighbouring iterations)
is shown beside it. An A/A check closes the row: two bare loops in the same lock-step, whose ratio should
be 1.0 within the harness's own error.
"""

from __future__ import annotations

import argparse
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


class BareLoop:
    """A torchvision-references-style loop over its own model, data and sampler, one iteration per
    :meth:`step`."""

    def __init__(self, cfg) -> None:
        torch.manual_seed(cfg.seed)  # the trainer seeds the same way before building its model
        train_set, _ = build_datasets(cfg)
        self.model = build_model(cfg, num_classes=train_set.num_classes)
        self.optimizer = build_optimizer(cfg, self.model)
        self.scheduler = build_scheduler(cfg, self.optimizer)
        self.batches = iter(build_train_loader(cfg, train_set, 0, 0, 1))
        self.device, self.it = torch.device("cpu"), 0
        self.model.train()

    def step(self) -> float:
        """One iteration; its seconds."""
        start = time.perf_counter()
        images, targets = next(self.batches)
        images = [i.to(self.device) for i in images]
        targets = [{k: v.to(self.device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]
        loss_dict = self.model(images, targets)
        losses = sum(loss_dict.values())
        if not math.isfinite(losses.item()):
            raise FloatingPointError(f"loss is {losses.item()} at iteration {self.it}")
        self.optimizer.zero_grad()
        losses.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.it += 1
        return time.perf_counter() - start

    def close(self) -> None:
        del self.batches  # stops the loader's workers


class _TakingTurns:
    """The trainer's loader, running ``turn`` before each batch it hands out."""

    def __init__(self, loader, turn) -> None:
        self.loader, self.turn = loader, turn

    def __iter__(self):
        batches = iter(self.loader)
        while True:
            self.turn()
            yield next(batches)


def lockstep(cfg, out: Path) -> tuple[list[float], list[float]]:
    """(seconds of each trainer iteration, seconds of each bare iteration), run in turn."""
    bare = BareLoop(cfg)
    trainer_s, bare_s, checkpointers = [], [], []
    resumed = [None]  # when the trainer's clock restarted
    loader, checkpointer = trainer_module.build_train_loader, trainer_module.BackgroundCheckpointer

    def turn() -> None:
        for c in checkpointers:
            c.wait()
        if resumed[0] is not None:
            trainer_s.append(time.perf_counter() - resumed[0])
        bare_s.append(bare.step())
        resumed[0] = time.perf_counter()

    def turn_taking_loader(*args, **kwargs):
        return _TakingTurns(loader(*args, **kwargs), turn)

    def recorded_checkpointer(*args, **kwargs):
        checkpointers.append(checkpointer(*args, **kwargs))
        return checkpointers[-1]

    with (
        mock.patch.object(trainer_module, "build_train_loader", turn_taking_loader),
        mock.patch.object(trainer_module, "BackgroundCheckpointer", recorded_checkpointer),
    ):
        trainer_module.train(cfg, out)
    bare.close()
    return trainer_s, bare_s[: len(trainer_s)]


def bare_pair(cfg) -> tuple[list[float], list[float]]:
    """Two bare loops in lock-step, the A/A check of the harness: with nothing to tell them apart, their
    ratio shows what the turn-taking itself does to the arms."""
    first, second = BareLoop(cfg), BareLoop(cfg)
    times = [(first.step(), second.step()) for _ in range(int(cfg.solver.max_iter))]
    first.close()
    second.close()
    return [a for a, _ in times], [b for _, b in times]


def _row(label: str, a_s: list[float], b_s: list[float]) -> list:
    """[label, a's mean s/iter, b's, the ratio b/a of the means, the median of the per-iteration ratios]."""
    a_mean, b_mean = statistics.fmean(a_s), statistics.fmean(b_s)
    return [
        label,
        a_mean,
        b_mean,
        b_mean / a_mean,
        statistics.median(b / a for a, b in zip(a_s, b_s, strict=True)),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=repeats(3))
    p.add_argument("--iters", type=int, default=100, help="iterations per arm and round, warm-up included")
    p.add_argument("--warmup", type=int, default=10, help="first iterations left out")
    p.add_argument("--aa-rounds", type=int, default=1, help="rounds of the bare-vs-bare check")
    p.add_argument("overrides", nargs="*")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_loop_"))
    keys = synth_keys(work / "data", 64, 8)
    cfg = load_config(
        MINI,
        [*keys, "data.val_json=null", "data.val_images=null", "eval.period=0", f"solver.max_iter={a.iters}"]
        + a.overrides,
    )
    rows = []
    for r in range(a.rounds):
        rows.append(_row(f"round {r + 1}", *(s[a.warmup :] for s in lockstep(cfg, work / f"run{r}"))))
        log(
            f"round {r + 1}: trainer {rows[-1][1]:.4f} s/iter, bare {rows[-1][2]:.4f}, ratio {rows[-1][3]:.3f}"
        )
    ratios, pair_ratios = [r[3] for r in rows], [r[4] for r in rows]
    for name, pick in (("median", 0), ("min", 1), ("max", 2)):
        rows.append([f"ratio {name}", None, None, spread(ratios)[pick], spread(pair_ratios)[pick]])
    for r in range(a.aa_rounds):
        rows.append(_row(f"A/A check {r + 1}: bare vs bare", *(s[a.warmup :] for s in bare_pair(cfg))))
        log(f"A/A check {r + 1}: ratio {rows[-1][3]:.3f}")
    emit(
        "1. Training loop overhead: `scratchlab train` vs a bare loop",
        " ".join(
            [
                "python benchmarks/bench_loop.py",
                f"--rounds {a.rounds} --iters {a.iters} --warmup {a.warmup} --aa-rounds {a.aa_rounds}",
                *a.overrides,
            ]
        ),
        [
            "round",
            "train s/iter (A/A: first bare)",
            "bare s/iter",
            "ratio bare/train (goal >= 0.98)",
            "median of per-iteration ratios",
        ],
        rows,
        [
            f"configs/mini/mask_rcnn_gn_scratch.yaml on 64 generated images (its data.synth), batch "
            f"{cfg.solver.ims_per_batch}, data.num_workers={cfg.data.num_workers}, {threads_note()}; "
            f"iterations {a.warmup + 1}-{a.iters - 1} of each arm",
            "the arms run in lock-step, one iteration each in turn (so the machine's drift hits both alike); "
            "the trainer's iterations include its metric writes every log.period and its checkpoints every "
            "checkpoint.period (background writes waited for, counted to the trainer)",
            "A/A check: two bare loops in the same lock-step, nothing to tell them apart: how far from 1.0 the "
            "harness itself puts a ratio",
        ],
    )


if __name__ == "__main__":
    main()
