"""The training loop: iteration-based, explicit, in the manner of DETR's ``engine.py``.

Run-dir contract (``out_dir``): ``config.yaml`` (merged, data paths resolved), ``metrics.jsonl``,
TensorBoard events, ``log.txt``, ``checkpoints/last.pth`` (+ ``previous.pth``), ``model_final.pth``
(``{"model", "iteration", "config", "classes", "category_ids"}``: self-contained for ``predict``),
``final_metrics.json`` = ``{"iteration", "bbox": {AP, AP50, AP75, APs, APm, APl}, "segm": {...}, "cost"}``
(``"keypoints": {AP, AP50, AP75, APm, APl}`` instead of ``segm`` for a keypoint_rcnn config)
and ``plots/`` (loss, AP and LR curves drawn from metrics.jsonl).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from ..config import max_iter, to_yaml
from ..models import build_model
from ..vis.plots import plot_run
from .checkpoint import atomic_torch_save, capture_rng, load_latest, restore_rng, save_checkpoint
from .cost import Cost, cost_block, pretrain_cost
from .data import (
    build_datasets,
    build_train_loader,
    require_masks,
    resolve_data,
    validate_data,
    with_keypoint_count,
)
from .dist import all_gather_objects, init_distributed, is_main_process
from .inference import coco_evaluator, inference_on_dataset
from .schedule import build_optimizer, build_scheduler
from .writers import MetricWriters, flatten_metrics

__all__ = ["train", "NonFiniteLossError", "resolve_device", "setup_logging", "detections_file"]

log = logging.getLogger("scratchlab")


class NonFiniteLossError(FloatingPointError):
    """Training stopped on a NaN/inf loss; a checkpoint of the state before that step was saved."""


def setup_logging(out_dir: Path | None = None) -> None:
    """Console (and ``out_dir/log.txt``) logging for the main process; other ranks log warnings only."""
    log.setLevel(logging.INFO if is_main_process() else logging.WARNING)
    fmt = logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S")
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
               for h in log.handlers):
        h = logging.StreamHandler()
        h.setFormatter(fmt)
        log.addHandler(h)
    for h in [h for h in log.handlers if isinstance(h, logging.FileHandler)]:
        log.removeHandler(h)
        h.close()
    if out_dir is not None and is_main_process():
        fh = logging.FileHandler(Path(out_dir) / "log.txt")
        fh.setFormatter(fmt)
        log.addHandler(fh)


def resolve_device(cfg: DictConfig, local_rank: int = 0) -> torch.device:
    if cfg.device == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def _to_device(targets: list[dict], device: torch.device) -> list[dict]:
    return [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]


def _evaluate(model, val_set, cfg: DictConfig, device, output_file: Path | None = None) -> dict[str, Any]:
    return inference_on_dataset(model, val_set, coco_evaluator(cfg, val_set, output_file=output_file), device)


def run_meta(cfg: DictConfig, train_set) -> dict[str, Any]:
    """What ``model_final.pth`` carries besides weights so that prediction needs nothing else: the merged
    config (YAML text), the class names and the COCO category id of each label 1..K."""
    return {"config": to_yaml(cfg), "classes": [c.get("name", str(c["id"])) for c in train_set.categories],
            "category_ids": [int(c["id"]) for c in train_set.categories]}


def detections_file(out_dir: Path, iteration: int) -> Path:
    """Where a run keeps the val detections of its evaluation at ``iteration`` (for bootstraps later)."""
    return out_dir / "inference" / f"detections_{iteration:07d}.json"


def train(cfg: DictConfig, out_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train the detector ``cfg`` describes into ``out_dir`` (the run-dir contract above); return the
    final metrics. ``resume`` continues from ``out_dir/checkpoints/last.pth``.

    Example::

        cfg = load_config("configs/mini/mask_rcnn_gn_scratch.yaml", ["solver.schedule=0.5"])
        final = train(cfg, "runs/mini")  # {"iteration", "bbox": {"AP", ...}, "segm": {...}, "cost"}
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rank, world, local_rank = init_distributed()
    setup_logging(out)
    cfg = resolve_data(cfg, out)
    if cfg.data.check:
        validate_data(cfg)
    device = resolve_device(cfg, local_rank)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    train_set, val_set = build_datasets(cfg)
    require_masks(cfg, train_set, val_set)
    cfg = with_keypoint_count(cfg, train_set)
    core = model = build_model(cfg, num_classes=train_set.num_classes).to(device)
    if world > 1:
        torch.manual_seed(cfg.seed + rank)  # ranks sample RoIs differently (Detectron2 seeds seed + rank too)
        model = torch.nn.parallel.DistributedDataParallel(
            core, device_ids=[local_rank] if device.type == "cuda" else None)
    optimizer, total = build_optimizer(cfg, core), max_iter(cfg)
    scheduler = build_scheduler(cfg, optimizer)
    amp = bool(cfg.solver.amp) and device.type == "cuda"
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16}
    if str(cfg.solver.amp_dtype) not in dtypes:
        raise ValueError(f"solver.amp_dtype must be one of {sorted(dtypes)}, got {cfg.solver.amp_dtype!r}")
    amp_dtype = dtypes[str(cfg.solver.amp_dtype)]
    # bfloat16 has float32's range: no loss scaling needed.
    scaler = torch.amp.GradScaler(device.type, enabled=amp and amp_dtype == torch.float16)
    start, cost = 0, Cost()
    if resume and (found := load_latest(out / "checkpoints")) is not None:
        ckpt, path = found
        core.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        restore_rng(ckpt["rng"][min(rank, len(ckpt["rng"]) - 1)])
        start, cost = int(ckpt["iteration"]), Cost(**ckpt["cost"])
        log.info("resumed from %s at iteration %d", path, start)
    if is_main_process():
        (out / "config.yaml").write_text(to_yaml(cfg))

    def state(iteration: int, rng: list[dict[str, Any]]) -> dict[str, Any]:
        return {"model": core.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "iteration": iteration,
                "rng": rng, "cost": cost.as_dict(), "config": to_yaml(cfg)}

    def save(iteration: int) -> None:
        """Collective: every rank's RNG state goes into the checkpoint; the main process writes it."""
        rngs = all_gather_objects(capture_rng())
        if is_main_process():
            save_checkpoint(state(iteration, rngs), out / "checkpoints")

    writers = MetricWriters(out, total, start)
    loader = build_train_loader(cfg, train_set, start, rank, world)
    model.train()
    t_last = time.perf_counter()
    timing = {"time": 0.0, "data_time": 0.0, "n": 0}  # averaged over each log period
    for it, (images, targets) in zip(range(start, total), loader, strict=False):
        timing["data_time"] += time.perf_counter() - t_last
        images, targets = [i.to(device, non_blocking=True) for i in images], _to_device(targets, device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            loss_dict = model(images, targets)
        loss = sum(loss_dict.values())
        if not math.isfinite(loss.item()):
            # Not collective (the other ranks may not have seen a bad loss): this rank saves its own state
            # from before the step, enough to inspect the failure.
            ckpt_dir = out / "checkpoints" if rank == 0 else out / "checkpoints" / f"rank{rank}"
            save_checkpoint(state(it, [capture_rng()]), ckpt_dir)
            values = {k: round(v.item(), 4) for k, v in loss_dict.items()}
            raise NonFiniteLossError(f"non-finite loss at iteration {it + 1}: {values}; the state before this "
                                     f"step is saved in {ckpt_dir / 'last.pth'}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.solver.clip_grad_norm:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(core.parameters(), float(cfg.solver.clip_grad_norm))
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        # Cost of this step over all ranks (each rank sees its own share of the global batch).
        cost.images_seen += len(images) * world
        cost.instances_seen += sum(len(t["boxes"]) for t in targets) * world
        cost.pixels_seen += sum(int(i.shape[-1] * i.shape[-2]) for i in images) * world
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
            writers.write(done, {"loss": loss.item(), **{k: v.item() for k, v in loss_dict.items()},
                                 "lr": optimizer.param_groups[0]["lr"], **extra})
            timing = {"time": 0.0, "data_time": 0.0, "n": 0}
        if cfg.eval.period and done % cfg.eval.period == 0 and done != total and val_set is not None:
            writers.write(done, flatten_metrics(_evaluate(core, val_set, cfg, device, detections_file(out, done))))
            t_last = time.perf_counter()  # evaluation is not training cost
        if done % cfg.checkpoint.period == 0:
            save(done)
    results = _evaluate(core, val_set, cfg, device, detections_file(out, total)) if val_set is not None else {}
    final = {"iteration": total, **results,
             "cost": cost_block(cost, pretrain_cost(cfg.model.init))}
    save(total)
    if is_main_process():
        writers.write(total, flatten_metrics(results))
        atomic_torch_save({"model": core.state_dict(), "iteration": total, **run_meta(cfg, train_set)},
                          out / "model_final.pth")
        (out / "final_metrics.json").write_text(json.dumps(final, indent=2, allow_nan=False))
    writers.close()
    if is_main_process():
        plot_run(out / "metrics.jsonl", out / "plots")
    return final

