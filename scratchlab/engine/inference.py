"""Run a detector over a dataset and feed an evaluator (Detectron2's inference_on_dataset).

Masks are the costly part of a Mask R-CNN evaluation on CPU: torchvision pastes each detection's 28x28
mask into a full-size float image, stacks them (4 bytes a pixel, twice), and the evaluator then
thresholds them and transposes them into the column-major layout COCO's RLE encoder reads. Here the
model's post-processing pastes instead straight into a binary (1 byte a pixel) array already in that
layout (:func:`paste_masks_binary`: the same interpolation and crop as torchvision's, then ``> 0.5``),
so the evaluator encodes it without a copy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch.utils.data import Subset
from torchvision.models.detection.roi_heads import expand_boxes, expand_masks
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from tqdm import tqdm

from ..config import MASK_ARCHS
from ..data.packing import PackedBatchLoader
from ..evaluation import COCOEvaluator
from ..utils.dist import get_rank, get_world_size, is_main_process

__all__ = ["inference_on_dataset", "coco_evaluator", "paste_masks_binary", "binary_mask_paste"]

MASK_THRESHOLD = 0.5  # a pixel is in the instance when its mask probability exceeds this (COCO, Detectron2)


def coco_evaluator(
    cfg: DictConfig, dataset, category_ids: Sequence[int], per_class: bool = False, output_file=None
) -> COCOEvaluator:
    """Box AP, mask AP for a Mask R-CNN config and keypoint AP for a Keypoint R-CNN config, against
    ``dataset``'s COCO file (``data.val_json``); with ``output_file``, the detections are written there too.
    ``category_ids``: the COCO category id of each of the model's labels 1..K (the model's own categories,
    :mod:`scratchlab.engine.categories`; never ``dataset``'s list, which may order or select them otherwise)."""
    arch = str(cfg.model.arch)
    extra = ("segm",) if arch in MASK_ARCHS else ("keypoints",) if arch == "keypoint_rcnn" else ()
    sigmas = cfg.eval.keypoint_oks_sigmas
    return COCOEvaluator(
        dataset.ann_file,
        iou_types=("bbox", *extra),
        label_to_category_id=list(category_ids),
        per_category=per_class,
        output_file=output_file,
        oks_sigmas=None if sigmas is None else list(sigmas),
    )


def paste_masks_binary(masks: torch.Tensor, boxes: torch.Tensor, image_size: Sequence[int]) -> torch.Tensor:
    """``paste_masks_in_image(masks, boxes, image_size) > 0.5`` (torchvision's paste: the mask padded by
    a pixel, its box grown to match, bilinear resize to the box, cropped to the image), as a bool
    [N, 1, H, W] tensor on the CPU whose memory is an H x W x N Fortran-ordered array: each mask
    column-major, as ``pycocotools.mask.encode`` reads it. Only each box's pixels are computed; the rest
    stays zero. On a GPU only the small masks and boxes cross to the CPU, not N full-size images."""
    h, w = (int(v) for v in image_size)
    out = np.zeros((h, w, len(masks)), dtype=bool, order="F")
    if len(masks):
        padded, scale = expand_masks(masks.detach().float().cpu(), padding=1)
        grown = expand_boxes(boxes.detach().float().cpu(), scale).to(torch.int64).tolist()
        for i, (mask, (x0, y0, x1, y1)) in enumerate(zip(padded, grown, strict=True)):
            size = (max(y1 - y0 + 1, 1), max(x1 - x0 + 1, 1))
            resized = F.interpolate(mask[None], size=size, mode="bilinear", align_corners=False)[0, 0]
            xa, xb, ya, yb = max(x0, 0), min(x1 + 1, w), max(y0, 0), min(y1 + 1, h)
            out[ya:yb, xa:xb, i] = (resized[ya - y0 : yb - y0, xa - x0 : xb - x0] > MASK_THRESHOLD).numpy()
    return torch.from_numpy(out).permute(2, 0, 1)[:, None]


@contextlib.contextmanager
def binary_mask_paste(model: torch.nn.Module) -> Iterator[None]:
    """While active, a torchvision detector's post-processing returns ``masks`` as
    :func:`paste_masks_binary` gives them (bool, column-major) instead of full-size float probabilities;
    boxes and keypoints are mapped back to the original size as before. A model without torchvision's
    transform (e.g. :class:`~scratchlab.engine.tta.TTADetector`, which pastes its merged masks itself)
    is left as it is."""
    transform = getattr(model, "transform", None)
    if not isinstance(transform, GeneralizedRCNNTransform):
        yield
        return
    original, own = transform.postprocess, vars(transform).get("postprocess")

    def postprocess(result, image_shapes, original_image_sizes):
        probabilities = [r.pop("masks", None) for r in result]
        result = original(result, image_shapes, original_image_sizes)
        for r, p, size in zip(result, probabilities, original_image_sizes, strict=True):
            if p is not None:
                r["masks"] = paste_masks_binary(p, r["boxes"], size)
        return result

    transform.postprocess = postprocess  # an instance attribute: the class's method is untouched
    try:
        yield
    finally:
        if own is None:
            del transform.postprocess
        else:
            transform.postprocess = own


def _to_cpu(output: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An output on the CPU; float masks are thresholded where they are first (a quarter of the bytes
    to move, and nothing for the evaluator to threshold)."""
    masks = output.get("masks")
    if masks is not None and masks.dtype != torch.bool:
        output = {**output, "masks": masks > MASK_THRESHOLD}
    return {k: v.cpu() for k, v in output.items()}


def _as_lists(batch):
    return tuple(list(part) for part in zip(*batch, strict=True))


@torch.no_grad()
def inference_on_dataset(
    model: torch.nn.Module,
    dataset,
    evaluator,
    device: torch.device,
    batch_size: int = 2,
    num_workers: int = 0,
) -> dict:
    """Predict every image of ``dataset`` (each rank a strided share), ``batch_size`` images per forward
    pass, and return ``evaluator.evaluate()``. The model's own transform resizes for testing and maps
    outputs back to the original image size; masks reach the evaluator binary (``> 0.5``). With
    ``num_workers`` > 0 images are decoded in that many worker processes while the model runs. The
    main process shows a progress bar (images of its own share) on stderr."""
    was_training = model.training
    model.eval()
    evaluator.reset()
    share = Subset(dataset, list(range(get_rank(), len(dataset), get_world_size())))
    # Its own generator: a DataLoader otherwise draws its base seed from the global RNG, so evaluating
    # during training would change the rest of the run (its RoI sampling) against an unevaluated run.
    loader = PackedBatchLoader(
        share,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_as_lists,
        generator=torch.Generator(),
    )
    try:  # a failed evaluation (out of memory, a bad image) must not leave a training model in eval mode
        with (
            tqdm(
                total=len(share), desc="evaluating", unit="img", leave=False, disable=not is_main_process()
            ) as bar,
            binary_mask_paste(model),
        ):
            for images, targets in loader:
                outputs = model([img.to(device) for img in images])
                evaluator.process(targets, [_to_cpu(o) for o in outputs])
                bar.update(len(images))
        return evaluator.evaluate()
    finally:
        model.train(was_training)
