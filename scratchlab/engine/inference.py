"""Run a detector over a dataset and feed an evaluator (Detectron2's inference_on_dataset)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from ..config import MASK_ARCHS
from ..evaluation import COCOEvaluator
from ..utils.dist import get_rank, get_world_size, is_main_process

__all__ = ["inference_on_dataset", "coco_evaluator"]


def coco_evaluator(cfg: DictConfig, dataset, per_class: bool = False, output_file=None) -> COCOEvaluator:
    """Box AP, mask AP for a Mask R-CNN config and keypoint AP for a Keypoint R-CNN config, against
    ``dataset``'s COCO file (``data.val_json``); with ``output_file``, the detections are written there too."""
    arch = str(cfg.model.arch)
    extra = ("segm",) if arch in MASK_ARCHS else ("keypoints",) if arch == "keypoint_rcnn" else ()
    sigmas = cfg.eval.keypoint_oks_sigmas
    return COCOEvaluator(
        dataset.ann_file,
        iou_types=("bbox", *extra),
        label_to_category_id=dataset.label_to_cat_id,
        per_category=per_class,
        output_file=output_file,
        oks_sigmas=None if sigmas is None else list(sigmas),
    )


@torch.no_grad()
def inference_on_dataset(
    model: torch.nn.Module, dataset, evaluator, device: torch.device, batch_size: int = 2
) -> dict:
    """Predict every image of ``dataset`` (each rank a strided share) and return ``evaluator.evaluate()``.
    The model's own transform resizes for testing and maps outputs back to the original image size.
    The main process shows a progress bar (images of its own share) on stderr."""
    was_training = model.training
    model.eval()
    evaluator.reset()
    indices = list(range(get_rank(), len(dataset), get_world_size()))
    with tqdm(
        total=len(indices), desc="evaluating", unit="img", leave=False, disable=not is_main_process()
    ) as progress:
        for start in range(0, len(indices), batch_size):
            images, targets = zip(*(dataset[i] for i in indices[start : start + batch_size]), strict=True)
            outputs = model([img.to(device) for img in images])
            evaluator.process(list(targets), [{k: v.cpu() for k, v in o.items()} for o in outputs])
            progress.update(len(images))
    results = evaluator.evaluate()
    model.train(was_training)
    return results
