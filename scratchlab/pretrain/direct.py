"""Direct detection pre-training (Li, Zhang, Zhang 2021): no classification data at all.

Stage 1 trains the *whole detector* from random init on the target training set at low resolution
(small crops with scale jitter), which makes a large batch affordable (so plain BN works) and is cheap;
constant LR after warm-up. Stage 2 loads the whole stage-1 detector and fine-tunes at full resolution
on a normal schedule. The stage overrides live in the config (``direct.stage1`` / ``direct.stage2``),
so one file shows the whole recipe.

    scratchlab pretrain direct configs/mini/direct_gn.yaml --out runs/mini_direct
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from .. import run_dir
from ..config import apply_overrides
from ..engine import train
from ..engine.data import resolve_data, train_set_size
from ..utils.io import write_json

__all__ = ["pretrain_direct", "stage_configs", "stage1_iterations", "stage1_weights"]

log = logging.getLogger("scratchlab")


def stage1_weights(out_dir: str | Path) -> Path:
    """The detector stage 1 leaves in a direct pre-training's ``out_dir``: what stage 2 starts from."""
    return Path(out_dir) / run_dir.STAGE1 / run_dir.MODEL_FINAL


def stage1_iterations(stage1: DictConfig, train_images: int) -> int:
    """Stage 1's iterations for ``direct.stage1_epochs`` passes over ``train_images`` images at its batch,
    rounded up: 48 x 117,266 / 64 = 87,950 on COCO."""
    return math.ceil(float(stage1.direct.stage1_epochs) * train_images / int(stage1.solver.ims_per_batch))


def stage_configs(
    cfg: DictConfig, out_dir: str | Path, train_images: int | None = None
) -> tuple[DictConfig, DictConfig]:
    """The stage-1 and stage-2 configs: ``cfg`` with ``direct.stage1`` / ``direct.stage2`` applied;
    stage 2 starts from stage 1's ``model_final.pth``. With ``direct.stage1_epochs``, stage 1's
    ``solver.max_iter`` follows from ``train_images``: by default the training set as stage 1's trainer
    sees it (``data.subset`` applied, images without instances left out; its data must be resolved)."""
    out = Path(out_dir)
    stage1 = apply_overrides(cfg, list(cfg.direct.stage1) + ["model.init=random"])
    if stage1.direct.stage1_epochs is not None:
        images = train_set_size(stage1) if train_images is None else train_images
        stage1 = apply_overrides(stage1, [f"solver.max_iter={stage1_iterations(stage1, images)}"])
    stage2 = apply_overrides(cfg, [*cfg.direct.stage2, f"model.init={stage1_weights(out)}"])
    return stage1, stage2


def pretrain_direct(cfg: DictConfig, out_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Run both stages into ``out_dir/stage1`` and ``out_dir/stage2``; write ``out_dir/final_metrics.json``
    (stage 2's metrics, whose cost includes stage 1) and return it. A finished stage 1 is reused."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = resolve_data(cfg, out)  # both stages see the same data (generated once under out/data)
    stage1, stage2 = stage_configs(cfg, out)
    first = run_dir.read_final_metrics(out / run_dir.STAGE1)
    if first is not None and (out / run_dir.STAGE1 / run_dir.MODEL_FINAL).is_file():
        log.info("stage 1 already finished in %s: reusing it", out / run_dir.STAGE1)
    else:
        log.info("direct pre-training, stage 1: whole detector at low resolution")
        first = train(stage1, out / run_dir.STAGE1, resume=resume)
    log.info("direct pre-training, stage 2: fine-tuning from %s", stage2.model.init)
    final = train(stage2, out / run_dir.STAGE2, resume=resume)
    summary = {**final, "stage1": {k: v for k, v in first.items() if k != "cost"}}
    write_json(out / run_dir.FINAL_METRICS, summary, indent=2)
    return summary
