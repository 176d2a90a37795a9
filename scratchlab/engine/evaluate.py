"""``scratchlab eval``: a whole-detector checkpoint on a validation set, with per-class AP and the
detections on request."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ..models import build_model
from ..utils.runtime import loader_workers, resolve_device, setup_logging
from ..vis.plots import plot_pr_curves
from .categories import category_ids, check_val_categories, checkpoint_categories
from .data import build_val_set
from .inference import coco_evaluator, inference_on_dataset
from .preflight import require_masks, with_keypoint_count
from .tta import TTADetector

__all__ = ["evaluate_checkpoint", "format_per_class"]


def evaluate_checkpoint(
    cfg: DictConfig,
    weights: str | Path,
    per_class: bool = False,
    detections: str | Path | None = None,
    figures: str | Path | None = None,
) -> dict[str, Any]:
    """Load a whole-detector checkpoint and evaluate it on ``data.val_json`` / ``data.val_images``.

    The model's labels mean the checkpoint's own categories (``category_ids`` / ``classes``; for a file
    without them, ``data.train_json``'s), whatever order or selection the validation file lists; a
    validation file that names one of their ids differently, or annotates a category the model does not
    know, is refused (:mod:`scratchlab.engine.categories`).

    Returns ``{"weights", "bbox": {AP, ...}, "segm": {...}}`` (percent); with ``per_class`` each task
    also holds ``AP-<class name>`` (COCOeval's per-category precision). ``detections``: a path to write
    the COCO-format detections to (JSON that ``COCO.loadRes`` reads). ``figures``: a folder for
    per-class precision-recall curves at IoU 0.5 (``pr_bbox.png``, ``pr_segm.png``). With
    ``eval.tta.enabled`` the detector runs with test-time augmentation (:mod:`scratchlab.engine.tta`).

    Example::

        cfg = load_config("runs/mini/config.yaml")
        evaluate_checkpoint(cfg, "runs/mini/model_final.pth", per_class=True)["bbox"]["AP"]
    """
    if not Path(weights).is_file():  # said before model.init's loader answers with its list of sources
        raise FileNotFoundError(
            f"{weights}: no such weights file (eval needs a whole-detector checkpoint: a run's "
            "model_final.pth or checkpoints/last.pth)"
        )
    setup_logging()
    device = resolve_device(cfg)
    val_set = build_val_set(cfg)
    require_masks(cfg, val_set)
    categories, source = checkpoint_categories(weights, cfg)  # what the model's labels mean
    annotations = [a for anns in val_set.anns.values() for a in anns]
    check_val_categories(categories, source, val_set.categories, annotations, str(val_set.ann_file))
    cfg = copy.deepcopy(with_keypoint_count(cfg, val_set))  # the caller's config keeps its model.init
    cfg.model.init = str(weights)
    model = build_model(cfg, num_classes=len(categories)).to(device)
    report = getattr(model, "init_report", {}) or {}
    if report.get("missing") or report.get("skipped_shape"):
        keys = report.get("missing") or report.get("skipped_shape")
        raise ValueError(
            f"{weights}: not a whole-detector checkpoint for this config and its {len(categories)} categories "
            f"({source}); keys not loaded: {keys[:5]}..."
        )
    evaluator = coco_evaluator(cfg, val_set, category_ids(categories), per_class=per_class)
    tta = cfg.eval.tta
    if tta.enabled:
        model = TTADetector(
            model, list(tta.min_sizes), int(tta.max_size), bool(tta.flip), float(tta.vote_thresh)
        )
    results = inference_on_dataset(
        model, val_set, evaluator, device, num_workers=loader_workers(cfg.data.num_workers)
    )
    if detections is not None:
        evaluator.write_results(detections)
    if figures is not None:
        for task in (t for t in ("bbox", "segm") if t in results):
            plot_pr_curves(
                evaluator.precision_recall_curves(task, 0.5),
                f"{task}: precision-recall at IoU 0.5",
                Path(figures) / f"pr_{task}.png",
            )
    return {"weights": str(weights), **results}


def format_per_class(results: dict[str, Any]) -> str:
    """The ``AP-<class>`` entries of :func:`evaluate_checkpoint`'s results as a table, a class per row."""
    tasks = [t for t in ("bbox", "segm", "keypoints") if isinstance(results.get(t), dict)]
    names = [k[3:] for k in results[tasks[0]] if k.startswith("AP-")] if tasks else []
    width = max([len("class"), *map(len, names)])
    lines = [f"{'class':<{width}}" + "".join(f"  {t + ' AP':>8}" for t in tasks)]
    for name in names:
        cells = [results[t].get(f"AP-{name}") for t in tasks]
        lines.append(f"{name:<{width}}" + "".join(f"  {'-' if c is None else f'{c:.1f}':>8}" for c in cells))
    return "\n".join(lines)
