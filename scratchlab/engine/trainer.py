"""The training loop: iteration-based, explicit, in the manner of DETR's ``engine.py``.

It writes the run directory :mod:`scratchlab.run_dir` describes: ``final_metrics.json`` =
``{"iteration", "bbox": {AP, AP50, AP75, APs, APm, APl}, "segm": {...}, "train_images", "cost",
"provenance"}`` (``train_images``: the images it trained on, its data regime with images without
instances left out; provenance: where the initial weights came from, engine.cost.run_provenance;
``"keypoints": {AP, AP50, AP75, APm, APl}`` instead of ``segm`` for a keypoint_rcnn config).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from .. import run_dir
from ..config import evaluates_at, max_iter, to_yaml
from ..data.coco import CocoDetection
from ..models import build_model, switch_cascade
from ..utils.dist import all_gather_objects, init_distributed, is_main_process
from ..utils.io import write_json
from ..utils.lock import exclusive_directory
from ..utils.runtime import amp_setup, resolve_device, setup_logging
from ..vis.plots import plot_run
from .categories import category_ids
from .checkpoint import (
    BackgroundCheckpointer,
    atomic_torch_save,
    capture_rng,
    discard_checkpoints,
    load_latest,
    restore_rng,
)
from .cost import Cost, cost_block, pretrain_cost, run_provenance
from .data import build_train_loader, resolve_data
from .divergence import NonFiniteLossError, non_finite_ranks
from .inference import coco_evaluator, inference_on_dataset
from .preflight import check_resume, preflight
from .schedule import build_optimizer, build_scheduler, follow_schedule, scale_to_world
from .writers import MetricWriters, flatten_metrics

__all__ = ["train"]

log = logging.getLogger("scratchlab")


def _to_device(targets: list[dict], device: torch.device) -> list[dict]:
    """Targets on ``device``; asynchronous copies when the loader pinned them (training on CUDA)."""
    return [
        {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in t.items()}
        for t in targets
    ]


def run_meta(cfg: DictConfig, train_set) -> dict[str, Any]:
    """What ``model_final.pth`` and ``checkpoints/last.pth`` carry besides weights so that prediction and
    evaluation need nothing else: the merged config (YAML text), the class names and the COCO category id
    of each label 1..K."""
    return {
        "config": to_yaml(cfg),
        "classes": [c.get("name", str(c["id"])) for c in train_set.categories],
        "category_ids": category_ids(train_set.categories),
    }


def _segment_end(stop_at: int | None, total: int) -> int:
    if stop_at is None:
        return total
    if not 0 < stop_at <= total:
        raise ValueError(f"stop_at={stop_at} is outside this run's iterations 1..{total}")
    return stop_at


def train(
    cfg: DictConfig,
    out_dir: str | Path,
    resume: bool = False,
    stop_at: int | None = None,
    keep: tuple[int, ...] | list[int] = (),
) -> dict[str, Any]:
    """Train the detector ``cfg`` describes into ``out_dir`` (the run-dir contract above); return the
    final metrics. ``resume`` continues from ``out_dir/checkpoints/last.pth``.

    ``stop_at``: end once iteration ``stop_at`` is checkpointed, before the schedule's end (a segment of
    the run; a later ``resume`` goes on bit-exactly); returns ``{"iteration", "stopped": True}``. ``keep``:
    iterations whose checkpoint is also kept as ``run_dir.branch_checkpoint`` (where other arms fork).
    Neither changes what the run computes: a checkpoint only reads the state.

    Example::

        cfg = load_config("configs/mini/mask_rcnn_gn_scratch.yaml", ["solver.schedule=0.5"])
        final = train(cfg, "runs/mini")  # {"iteration", "bbox": {"AP", ...}, "segm": {...}, "cost"}
    """
    init_distributed()  # taking the directory's lock is a collective
    with exclusive_directory(out_dir):  # a second run there would interleave its files with this one's
        return _train(cfg, Path(out_dir), resume, stop_at, frozenset(keep))


@dataclass
class _Run:
    """What the loop works on: built once by :func:`_setup`, advanced by every iteration."""

    cfg: DictConfig
    out: Path
    rank: int
    world: int
    device: torch.device
    train_set: CocoDetection
    val_set: CocoDetection | None
    core: torch.nn.Module  # the detector: what is saved, evaluated and clipped
    model: torch.nn.Module  # what a step calls: ``core``, or its DDP wrapper
    labels: list[int]  # what the model's labels mean, for every evaluation
    provenance: dict[str, Any]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    amp: bool
    amp_dtype: torch.dtype
    scaler: torch.amp.GradScaler
    total: int  # the schedule's last iteration
    end: int  # this segment's last iteration (``stop_at``, else ``total``)
    keep: frozenset[int]
    # Made with the run, once the model is on its device: making a Cost resets the CUDA peak.
    cost: Cost = field(default_factory=Cost)
    start: int = 0
    checkpointer: BackgroundCheckpointer | None = None  # the main process's; opened once ``start`` is known
    writers: MetricWriters | None = None


@dataclass
class _Clock:
    """Wall time of the training steps, for the run's cost and the averages of each log period; the time
    an evaluation takes is left out (:meth:`skip`)."""

    last: float = field(default_factory=time.perf_counter)
    time: float = 0.0
    data_time: float = 0.0
    steps: int = 0

    def tick(self) -> float:
        """A step ended: the wall time since the previous one."""
        now = time.perf_counter()
        elapsed, self.last = now - self.last, now
        self.time += elapsed
        self.steps += 1
        return elapsed

    def skip(self) -> None:
        """Leave the time since the last step (an evaluation's) out of the next one."""
        self.last = time.perf_counter()

    def period(self) -> dict[str, float]:
        """The log period's mean step and data-loading time; the next period starts from zero."""
        means = {"time": self.time / self.steps, "data_time": self.data_time / self.steps}
        self.time, self.data_time, self.steps = 0.0, 0.0, 0
        return means


def _train(
    cfg: DictConfig, out: Path, resume: bool, stop_at: int | None, keep: frozenset[int]
) -> dict[str, Any]:
    """Setup, resume (or start over), the loop, then the finish: a whole run, or a segment's stop."""
    run = _setup(cfg, out, stop_at, keep)
    _resume_or_start_over(run, resume)
    if run.start >= run.end < run.total:  # this segment was done by an earlier run of it (a requeued job)
        log.info("%s is at iteration %d: segment to %d already done", out, run.start, run.end)
        return {"iteration": run.start, "stopped": True}
    if is_main_process():
        (out / run_dir.CONFIG).write_text(to_yaml(run.cfg))
    run.checkpointer = BackgroundCheckpointer(out / run_dir.CHECKPOINTS) if is_main_process() else None
    run.writers = MetricWriters(out, run.total, run.start)
    _loop(run)
    if run.end < run.total:
        return _stopped(run)
    return _finish(run)


def _setup(cfg: DictConfig, out: Path, stop_at: int | None, keep: frozenset[int]) -> _Run:
    """The config as this run trains it, its data checked, datasets, model, optimizer, scheduler, AMP."""
    out.mkdir(parents=True, exist_ok=True)
    rank, world, local_rank = init_distributed()
    setup_logging(out / run_dir.LOG)
    cfg = resolve_data(cfg, out)
    cfg, batch_line = scale_to_world(cfg, world)
    log.info(batch_line)
    cfg, train_set, val_set = preflight(cfg)
    device = resolve_device(cfg, local_rank)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    core = build_model(cfg, num_classes=train_set.num_classes).to(device)
    provenance = run_provenance(cfg, core)
    model = _distributed(cfg, core, device, rank, world, local_rank)
    optimizer, total = build_optimizer(cfg, core), max_iter(cfg)
    end = _segment_end(stop_at, total)
    scheduler = build_scheduler(cfg, optimizer)
    amp, amp_dtype, scaler = amp_setup(cfg, device)
    return _Run(
        cfg=cfg,
        out=out,
        rank=rank,
        world=world,
        device=device,
        train_set=train_set,
        val_set=val_set,
        core=core,
        model=model,
        labels=category_ids(train_set.categories),
        provenance=provenance,
        optimizer=optimizer,
        scheduler=scheduler,
        amp=amp,
        amp_dtype=amp_dtype,
        scaler=scaler,
        total=total,
        end=end,
        keep=keep,
    )


def _distributed(cfg: DictConfig, core, device: torch.device, rank: int, world: int, local_rank: int):
    """``core`` itself on one process; with several, its DDP wrapper, each rank seeded on its own from here
    (ranks sample RoIs differently; Detectron2 seeds seed + rank too)."""
    if world == 1:
        return core
    torch.manual_seed(cfg.seed + rank)
    return torch.nn.parallel.DistributedDataParallel(
        core,
        device_ids=[local_rank] if device.type == "cuda" else None,
        # the later cascade stages have no gradient before model.cascade.start_iter
        find_unused_parameters=int(cfg.model.cascade.start_iter) > 0,
    )


def _resume_or_start_over(run: _Run, resume: bool) -> None:
    """``resume``: the state of ``checkpoints/last.pth`` (or the newest readable one). Otherwise an earlier
    run's checkpoints in the folder are discarded, so that a later ``--resume`` cannot continue that run."""
    out = run.out
    if resume and (found := load_latest(out / run_dir.CHECKPOINTS)) is not None:
        ckpt, path = found
        check_resume(ckpt, path, run.labels, run.total, str(run.cfg.data.train_json))
        run.core.load_state_dict(ckpt["model"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        run.scheduler.load_state_dict(ckpt["scheduler"])
        follow_schedule(run.cfg, run.optimizer, run.scheduler)
        run.scaler.load_state_dict(ckpt["scaler"])
        restore_rng(ckpt["rng"][min(run.rank, len(ckpt["rng"]) - 1)])
        run.start, run.cost = int(ckpt["iteration"]), Cost(**ckpt["cost"])
        log.info("resumed from %s at iteration %d", path, run.start)
    elif (out / run_dir.CHECKPOINTS / run_dir.LAST).is_file() or (out / run_dir.MODEL_FINAL).is_file():
        log.warning("%s holds an earlier run: starting it over from iteration 0 (--resume continues it)", out)
        if is_main_process():  # a --resume before this run's first save took them
            discard_checkpoints(out / run_dir.CHECKPOINTS)
    elif resume:  # say so: a mistyped --out would otherwise start a new run without a word
        log.info("--resume: no checkpoint in %s; starting at iteration 0", out / run_dir.CHECKPOINTS)


def _loop(run: _Run) -> None:
    """Iterations ``start+1 .. end``: a step, then what is due after it (log, evaluation, checkpoint)."""
    cfg = run.cfg
    loader = build_train_loader(
        cfg, run.train_set, run.start, run.rank, run.world, pin_memory=run.device.type == "cuda"
    )
    run.model.train()
    clock = _Clock()
    batches = iter(loader)
    for it in range(run.start, run.end):
        switch_cascade(run.core, it, int(cfg.model.cascade.start_iter), run.total)
        micro_losses = _step(run, batches, it, clock)
        run.cost.wall_s += clock.tick()
        done = it + 1
        if done % cfg.log.period == 0 or done == run.total:
            _log_losses(run, done, micro_losses, clock)
        if evaluates_at(cfg, done) and run.val_set is not None:
            run.writers.write(done, flatten_metrics(_evaluate_at(run, done)))
            clock.skip()  # evaluation is not training cost
        if done % cfg.checkpoint.period == 0 or done in (run.total, run.end) or done in run.keep:
            _save(run, done)  # at the end: the last before the final evaluation
    # Stop the loader's workers now (their prefetched batches are not needed), before the final evaluation
    # and whatever follows: a reference cycle elsewhere (matplotlib keeps tracebacks) could otherwise keep
    # this frame, and with it the workers, alive until the garbage collector runs.
    del batches


def _step(run: _Run, batches, it: int, clock: _Clock) -> list[dict[str, float]]:
    """One optimizer step over ``solver.accumulate`` micro-batches; each micro-batch's loss values."""
    run.optimizer.zero_grad(set_to_none=True)
    accumulate = int(run.cfg.solver.accumulate)
    micro_losses = [_micro_step(run, batches, it, micro, accumulate, clock) for micro in range(accumulate)]
    if run.cfg.solver.clip_grad_norm:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.core.parameters(), float(run.cfg.solver.clip_grad_norm))
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    return micro_losses


def _micro_step(run: _Run, batches, it: int, micro: int, accumulate: int, clock: _Clock) -> dict[str, float]:
    """Forward and backward of one micro-batch (its gradient added to the step's); its loss values."""
    t_data = time.perf_counter()
    images, targets = next(batches)
    clock.data_time += time.perf_counter() - t_data
    images, targets = [i.to(run.device, non_blocking=True) for i in images], _to_device(targets, run.device)
    # DDP all-reduces gradients at the last micro-step only.
    sync = micro == accumulate - 1 or run.world == 1
    with contextlib.nullcontext() if sync else run.model.no_sync():
        with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.amp):
            loss_dict = run.model(images, targets)
        # The mean over micro-steps: the gradient of the whole batch's (per-image mean) loss.
        run.scaler.scale(sum(loss_dict.values()) / accumulate).backward()
    # One host sync per micro-step, after the backward is queued (on a GPU, checking before it would leave
    # the device idle while the backward is launched): every loss value at once, for the finiteness check
    # and the log.
    stacked = torch.stack([v.detach().float() for v in loss_dict.values()])
    values = dict(zip(loss_dict, stacked.tolist(), strict=True))
    _stop_if_not_finite(run, it, values)
    _count(run.cost, images, targets, run.world)
    return values


def _stop_if_not_finite(run: _Run, it: int, values: dict[str, float]) -> None:
    """A non-finite loss on any rank stops every rank before the optimizer step, so the saved state is the
    one before this step."""
    if (found := non_finite_ranks(values, run.device)) is None:
        return
    bad, gathered = found
    _save(run, it)  # the state before this step, enough to inspect the failure
    if run.checkpointer is not None:
        run.checkpointer.close()  # on disk before the error says so
    raise NonFiniteLossError(
        f"non-finite loss at iteration {it + 1} on rank(s) {bad}: {gathered[bad[0]]}; the state "
        f"before this step is saved in {run.out / run_dir.CHECKPOINTS / run_dir.LAST}"
    )


def _count(cost: Cost, images: list[torch.Tensor], targets: list[dict], world: int) -> None:
    """Cost of one micro-step over all ranks (each rank sees its own share of the global batch)."""
    cost.images_seen += len(images) * world
    cost.instances_seen += sum(len(t["boxes"]) for t in targets) * world
    cost.pixels_seen += sum(int(i.shape[-1] * i.shape[-2]) for i in images) * world


def _log_losses(run: _Run, done: int, micro_losses: list[dict[str, float]], clock: _Clock) -> None:
    """The step's losses (the mean over its micro-steps), the learning rate and the period's timing."""
    extra = clock.period()
    if run.device.type == "cuda":
        extra["max_mem_mb"] = torch.cuda.max_memory_allocated(run.device) / 2**20
    accumulate = len(micro_losses)
    losses = {k: sum(m[k] for m in micro_losses) / accumulate for k in micro_losses[0]}
    run.writers.write(
        done, {"loss": sum(losses.values()), **losses, "lr": run.optimizer.param_groups[0]["lr"], **extra}
    )


def _evaluate_at(run: _Run, iteration: int) -> dict[str, Any]:
    """AP on the validation set of the model as it is at ``iteration``, its label k read as category
    ``labels[k-1]`` (the training set's); its detections kept under ``inference/``."""
    detections = run_dir.detections_file(run.out, iteration)
    evaluator = coco_evaluator(run.cfg, run.val_set, run.labels, output_file=detections)
    return inference_on_dataset(run.core, run.val_set, evaluator, run.device)


def _state(run: _Run, iteration: int, rng: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": run.core.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "iteration": iteration,
        "rng": rng,
        "cost": run.cost.as_dict(),
        **run_meta(run.cfg, run.train_set),  # config and categories: `scratchlab eval` reads them
    }


def _save(run: _Run, iteration: int) -> None:
    """Collective: every rank's RNG state goes into the checkpoint; the main process writes it (on its
    checkpoint thread, from a copy taken now)."""
    rngs = all_gather_objects(capture_rng())
    if run.checkpointer is not None:
        kept = run_dir.branch_checkpoint(run.out, iteration) if iteration in run.keep else None
        run.checkpointer.save(_state(run, iteration, rngs), keep_as=kept)


def _stopped(run: _Run) -> dict[str, Any]:
    """A segment ends at ``run.end``: its checkpoint on disk, its writers closed."""
    if run.checkpointer is not None:
        run.checkpointer.close()
    run.writers.close()
    log.info("stopped at iteration %d (a segment): --resume goes on from its checkpoint", run.end)
    return {"iteration": run.end, "stopped": True}


def _finish(run: _Run) -> dict[str, Any]:
    """The final evaluation, ``model_final.pth``, ``final_metrics.json`` and the plots; the final metrics."""
    cfg, out, total = run.cfg, run.out, run.total
    results = _evaluate_at(run, total) if run.val_set is not None else {}
    final = {
        "iteration": total,
        **results,
        "train_images": len(run.train_set),
        "cost": cost_block(run.cost, pretrain_cost(cfg.model.init)),
        "provenance": run.provenance,
    }
    if run.checkpointer is not None:
        run.checkpointer.close()
    if is_main_process():
        run.writers.write(total, flatten_metrics(results))
        atomic_torch_save(
            {"model": run.core.state_dict(), "iteration": total, **run_meta(cfg, run.train_set)},
            out / run_dir.MODEL_FINAL,
        )
        write_json(out / run_dir.FINAL_METRICS, final, indent=2)
    run.writers.close()
    if is_main_process():
        plot_run(out / run_dir.METRICS, out / run_dir.PLOTS)
    return final
