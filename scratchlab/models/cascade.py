"""Cascade R-CNN RoI heads (Cai & Vasconcelos 2018) on torchvision's :class:`RoIHeads`.

Three box stages, each with its own head (the GN-all 4conv1fc) and a class-agnostic predictor: stage t
labels its RoIs foreground at IoU >= 0.5 / 0.6 / 0.7, regresses them with box-coder weights (10, 10, 5, 5)
/ (20, 20, 10, 10) / (30, 30, 15, 15), and hands its refined (detached) boxes to the next stage. Each stage
adds the ground-truth boxes and samples 512 RoIs with 25% foreground, and its losses are weighted
1 / 0.5 / 0.25 -- MMDetection's cascade_rcnn_r50_fpn (stage_loss_weights, target_stds 0.1/0.05/0.033 x
(1, 1, 2, 2), one sampler per stage). At test time the class scores are the mean of the three stages'
softmax (each on its own input boxes) and the boxes are the last stage's, as in the paper and Detectron2.
The mask head (one) is on the last stage, as He et al. 2019 (Sec. 5.1) add it: it trains on the
foreground RoIs the last stage samples and predicts on the final boxes.

``cascade_on`` False runs stage 1 alone (training and test: a Mask R-CNN whose stage 1 is the cascade's
first stage, the mask head on its RoIs); :func:`switch_cascade` turns the later stages on at
``model.cascade.start_iter``, as the paper trains its X152 as Mask R-CNN and switches to the cascade for
the final 270k iterations.

Stage 1 keeps torchvision's attribute names (``box_head``, ``box_predictor``), later stages are
``cascade_heads[i]`` / ``cascade_predictors[i]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_inference, maskrcnn_loss
from torchvision.ops import boxes as box_ops

__all__ = ["AgnosticBoxPredictor", "CascadeRoIHeads", "switch_cascade"]


class AgnosticBoxPredictor(nn.Module):
    """Class scores for ``num_classes`` (with background) and one class-agnostic box delta per RoI."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.flatten(start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)


class CascadeRoIHeads(RoIHeads):
    """RoIHeads whose box branch is a cascade of ``len(heads)`` stages (see the module docstring)."""

    def __init__(
        self,
        box_roi_pool: nn.Module,
        heads: Sequence[nn.Module],
        predictors: Sequence[nn.Module],
        ious: Sequence[float],
        reg_weights: Sequence[Sequence[float]],
        loss_weights: Sequence[float],
        batch_size_per_image: int,
        positive_fraction: float,
        score_thresh: float,
        nms_thresh: float,
        detections_per_img: int,
        mask_roi_pool=None,
        mask_head=None,
        mask_predictor=None,
    ) -> None:
        n = len(heads)
        if not (len(predictors) == len(ious) == len(reg_weights) == len(loss_weights) == n >= 1):
            raise ValueError(
                f"model.cascade: one IoU, box-coder weight set and loss weight per stage ({n} heads), "
                f"got {len(ious)}, {len(reg_weights)}, {len(loss_weights)}"
            )
        super().__init__(
            box_roi_pool,
            heads[0],
            predictors[0],
            ious[0],
            ious[0],
            batch_size_per_image,
            positive_fraction,
            tuple(reg_weights[0]),
            score_thresh,
            nms_thresh,
            detections_per_img,
            mask_roi_pool,
            mask_head,
            mask_predictor,
        )
        self.cascade_heads = nn.ModuleList(heads[1:])
        self.cascade_predictors = nn.ModuleList(predictors[1:])
        self.stage_matchers = [
            det_utils.Matcher(float(t), float(t), allow_low_quality_matches=False) for t in ious
        ]
        self.stage_coders = [det_utils.BoxCoder(tuple(float(v) for v in w)) for w in reg_weights]
        self.stage_loss_weights = [float(w) for w in loss_weights]
        self.cascade_on = True

    @property
    def num_stages(self) -> int:
        """The stages that run: all of them, or stage 1 alone while ``cascade_on`` is False."""
        return 1 + len(self.cascade_heads) if self.cascade_on else 1

    def stage(self, t: int) -> tuple[nn.Module, nn.Module]:
        """(head, predictor) of stage ``t`` (0-based)."""
        if t == 0:
            return self.box_head, self.box_predictor
        return self.cascade_heads[t - 1], self.cascade_predictors[t - 1]

    def label_proposals(
        self, t: int, proposals: list[Tensor], targets: list[dict[str, Tensor]]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Per image: the matched ground-truth index of each proposal and its label at stage ``t``'s IoU
        threshold (0 = background below it)."""
        matched, labels = [], []
        for boxes, target in zip(proposals, targets, strict=True):
            gt_boxes, gt_labels = target["boxes"], target["labels"]
            if gt_boxes.numel() == 0:
                matched.append(torch.zeros(len(boxes), dtype=torch.int64, device=boxes.device))
                labels.append(torch.zeros(len(boxes), dtype=torch.int64, device=boxes.device))
                continue
            idx = self.stage_matchers[t](box_ops.box_iou(gt_boxes, boxes))
            label = gt_labels[idx.clamp(min=0)].to(torch.int64)
            label[idx == det_utils.Matcher.BELOW_LOW_THRESHOLD] = 0
            matched.append(idx.clamp(min=0))
            labels.append(label)
        return matched, labels

    def _sample(self, t: int, proposals: list[Tensor], targets: list[dict[str, Tensor]]):
        """Stage ``t``'s training RoIs: proposals plus ground truth, labelled at its IoU, then sampled."""
        proposals = self.add_gt_proposals(proposals, [tg["boxes"] for tg in targets])
        matched, labels = self.label_proposals(t, proposals, targets)
        keep = self.subsample(labels)
        proposals = [p[k] for p, k in zip(proposals, keep, strict=True)]
        matched = [m[k] for m, k in zip(matched, keep, strict=True)]
        labels = [lab[k] for lab, k in zip(labels, keep, strict=True)]
        gt = [
            tg["boxes"][m] if tg["boxes"].numel() else torch.zeros_like(p)
            for tg, m, p in zip(targets, matched, proposals, strict=True)
        ]
        deltas = self.stage_coders[t].encode(gt, proposals)
        return proposals, matched, labels, torch.cat(deltas, dim=0)

    def _run_stage(self, t: int, features, boxes: list[Tensor], image_shapes) -> tuple[Tensor, Tensor]:
        head, predictor = self.stage(t)
        return predictor(head(self.box_roi_pool(features, boxes, image_shapes)))

    def _refine(self, t: int, deltas: Tensor, boxes: list[Tensor], image_shapes) -> list[Tensor]:
        decoded = self.stage_coders[t].decode(deltas, boxes).reshape(-1, 4)
        out = decoded.split([len(b) for b in boxes])
        return [box_ops.clip_boxes_to_image(b, s) for b, s in zip(out, image_shapes, strict=True)]

    def forward(self, features, proposals, image_shapes, targets=None):  # type: ignore[override]
        if self.training:
            return self._forward_train(features, proposals, image_shapes, targets)
        boxes, probs = proposals, []
        for t in range(self.num_stages):
            logits, deltas = self._run_stage(t, features, boxes, image_shapes)
            probs.append(F.softmax(logits, -1))
            boxes = self._refine(t, deltas, boxes, image_shapes)
        scores = torch.stack(probs).mean(0).split([len(b) for b in boxes])
        result = [self._detections(b, s) for b, s in zip(boxes, scores, strict=True)]
        if self.has_mask():
            masks = self._mask_logits(features, [r["boxes"] for r in result], image_shapes)
            for prob, r in zip(maskrcnn_inference(masks, [r["labels"] for r in result]), result, strict=True):
                r["masks"] = prob
        return result, {}

    def _forward_train(self, features, proposals, image_shapes, targets):
        if targets is None:
            raise ValueError("targets should not be None in training")
        losses: dict[str, Tensor] = {}
        boxes = proposals
        for t in range(self.num_stages):
            rois, matched, labels, deltas_target = self._sample(t, [b.detach() for b in boxes], targets)
            logits, deltas = self._run_stage(t, features, rois, image_shapes)
            loss_cls, loss_box = _agnostic_loss(logits, deltas, torch.cat(labels), deltas_target)
            w = self.stage_loss_weights[t]
            losses[f"loss_classifier_stage{t + 1}"] = w * loss_cls
            losses[f"loss_box_reg_stage{t + 1}"] = w * loss_box
            boxes = self._refine(t, deltas.detach(), rois, image_shapes)
        if self.has_mask():  # on the last stage's sampled RoIs
            pos = [torch.where(lab > 0)[0] for lab in labels]
            mask_rois = [r[p] for r, p in zip(rois, pos, strict=True)]
            logits = self._mask_logits(features, mask_rois, image_shapes)
            losses["loss_mask"] = maskrcnn_loss(
                logits,
                mask_rois,
                [tg["masks"] for tg in targets],
                [tg["labels"] for tg in targets],
                [m[p] for m, p in zip(matched, pos, strict=True)],
            )
        return [], losses

    def _mask_logits(self, features, boxes: list[Tensor], image_shapes) -> Tensor:
        return self.mask_predictor(self.mask_head(self.mask_roi_pool(features, boxes, image_shapes)))

    def _detections(self, boxes: Tensor, scores: Tensor) -> dict[str, Tensor]:
        """torchvision's postprocess_detections for class-agnostic boxes: every foreground class of a box
        is a candidate; score threshold, tiny-box removal, per-class NMS, top ``detections_per_img``."""
        num_classes = scores.shape[1]
        labels = torch.arange(1, num_classes, device=scores.device).expand(len(boxes), -1).reshape(-1)
        boxes = boxes[:, None].expand(-1, num_classes - 1, -1).reshape(-1, 4)
        scores = scores[:, 1:].reshape(-1)
        keep = torch.where(scores > self.score_thresh)[0]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = box_ops.remove_small_boxes(boxes, min_size=1e-2)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = box_ops.batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
        return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


def switch_cascade(model: nn.Module, iteration: int, start_iter: int, total: int) -> None:
    """Run ``model``'s later cascade stages from training iteration ``start_iter`` of ``total`` on (0:
    always); no-op for other models. A start at or past the end is refused: the saved model would have
    stages that never trained, which evaluation runs."""
    if not isinstance(model.roi_heads, CascadeRoIHeads):
        return
    if start_iter >= total:
        raise ValueError(
            f"model.cascade.start_iter={start_iter} is not before the end of the schedule ({total} iterations)"
        )
    model.roi_heads.cascade_on = iteration >= start_iter


def _agnostic_loss(logits: Tensor, deltas: Tensor, labels: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """torchvision's fastrcnn_loss with one box per RoI: cross-entropy, and smooth L1 (beta 1/9) on the
    foreground RoIs normalised by the number of RoIs."""
    loss_cls = F.cross_entropy(logits, labels)
    pos = torch.where(labels > 0)[0]
    loss_box = F.smooth_l1_loss(deltas[pos], targets[pos], beta=1 / 9, reduction="sum") / labels.numel()
    return loss_cls, loss_box
