"""Test-time augmentation (``eval.tta``): horizontal flip and several test scales, merged before NMS.

Detectron's BBOX_AUG with the UNION heuristics (configs/test_time_aug/e2e_mask_rcnn_R-50-FPN_2x.yaml): the
detector runs at the test scale and at each of ``eval.tta.min_sizes``, each also on the flipped image
(H_FLIP, SCALE_H_FLIP); every run's scored boxes *before* NMS (score threshold only) are mapped back to the
original image and pooled, and the one per-class NMS and top-``detections_per_img`` cut of the model run
on the union. Masks (MASK_AUG, SOFT_AVG): for the merged boxes, the mask head's soft masks of every run
are averaged (a flipped run's mask mirrored back) and pasted once. Box voting (Detectron's BBOX_VOTE with
SCORING_METHOD 'ID', ``eval.tta.vote_thresh``; 0 turns it off): each box NMS keeps becomes the
score-weighted mean of every pooled box of its class overlapping it at IoU >= the threshold (itself
included), its score unchanged (detectron/utils/boxes.py box_voting, called per class after NMS in
detectron/core/test.py). IoU is torchvision's continuous one, not Detectron's +1-pixel convention.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection.roi_heads import maskrcnn_inference, paste_masks_in_image
from torchvision.ops import boxes as box_ops

__all__ = ["TTADetector", "augmentations", "vote_boxes"]


def augmentations(test_size: int, min_sizes: Sequence[int], flip: bool) -> list[tuple[int, bool]]:
    """The (short side, flipped) runs: the test size first, then each extra size; each also flipped."""
    sizes = [int(test_size)] + [int(s) for s in min_sizes if int(s) != int(test_size)]
    return [(s, f) for s in sizes for f in ((False, True) if flip else (False,))]


def _mirror(boxes: Tensor, width: int) -> Tensor:
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)


def vote_boxes(
    kept: Tensor, kept_labels: Tensor, boxes: Tensor, scores: Tensor, labels: Tensor, thresh: float
) -> Tensor:
    """``kept`` (the boxes NMS kept) each replaced by the ``scores``-weighted mean of the ``boxes`` of its
    label that overlap it at IoU >= ``thresh``; a kept box is one of ``boxes``, so it always votes."""
    iou = box_ops.box_iou(kept, boxes)
    votes = (iou >= thresh) & (kept_labels[:, None] == labels[None, :])
    weights = votes.to(scores.dtype) * scores[None, :]
    return (weights @ boxes) / weights.sum(1, keepdim=True)


class TTADetector(nn.Module):
    """Wraps a torchvision two-stage detector (Faster / Mask / Cascade R-CNN) in eval mode: ``forward``
    takes a list of images and returns torchvision's outputs, merged over :func:`augmentations`."""

    def __init__(
        self,
        model: nn.Module,
        min_sizes: Sequence[int],
        max_size: int,
        flip: bool,
        vote_thresh: float = 0.0,
    ) -> None:
        super().__init__()
        if getattr(model.roi_heads, "keypoint_roi_pool", None) is not None:
            raise ValueError(
                "eval.tta: test-time augmentation supports box and mask models, not keypoint_rcnn"
            )
        if not 0.0 <= vote_thresh <= 1.0:
            raise ValueError(f"eval.tta.vote_thresh must be in [0, 1] (0: no box voting), got {vote_thresh}")
        self.model, self.max_size, self.vote_thresh = model, int(max_size), float(vote_thresh)
        self.runs = augmentations(model.transform.min_size[-1], min_sizes, flip)

    @contextlib.contextmanager
    def _at(self, size: int, max_size: int, keep_all: bool) -> Iterator[None]:
        """Run the model at ``size`` (max ``max_size``); with ``keep_all``, boxes only and no NMS/top-k."""
        t, heads = self.model.transform, self.model.roi_heads
        saved = (t.min_size, t.max_size, heads.nms_thresh, heads.detections_per_img, heads.mask_roi_pool)
        t.min_size, t.max_size = (size,), max_size
        if keep_all:  # IoU > 1 never happens: NMS keeps everything; the mask head waits for the merge
            heads.nms_thresh, heads.detections_per_img, heads.mask_roi_pool = 1.0, 10**9, None
        try:
            yield
        finally:
            t.min_size, t.max_size, heads.nms_thresh, heads.detections_per_img, heads.mask_roi_pool = saved

    def _max_size(self, size: int) -> int:
        return int(self.model.transform.max_size) if size == self.runs[0][0] else self.max_size

    @torch.no_grad()
    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        return [self._one(image) for image in images]

    def _one(self, image: Tensor) -> dict[str, Tensor]:
        width = image.shape[-1]
        parts = []
        for size, flip in self.runs:
            with self._at(size, self._max_size(size), keep_all=True):
                out = self.model([image.flip(-1) if flip else image])[0]
            parts.append({**out, "boxes": _mirror(out["boxes"], width) if flip else out["boxes"]})
        boxes, scores, labels = (torch.cat([p[k] for p in parts]) for k in ("boxes", "scores", "labels"))
        heads = self.model.roi_heads
        keep = box_ops.batched_nms(boxes, scores, labels, heads.nms_thresh)[: heads.detections_per_img]
        result = {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}
        if self.vote_thresh > 0 and len(keep):
            result["boxes"] = vote_boxes(
                result["boxes"], result["labels"], boxes, scores, labels, self.vote_thresh
            )
        if heads.mask_roi_pool is not None:
            result["masks"] = self._masks(image, result["boxes"], result["labels"])
        return result

    def _masks(self, image: Tensor, boxes: Tensor, labels: Tensor) -> Tensor:
        """Soft masks of ``boxes`` (original coordinates) averaged over the runs, pasted into the image."""
        h, w = image.shape[-2:]
        total = None
        for size, flip in self.runs:
            with self._at(size, self._max_size(size), keep_all=False):
                probs = self._soft_masks(
                    image.flip(-1) if flip else image, _mirror(boxes, w) if flip else boxes, labels
                )
            probs = probs.flip(-1) if flip else probs
            total = probs if total is None else total + probs
        return paste_masks_in_image(total / len(self.runs), boxes, (h, w))

    def _soft_masks(self, image: Tensor, boxes: Tensor, labels: Tensor) -> Tensor:
        """[N, 1, M, M] mask probabilities of the model's mask head for ``boxes`` on ``image``."""
        m, heads = self.model, self.model.roi_heads
        batch, _ = m.transform([image])
        (rh, rw), (h, w) = batch.image_sizes[0], image.shape[-2:]
        scaled = boxes * torch.tensor([rw / w, rh / h, rw / w, rh / h], device=boxes.device)
        features = m.backbone(batch.tensors)
        logits = heads.mask_predictor(
            heads.mask_head(heads.mask_roi_pool(features, [scaled], batch.image_sizes))
        )
        return maskrcnn_inference(logits, [labels])[0]
