"""ImageNet-style classification pre-training of the detector's own backbone.

A user without ImageNet weights (as on these machines) makes them: the same ResNet body the detector
uses (same depth, width and normalisation), a global-pool + linear classifier, SGD with a step or
cosine schedule, top-1 and top-5 on the val folder. Under ``torchrun`` each rank trains on its shard
(DDP; SyncBN where ``model.norm=SyncBN``; AMP with ``solver.amp``), with an atomic checkpoint after every
epoch and ``--resume``. Writes ``backbone.pth`` (keys exactly as ``detector.backbone.body`` expects) and
``pretrain_meta.json`` (what it cost, and how long the ranks waited for data: ``data_wait_s``), and the
detector's loop pieces where they fit: its :class:`~scratchlab.engine.cost.Cost` record, its background
checkpointer, ``metrics.jsonl`` (a row per epoch, at the step it ends on) and its non-finite loss stop.

    scratchlab pretrain classify configs/mini/classify_gn.yaml --out runs/mini_cls
    scratchlab pretrain classify configs/imagenet/classify_R50_gn.yaml --out pretrained/R50_gn \
        data.root=/datasets/imagenet
    torchrun --nproc_per_node 8 -m scratchlab pretrain classify CONFIG --out DIR [--resume] data.num_workers=8
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from .. import run_dir
from ..config import to_yaml
from ..data.image_io import load_image
from ..data.lighting import PCALighting
from ..data.synth_classify import make_synth_classify
from ..engine.checkpoint import (
    BackgroundCheckpointer,
    atomic_torch_save,
    capture_rng,
    load_latest,
    restore_rng,
)
from ..engine.cost import Cost, peak_memory_mb
from ..engine.divergence import NonFiniteLossError, non_finite_ranks
from ..engine.schedule import param_groups
from ..engine.writers import MetricWriters
from ..models import build_backbone_body
from ..utils.dist import (
    all_gather_objects,
    get_rank,
    get_world_size,
    init_distributed,
    is_main_process,
)
from ..utils.io import write_json
from ..utils.runtime import amp_setup, loader_workers, resolve_device, setup_logging

__all__ = ["pretrain_classify", "BackboneClassifier"]

log = logging.getLogger("scratchlab")


class BackboneClassifier(nn.Module):
    """The detector's ResNet body, global average pooling and a linear classifier."""

    def __init__(self, body: nn.Module, channels: int, num_classes: int) -> None:
        super().__init__()
        self.body = body
        self.fc = nn.Linear(channels, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.body(x)
        last = list(feats.values())[-1] if isinstance(feats, dict) else feats
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(last, 1), 1))


def _transforms(cfg: DictConfig, train: bool) -> v2.Compose:
    size, c = int(cfg.classify.image_size), cfg.classify
    to_float = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    normalise = v2.Normalize(list(cfg.input.pixel_mean), list(cfg.input.pixel_std))
    if not train:
        return v2.Compose([v2.Resize(int(round(size / 0.875))), v2.CenterCrop(size), *to_float, normalise])
    # fb.resnet.torch's augmentation: colour jitter then lighting on [0, 1] RGB before normalising (it
    # flips last; a flip commutes with both).
    jitter = float(c.color_jitter)
    colour = [v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter)] if jitter else []
    lighting = [PCALighting(float(c.pca_lighting))] if c.pca_lighting else []
    crop = v2.RandomResizedCrop(size, scale=(float(c.min_crop_scale), 1.0))
    return v2.Compose([crop, v2.RandomHorizontalFlip(), *to_float, *colour, *lighting, normalise])


def _lr_factor(cfg: DictConfig, epoch_float: float) -> float:
    c = cfg.classify
    if c.warmup_epochs and epoch_float < c.warmup_epochs:
        return max(epoch_float / c.warmup_epochs, 1e-3)
    if c.lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch_float / c.epochs))
    if c.lr_schedule == "step":
        return 0.1 ** sum(epoch_float >= s for s in c.lr_steps)
    raise ValueError(f"classify.lr_schedule must be 'step' or 'cosine', got {c.lr_schedule!r}")


@torch.no_grad()
def _accuracy(model: nn.Module, val_set: ImageFolder, batch: int, workers: int, device: torch.device) -> dict:
    """Top-1 and top-5 (%) on ``val_set``, each rank a strided share, the counts summed over ranks."""
    model.eval()
    share = Subset(val_set, range(get_rank(), len(val_set), get_world_size()))
    k = min(5, len(val_set.classes))
    counts = torch.zeros(3, dtype=torch.float64, device=device)  # top-1 hits, top-k hits, images
    for images, labels in DataLoader(share, batch_size=batch, num_workers=workers):
        top = model(images.to(device)).topk(k, dim=1).indices
        hits = top == labels.to(device)[:, None]
        counts += torch.tensor(
            [hits[:, 0].sum().item(), hits.any(1).sum().item(), len(labels)],
            dtype=torch.float64,
            device=device,
        )
    if get_world_size() > 1:
        dist.all_reduce(counts)
    model.train()
    total = max(counts[2].item(), 1.0)
    return {"top1": 100.0 * counts[0].item() / total, "top5": 100.0 * counts[1].item() / total}


def _resolve_root(cfg: DictConfig, out: Path) -> Path:
    if cfg.data.root:
        return Path(cfg.data.root)
    root, s = out / "data", cfg.classify.synth
    if not (root / "val").is_dir():
        log.info("no data.root given: generating a classification set under %s", root)
        make_synth_classify(root, s.classes, s.per_class, s.image_size, s.seed, class_colours=s.class_colours)
    return root


def _train_loader(train_set: ImageFolder, cfg: DictConfig, epoch: int, rank: int, world: int) -> DataLoader:
    """This rank's shard of epoch ``epoch``: the order a function of ``(seed, epoch)`` (DistributedSampler),
    the workers' seeds of ``(seed, epoch, rank)``, so a run resumed at an epoch boundary sees what the
    uninterrupted one saw. Pinned memory on CUDA, persistent-free workers rebuilt each epoch."""
    c = cfg.classify
    sampler = DistributedSampler(
        train_set, num_replicas=world, rank=rank, shuffle=True, seed=int(cfg.seed), drop_last=True
    )
    sampler.set_epoch(epoch)
    g = torch.Generator().manual_seed(int(cfg.seed) * 100003 + epoch * 1009 + rank)
    return DataLoader(
        train_set,
        batch_size=int(c.batch_size) // world,
        sampler=sampler,
        drop_last=True,
        generator=g,
        num_workers=loader_workers(cfg.data.num_workers),
        pin_memory=torch.cuda.is_available(),
    )


def _stop(
    found: tuple[list[int], list[dict]],
    epoch: int,
    step: int,
    checkpointer: BackgroundCheckpointer | None,
    out: Path,
) -> None:
    """Raise :class:`NonFiniteLossError` for a non-finite loss at ``step`` of ``epoch`` (0-based), once the
    checkpoint of the last finished epoch, the state to resume or inspect, is on disk."""
    bad, gathered = found
    if checkpointer is not None:
        checkpointer.close()
    raise NonFiniteLossError(
        f"non-finite classification loss at epoch {epoch + 1}, step {step + 1} on rank(s) {bad}: "
        f"{gathered[bad[0]]}; the checkpoint of the last finished epoch, if any, is in {out / run_dir.CHECKPOINTS}"
    )


def _cost_of_progress(progress: dict[str, Any]) -> Cost:
    """The cost a checkpoint written before the cost record kept in its progress (one instance an image)."""
    seen = int(progress.get("images_seen", 0))
    pixels, wall = int(progress.get("pixels_seen", 0)), float(progress.get("wall_s", 0.0))
    return Cost(images_seen=seen, instances_seen=seen, pixels_seen=pixels, wall_s=wall)


def pretrain_classify(cfg: DictConfig, out_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Pre-train ``build_backbone_body(cfg)`` on the ImageFolder at ``data.root`` (``train/``, ``val/``);
    write ``backbone.pth`` and ``pretrain_meta.json`` into ``out_dir`` and return the meta dict.

    Under ``torchrun`` every rank trains on its shard of each epoch (DDP; ``classify.batch_size`` is the
    global batch). An atomic checkpoint is written after every epoch; ``resume`` continues from it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rank, world, local_rank = init_distributed()
    setup_logging(out / run_dir.LOG)
    root = _resolve_root(cfg, out) if is_main_process() else None
    root = Path(all_gather_objects(str(root))[0])
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise FileNotFoundError(f"{root / split}: data.root must hold train/ and val/ class folders")
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    c, device = cfg.classify, resolve_device(cfg, local_rank)
    if int(c.batch_size) % world:
        raise ValueError(f"classify.batch_size={c.batch_size} is not divisible by the world size {world}")
    train_set = ImageFolder(str(root / "train"), transform=_transforms(cfg, True), loader=load_image)
    val_set = ImageFolder(str(root / "val"), transform=_transforms(cfg, False), loader=load_image)
    if train_set.classes != val_set.classes:
        raise ValueError(f"{root}: train/ and val/ have different class folders")
    body = build_backbone_body(cfg, zero_init_residual=bool(c.zero_init_residual))
    core = model = BackboneClassifier(body, body.out_channels, len(train_set.classes)).to(device)
    if world > 1:
        torch.manual_seed(cfg.seed + rank)  # each rank its own augmentation stream
        model = nn.parallel.DistributedDataParallel(
            core, device_ids=[local_rank] if device.type == "cuda" else None
        )
    steps_per_epoch = len(train_set) // world // (int(c.batch_size) // world)
    if steps_per_epoch == 0:
        raise ValueError(f"{root / 'train'}: fewer images ({len(train_set)}) than one batch ({c.batch_size})")
    optimizer = torch.optim.SGD(
        param_groups(core, c.weight_decay, c.weight_decay_norm),
        lr=c.base_lr,
        momentum=c.momentum,
        weight_decay=c.weight_decay,
    )
    amp, amp_dtype, scaler = amp_setup(cfg, device)
    # What the detector's runs count too (a classified image is one instance); the rest is this loop's own.
    cost, progress = Cost(), {"epoch": 0, "data_s": 0.0, "epoch_losses": []}
    if resume and (found := load_latest(out / run_dir.CHECKPOINTS)) is not None:
        ckpt, path = found
        core.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        restore_rng(ckpt["rng"][min(rank, len(ckpt["rng"]) - 1)])
        progress = json.loads(ckpt["progress"])
        cost = Cost(**ckpt["cost"]) if "cost" in ckpt else _cost_of_progress(progress)
        log.info("resumed from %s after epoch %d", path, progress["epoch"])
    if is_main_process():
        (out / run_dir.CONFIG).write_text(to_yaml(cfg))
    checkpointer = BackgroundCheckpointer(out / run_dir.CHECKPOINTS) if is_main_process() else None
    # One row per epoch, at the step count it ends on.
    writers = MetricWriters(out, int(c.epochs) * steps_per_epoch, progress["epoch"] * steps_per_epoch)
    for epoch in range(progress["epoch"], int(c.epochs)):
        t0, data_s, loss_sum = time.perf_counter(), 0.0, torch.zeros((), dtype=torch.float64, device=device)
        t_data = time.perf_counter()
        for i, (images, labels) in enumerate(_train_loader(train_set, cfg, epoch, rank, world)):
            data_s += time.perf_counter() - t_data
            for group in optimizer.param_groups:
                group["lr"] = c.base_lr * _lr_factor(cfg, epoch + i / steps_per_epoch)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                loss = nn.functional.cross_entropy(
                    model(images.to(device, non_blocking=True)), labels.to(device, non_blocking=True)
                )
            if (found := non_finite_ranks({"loss": loss.item()}, device)) is not None:
                _stop(found, epoch, i, checkpointer, out)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach().double()
            cost.images_seen += len(images) * world
            cost.instances_seen += len(images) * world
            cost.pixels_seen += len(images) * images.shape[-1] * images.shape[-2] * world
            t_data = time.perf_counter()
        if world > 1:
            dist.all_reduce(loss_sum)
        progress["epoch_losses"].append(round(loss_sum.item() / (steps_per_epoch * world), 5))
        epoch_s = time.perf_counter() - t0
        cost.wall_s += epoch_s
        progress["data_s"] += data_s
        progress["epoch"] = epoch + 1
        writers.write(
            (epoch + 1) * steps_per_epoch,
            {
                "epoch": epoch + 1,
                "loss": progress["epoch_losses"][-1],
                "lr": optimizer.param_groups[0]["lr"],
                "data_wait": data_s / max(epoch_s, 1e-9),  # the share of the epoch spent waiting for data
            },
        )
        rngs = all_gather_objects(capture_rng())
        if checkpointer is not None:
            checkpointer.save(
                {
                    "model": core.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": rngs,
                    "progress": json.dumps(progress),
                    "cost": cost.as_dict(),
                    "config": to_yaml(cfg),
                }
            )
    if checkpointer is not None:
        checkpointer.close()
    writers.close()
    acc = _accuracy(core, val_set, int(c.batch_size) // world, loader_workers(cfg.data.num_workers), device)
    # What the backbone was pre-trained on, as run provenance records name it.
    data = (
        f"{root} ({len(train_set.classes)} classes)"
        if cfg.data.root
        else f"generated shapes, {len(train_set.classes)} classes"
    )
    meta = {
        "data": data,
        "images": len(train_set),
        "classes": len(train_set.classes),
        "epochs": int(c.epochs),
        "images_seen": cost.images_seen,
        "instances_seen": cost.instances_seen,
        "pixels_seen": int(cost.pixels_seen),
        "wall_s": round(cost.wall_s, 3),
        "peak_memory_mb": peak_memory_mb(),
        "peak_memory_scope": cost.peak_memory_scope,
        "data_wait_s": round(progress["data_s"], 3),
        "world_size": world,
        "top1": round(acc["top1"], 2),
        "top5": round(acc["top5"], 2),
        "epoch_losses": progress["epoch_losses"],
        "backbone": {
            "depth": int(cfg.model.backbone.depth),
            "width_mult": float(cfg.model.backbone.width_mult),
            "norm": str(cfg.model.norm),
        },
        "data_root": str(root),
    }
    if is_main_process():
        atomic_torch_save(core.body.state_dict(), out / run_dir.BACKBONE)
        write_json(out / run_dir.PRETRAIN_META, meta, indent=2)
    log.info(
        "classification pre-training done: top-1 %.1f%%, top-5 %.1f%% after %d epochs (%.0f s)",
        meta["top1"],
        meta["top5"],
        c.epochs,
        meta["wall_s"],
    )
    return meta
