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
import math
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from .. import run_dir
from ..config import max_iter, to_yaml
from ..models import build_model, switch_cascade
from ..utils.dist import all_gather_objects, all_ranks_agree, init_distributed, is_main_process
from ..utils.io import write_json
from ..utils.lock import exclusive_directory
from ..utils.runtime import amp_setup, resolve_device, setup_logging
from ..vis.plots import plot_run
from .categories import category_ids, check_annotation_files, refuse_changed_categories
from .checkpoint import (
    BackgroundCheckpointer,
    atomic_torch_save,
    capture_rng,
    discard_checkpoints,
    load_latest,
    restore_rng,
)
from .cost import Cost, cost_block, pretrain_cost, run_provenance
from .data import (
    build_datasets,
    build_train_loader,
    require_class_count,
    require_masks,
    resolve_data,
    validate_data,
    with_keypoint_count,
)
from .inference import coco_evaluator, inference_on_dataset
from .schedule import build_optimizer, build_scheduler, follow_schedule, scale_to_world
from .writers import MetricWriters, flatten_metrics

__all__ = ["train", "NonFiniteLossError"]

log = logging.getLogger("scratchlab")


class NonFiniteLossError(FloatingPointError):
    """Training stopped on a NaN/inf loss; a checkpoint of the state before that step was saved."""


def _to_device(targets: list[dict], device: torch.device) -> list[dict]:
    """Targets on ``device``; asynchronous copies when the loader pinned them (training on CUDA)."""
    return [
        {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in t.items()}
        for t in targets
    ]


def _evaluate(
    model, val_set, cfg: DictConfig, device, labels: list[int], output_file: Path | None = None
) -> dict[str, Any]:
    """AP on ``val_set``, the model's label k read as category ``labels[k-1]`` (the training set's)."""
    evaluator = coco_evaluator(cfg, val_set, labels, output_file=output_file)
    return inference_on_dataset(model, val_set, evaluator, device)


def run_meta(cfg: DictConfig, train_set) -> dict[str, Any]:
    """What ``model_final.pth`` and ``checkpoints/last.pth`` carry besides weights so that prediction and
    evaluation need nothing else: the merged config (YAML text), the class names and the COCO category id
    of each label 1..K."""
    return {
        "config": to_yaml(cfg),
        "classes": [c.get("name", str(c["id"])) for c in train_set.categories],
        "category_ids": category_ids(train_set.categories),
    }


def refuse_past_the_end(iteration: int, total: int, checkpoint: Path) -> None:
    """``--resume`` with a schedule shorter than the checkpoint's iteration (other overrides than the run's):
    going on would stamp the run's weights, config.yaml and final metrics with the shorter length."""
    if iteration > total:
        raise ValueError(
            f"{checkpoint} is at iteration {iteration}, past the end of this config's {total} iterations; "
            "resume with the overrides the run started with (its config.yaml), or a longer schedule"
        )


def _segment_end(stop_at: int | None, total: int) -> int:
    if stop_at is None:
        return total
    if not 0 < stop_at <= total:
        raise ValueError(f"stop_at={stop_at} is outside this run's iterations 1..{total}")
    return stop_at


def _stopped(end: int, checkpointer, writers) -> dict[str, Any]:
    """A segment ends at ``end``: its checkpoint on disk, its writers closed."""
    if checkpointer is not None:
        checkpointer.close()
    writers.close()
    log.info("stopped at iteration %d (a segment): --resume goes on from its checkpoint", end)
    return {"iteration": end, "stopped": True}


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


def _train(
    cfg: DictConfig, out: Path, resume: bool, stop_at: int | None, keep: frozenset[int]
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    rank, world, local_rank = init_distributed()
    setup_logging(out / run_dir.LOG)
    cfg = resolve_data(cfg, out)
    cfg, batch_line = scale_to_world(cfg, world)
    log.info(batch_line)
    check_annotation_files(cfg)  # JSON reads: before the data check's image decode, which can take minutes
    if cfg.data.check:
        validate_data(cfg)
    device = resolve_device(cfg, local_rank)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    train_set, val_set = build_datasets(cfg)
    require_masks(cfg, train_set, val_set)
    require_class_count(cfg, train_set)
    cfg = with_keypoint_count(cfg, train_set)
    core = model = build_model(cfg, num_classes=train_set.num_classes).to(device)
    labels = category_ids(train_set.categories)  # what the model's labels mean, for every evaluation
    provenance = run_provenance(cfg, core)
    if world > 1:
        torch.manual_seed(cfg.seed + rank)  # ranks sample RoIs differently (Detectron2 seeds seed + rank too)
        model = torch.nn.parallel.DistributedDataParallel(
            core,
            device_ids=[local_rank] if device.type == "cuda" else None,
            # the later cascade stages have no gradient before model.cascade.start_iter
            find_unused_parameters=int(cfg.model.cascade.start_iter) > 0,
        )
    optimizer, total = build_optimizer(cfg, core), max_iter(cfg)
    end = _segment_end(stop_at, total)
    scheduler = build_scheduler(cfg, optimizer)
    amp, amp_dtype, scaler = amp_setup(cfg, device)
    start, cost = 0, Cost()
    if resume and (found := load_latest(out / run_dir.CHECKPOINTS)) is not None:
        ckpt, path = found
        refuse_changed_categories(ckpt.get("category_ids"), labels, path, str(cfg.data.train_json))
        refuse_past_the_end(int(ckpt["iteration"]), total, path)
        core.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        follow_schedule(cfg, optimizer, scheduler)
        scaler.load_state_dict(ckpt["scaler"])
        restore_rng(ckpt["rng"][min(rank, len(ckpt["rng"]) - 1)])
        start, cost = int(ckpt["iteration"]), Cost(**ckpt["cost"])
        log.info("resumed from %s at iteration %d", path, start)
    elif (out / run_dir.CHECKPOINTS / run_dir.LAST).is_file() or (out / run_dir.MODEL_FINAL).is_file():
        log.warning("%s holds an earlier run: starting it over from iteration 0 (--resume continues it)", out)
        if is_main_process():
            discard_checkpoints(
                out / run_dir.CHECKPOINTS
            )  # a --resume before this run's first save took them
    elif resume:  # say so: a mistyped --out would otherwise start a new run without a word
        log.info("--resume: no checkpoint in %s; starting at iteration 0", out / run_dir.CHECKPOINTS)
    if start >= end < total:  # this segment was done by an earlier run of it (a requeued job)
        log.info("%s is at iteration %d: segment to %d already done", out, start, end)
        return {"iteration": start, "stopped": True}
    if is_main_process():
        (out / run_dir.CONFIG).write_text(to_yaml(cfg))

    def state(iteration: int, rng: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "model": core.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "iteration": iteration,
            "rng": rng,
            "cost": cost.as_dict(),
            **run_meta(cfg, train_set),  # config and categories: `scratchlab eval` reads them
        }

    checkpointer = BackgroundCheckpointer(out / run_dir.CHECKPOINTS) if is_main_process() else None

    def save(iteration: int) -> None:
        """Collective: every rank's RNG state goes into the checkpoint; the main process writes it (on
        its checkpoint thread, from a copy taken now)."""
        rngs = all_gather_objects(capture_rng())
        if checkpointer is not None:
            kept = run_dir.branch_checkpoint(out, iteration) if iteration in keep else None
            checkpointer.save(state(iteration, rngs), keep_as=kept)

    writers = MetricWriters(out, total, start)
    loader = build_train_loader(cfg, train_set, start, rank, world, pin_memory=device.type == "cuda")
    model.train()
    t_last = time.perf_counter()
    timing = {"time": 0.0, "data_time": 0.0, "n": 0}  # averaged over each log period
    batches, accumulate = iter(loader), int(cfg.solver.accumulate)
    for it in range(start, end):
        switch_cascade(core, it, int(cfg.model.cascade.start_iter), total)
        optimizer.zero_grad(set_to_none=True)
        micro_losses = []
        for micro in range(accumulate):
            t_data = time.perf_counter()
            images, targets = next(batches)
            timing["data_time"] += time.perf_counter() - t_data
            images, targets = [i.to(device, non_blocking=True) for i in images], _to_device(targets, device)
            # DDP all-reduces gradients at the last micro-step only.
            sync = micro == accumulate - 1 or world == 1
            with contextlib.nullcontext() if sync else model.no_sync():
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                    loss_dict = model(images, targets)
                # The mean over micro-steps: the gradient of the whole batch's (per-image mean) loss.
                scaler.scale(sum(loss_dict.values()) / accumulate).backward()
            # One host sync per micro-step, after the backward is queued (on a GPU, checking before it would
            # leave the device idle while the backward is launched): every loss value at once, for the
            # finiteness check and the log. A non-finite loss stops every rank before the optimizer step,
            # so the saved state is the one before this step.
            stacked = torch.stack([v.detach().float() for v in loss_dict.values()])
            values = dict(zip(loss_dict, stacked.tolist(), strict=True))
            if not all_ranks_agree(all(map(math.isfinite, values.values())), device):
                gathered = all_gather_objects({k: round(v, 4) for k, v in values.items()})
                bad = [r for r, v in enumerate(gathered) if not all(map(math.isfinite, v.values()))]
                save(it)  # the state before this step, enough to inspect the failure
                if checkpointer is not None:
                    checkpointer.close()  # on disk before the error says so
                raise NonFiniteLossError(
                    f"non-finite loss at iteration {it + 1} on rank(s) {bad}: {gathered[bad[0]]}; the state "
                    f"before this step is saved in {out / run_dir.CHECKPOINTS / run_dir.LAST}"
                )
            micro_losses.append(values)
            # Cost of this micro-step over all ranks (each rank sees its own share of the global batch).
            cost.images_seen += len(images) * world
            cost.instances_seen += sum(len(t["boxes"]) for t in targets) * world
            cost.pixels_seen += sum(int(i.shape[-1] * i.shape[-2]) for i in images) * world
        if cfg.solver.clip_grad_norm:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(core.parameters(), float(cfg.solver.clip_grad_norm))
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        now = time.perf_counter()
        cost.wall_s += now - t_last
        timing["time"] += now - t_last
        timing["n"] += 1
        t_last = now
        done = it + 1
        if done % cfg.log.period == 0 or done == total:
            extra = {k: timing[k] / timing["n"] for k in ("time", "data_time")}
            if device.type == "cuda":
                extra["max_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
            losses = {k: sum(m[k] for m in micro_losses) / accumulate for k in micro_losses[0]}
            writers.write(
                done, {"loss": sum(losses.values()), **losses, "lr": optimizer.param_groups[0]["lr"], **extra}
            )
            timing = {"time": 0.0, "data_time": 0.0, "n": 0}
        if cfg.eval.period and done % cfg.eval.period == 0 and done != total and val_set is not None:
            writers.write(
                done,
                flatten_metrics(
                    _evaluate(core, val_set, cfg, device, labels, run_dir.detections_file(out, done))
                ),
            )
            t_last = time.perf_counter()  # evaluation is not training cost
        if done % cfg.checkpoint.period == 0 or done in (total, end) or done in keep:
            save(done)  # at the end: the last before the final evaluation
    # Stop the loader's workers now (their prefetched batches are not needed), before the final evaluation
    # and whatever follows: a reference cycle elsewhere (matplotlib keeps tracebacks) could otherwise keep
    # this frame, and with it the workers, alive until the garbage collector runs.
    del batches
    if end < total:
        return _stopped(end, checkpointer, writers)
    results = (
        _evaluate(core, val_set, cfg, device, labels, run_dir.detections_file(out, total))
        if val_set is not None
        else {}
    )
    final = {
        "iteration": total,
        **results,
        "train_images": len(train_set),
        "cost": cost_block(cost, pretrain_cost(cfg.model.init)),
        "provenance": provenance,
    }
    if checkpointer is not None:
        checkpointer.close()
    if is_main_process():
        writers.write(total, flatten_metrics(results))
        atomic_torch_save(
            {"model": core.state_dict(), "iteration": total, **run_meta(cfg, train_set)},
            out / run_dir.MODEL_FINAL,
        )
        write_json(out / run_dir.FINAL_METRICS, final, indent=2)
    writers.close()
    if is_main_process():
        plot_run(out / run_dir.METRICS, out / run_dir.PLOTS)
    return final
