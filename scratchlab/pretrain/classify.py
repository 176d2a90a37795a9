"""ImageNet-style classification pre-training of the detector's own backbone.

A user without ImageNet weights (as on these machines) makes them: the same ResNet body the detector
uses (same depth, width and normalisation), a global-pool + linear classifier, SGD with a step or
cosine schedule, top-1 on the val folder. Writes ``backbone.pth`` (keys exactly as
``detector.backbone.body`` expects) and ``pretrain_meta.json`` (what it cost).

    scratchlab pretrain classify configs/mini/classify_gn.yaml --out runs/mini_cls
    scratchlab pretrain classify configs/imagenet/classify_R50_gn.yaml --out pretrained/R50_gn \
        data.root=/datasets/imagenet      (single process; DDP for this command is still to come)
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
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from ..config import to_yaml
from ..data.image_io import load_image
from ..data.synth_classify import make_synth_classify
from ..engine.checkpoint import atomic_torch_save
from ..engine.schedule import param_groups
from ..engine.trainer import resolve_device, setup_logging
from ..models import build_backbone_body

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
    norm = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(cfg.input.pixel_mean), list(cfg.input.pixel_std))]
    if train:
        return v2.Compose([v2.RandomResizedCrop(size, scale=(float(c.min_crop_scale), 1.0)),
                           v2.RandomHorizontalFlip(), *norm])
    return v2.Compose([v2.Resize(int(round(size / 0.875))), v2.CenterCrop(size), *norm])


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
def _top1(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    model.eval()
    correct = total = 0
    for images, labels in loader:
        pred = model(images.to(device)).argmax(1).cpu()
        correct += int((pred == labels).sum())
        total += len(labels)
    model.train()
    return 100.0 * correct / max(total, 1)


def _resolve_root(cfg: DictConfig, out: Path) -> Path:
    if cfg.data.root:
        return Path(cfg.data.root)
    root, s = out / "data", cfg.classify.synth
    if not (root / "val").is_dir():
        log.info("no data.root given: generating a classification set under %s", root)
        make_synth_classify(root, s.classes, s.per_class, s.image_size, s.seed, class_colours=s.class_colours)
    return root


def pretrain_classify(cfg: DictConfig, out_dir: str | Path) -> dict[str, Any]:
    """Pre-train ``build_backbone_body(cfg)`` on the ImageFolder at ``data.root`` (``train/``, ``val/``);
    write ``backbone.pth`` and ``pretrain_meta.json`` into ``out_dir`` and return the meta dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(out)
    root = _resolve_root(cfg, out)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise FileNotFoundError(f"{root / split}: data.root must hold train/ and val/ class folders")
    torch.manual_seed(cfg.seed)
    c, device = cfg.classify, resolve_device(cfg)
    train_set = ImageFolder(str(root / "train"), transform=_transforms(cfg, True), loader=load_image)
    val_set = ImageFolder(str(root / "val"), transform=_transforms(cfg, False), loader=load_image)
    if train_set.classes != val_set.classes:
        raise ValueError(f"{root}: train/ and val/ have different class folders")
    body = build_backbone_body(cfg, zero_init_residual=bool(c.zero_init_residual))
    model = BackboneClassifier(body, body.out_channels, len(train_set.classes)).to(device)
    g = torch.Generator().manual_seed(cfg.seed)
    workers = int(cfg.data.num_workers)
    train_loader = DataLoader(train_set, batch_size=int(c.batch_size), shuffle=True, drop_last=True,
                              generator=g, num_workers=workers)
    val_loader = DataLoader(val_set, batch_size=int(c.batch_size), num_workers=workers)
    if len(train_loader) == 0:
        raise ValueError(f"{root / 'train'}: fewer images ({len(train_set)}) than one batch ({c.batch_size})")
    optimizer = torch.optim.SGD(param_groups(model, c.weight_decay, c.weight_decay_norm), lr=c.base_lr,
                                momentum=c.momentum, weight_decay=c.weight_decay)
    (out / "config.yaml").write_text(to_yaml(cfg))
    seen = pixels = 0
    losses: list[float] = []
    epoch_losses: list[float] = []
    t0 = time.perf_counter()
    steps_per_epoch = len(train_loader)
    for epoch in range(int(c.epochs)):
        for i, (images, labels) in enumerate(train_loader):
            for group in optimizer.param_groups:
                group["lr"] = c.base_lr * _lr_factor(cfg, epoch + i / steps_per_epoch)
            loss = nn.functional.cross_entropy(model(images.to(device)), labels.to(device))
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"non-finite classification loss at epoch {epoch + 1}, step {i + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            seen += len(images)
            pixels += len(images) * images.shape[-1] * images.shape[-2]
        epoch_losses.append(round(sum(losses[-steps_per_epoch:]) / steps_per_epoch, 5))
        log.info("classify epoch %d/%d  loss %.4f  lr %.4g", epoch + 1, c.epochs, epoch_losses[-1],
                 optimizer.param_groups[0]["lr"])
    wall = time.perf_counter() - t0
    top1 = _top1(model, val_loader, device)
    atomic_torch_save(model.body.state_dict(), out / "backbone.pth")
    meta = {"images": len(train_set), "classes": len(train_set.classes), "epochs": int(c.epochs),
            "images_seen": seen, "instances_seen": seen, "pixels_seen": int(pixels), "wall_s": round(wall, 3),
            "top1": round(top1, 2), "epoch_losses": epoch_losses,
            "backbone": {"depth": int(cfg.model.backbone.depth), "width_mult": float(cfg.model.backbone.width_mult),
                         "norm": str(cfg.model.norm)},
            "data_root": str(root)}
    (out / "pretrain_meta.json").write_text(json.dumps(meta, indent=2))
    log.info("classification pre-training done: top-1 %.1f%% after %d epochs (%.0f s)", top1, c.epochs, wall)
    return meta
