"""The COCO evaluator of torchvision detection outputs: converts each image's output to COCO result
records and, once every image is processed (gathered over ranks), evaluates them
(:mod:`scratchlab.evaluation.summary`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
import torch

from ..utils.dist import all_gather_objects, get_world_size, is_main_process
from ..utils.io import write_json
from .evaluator import DatasetEvaluator
from .ground_truth import load_coco_gt
from .summary import DEFAULT_IOU_TYPES, IOU_TYPES, Metrics, evaluate_predictions, precision_recall_curves

__all__ = ["COCOEvaluator", "instances_to_coco_results"]

_log = logging.getLogger(__name__)


def _category_lookup(label_to_category_id: Mapping[int, int] | Sequence[int] | None) -> dict[int, int] | None:
    """Normalise the label mapping: a sequence lists category ids in label order (label k -> seq[k-1])."""
    if label_to_category_id is None:
        return None  # identity
    if isinstance(label_to_category_id, Mapping):
        return {int(k): int(v) for k, v in label_to_category_id.items()}
    return {i + 1: int(c) for i, c in enumerate(label_to_category_id)}


def instances_to_coco_results(
    image_id: int,
    output: Mapping[str, torch.Tensor],
    label_to_category_id: Mapping[int, int] | Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Convert one image's torchvision detection output to COCO result records.

    ``output`` has ``boxes`` [N,4] xyxy, ``scores`` [N], ``labels`` [N] (contiguous 1..K) and optionally
    ``masks`` [N,1,H,W] (or [N,H,W]) probabilities or booleans (already thresholded) and ``keypoints``
    [N,K,3], all at the original image size. Each record gets ``bbox`` (xywh floats), with masks
    ``segmentation`` (RLE of ``mask > 0.5``, counts as str) and with keypoints ``keypoints`` ([x, y, 1]
    per keypoint; the record's score is the box score, Detectron's KEYPOINT_CONFIDENCE ``bbox``).
    """
    lookup = _category_lookup(label_to_category_id)
    boxes = output["boxes"].detach().cpu().to(torch.float64).reshape(-1, 4)
    scores = output["scores"].detach().cpu().tolist()
    labels = output["labels"].detach().cpu().tolist()
    if not (len(boxes) == len(scores) == len(labels)):
        raise ValueError(
            f"image {image_id}: boxes/scores/labels lengths differ ({len(boxes)}, {len(scores)}, {len(labels)})"
        )
    boxes[:, 2:] -= boxes[:, :2]  # xyxy -> xywh
    rles: list[dict[str, Any]] | None = None
    if "masks" in output:
        masks = output["masks"].detach().cpu()
        masks = masks[:, 0] if masks.dim() == 4 else masks
        if masks.dim() != 3 or len(masks) != len(boxes):
            raise ValueError(
                f"image {image_id}: masks must be [N,1,H,W] with N={len(boxes)}, got {tuple(masks.shape)}"
            )
        binary = masks if masks.dtype == torch.bool else masks > 0.5
        # pycocotools wants an H x W x N Fortran-ordered uint8 array: a view of masks laid out so
        # (engine.inference pastes them that way), else one copy.
        rles = mask_util.encode(np.asfortranarray(binary.permute(1, 2, 0).numpy().view(np.uint8)))
        for rle in rles:
            rle["counts"] = rle["counts"].decode("utf-8")  # bytes are not JSON
    keypoints = None
    if "keypoints" in output:
        kp = output["keypoints"].detach().cpu().to(torch.float64)
        if kp.dim() != 3 or kp.shape[-1] != 3 or len(kp) != len(boxes):
            raise ValueError(
                f"image {image_id}: keypoints must be [N,K,3] with N={len(boxes)}, got {tuple(kp.shape)}"
            )
        kp[..., 2] = 1.0
        keypoints = kp.reshape(len(kp), -1).tolist()
    results = []
    for i, (box, score, label) in enumerate(zip(boxes.tolist(), scores, labels, strict=True)):
        if lookup is None:
            category_id = int(label)
        elif int(label) in lookup:
            category_id = lookup[int(label)]
        else:
            raise ValueError(f"image {image_id}: label {label} has no entry in label_to_category_id")
        rec = {"image_id": int(image_id), "category_id": category_id, "bbox": box, "score": float(score)}
        if rles is not None:
            rec["segmentation"] = rles[i]
        if keypoints is not None:
            rec["keypoints"] = keypoints[i]
        results.append(rec)
    return results


class COCOEvaluator(DatasetEvaluator):
    """COCO AP for torchvision detectors (boxes; masks too when the outputs carry them).

    ``process(targets, outputs)``: ``targets[i]["image_id"]`` names the image of ``outputs[i]``
    (a torchvision eval-mode output at the original image size). ``label_to_category_id`` maps the
    contiguous training labels 1..K to COCO category ids (a dict, or a sequence listing the category
    ids in label order); None means label == category id. Detections of a category the ground truth does
    not list are left out (nothing scores them; Detectron2's evaluator ignores them too). Only processed images are evaluated, so a
    partial pass (e.g. ``eval.max_images``) is not penalised for images it never saw. ``output_file``:
    where ``evaluate`` also writes the COCO-format detections (the main process; Detectron2's
    ``coco_instances_results.json``), e.g. for a bootstrap over the images later.
    """

    def __init__(
        self,
        coco_gt: str | Path | Mapping[str, Any],
        iou_types: Iterable[str] = DEFAULT_IOU_TYPES,
        backend: str = "faster_coco_eval",
        max_dets: int = 100,
        label_to_category_id: Mapping[int, int] | Sequence[int] | None = None,
        per_category: bool = False,
        output_file: str | Path | None = None,
        oks_sigmas: Sequence[float] | None = None,
    ) -> None:
        self.oks_sigmas = None if oks_sigmas is None else [float(v) for v in oks_sigmas]
        self.output_file = None if output_file is None else Path(output_file)
        self.iou_types = tuple(iou_types)
        for t in self.iou_types:
            if t not in IOU_TYPES:
                raise ValueError(f"unknown iou type {t!r}; expected a subset of {IOU_TYPES}")
        self.backend, self.max_dets, self.per_category = backend, max_dets, per_category
        self._gt = load_coco_gt(coco_gt, backend, require_segm="segm" in self.iou_types)
        self._lookup = _category_lookup(label_to_category_id)
        # A model's category the ground truth does not list has nothing to be scored against (COCOeval
        # scores the ground truth's categories only): its detections are left out, not an error.
        self._unscored = set() if self._lookup is None else set(self._lookup.values()) - set(self._gt.cats)
        if self._lookup and self._unscored == set(self._lookup.values()):  # a mapping for another file
            raise ValueError(
                f"label_to_category_id maps to category ids {sorted(self._unscored)}, none of them in the "
                "ground truth"
            )
        self.reset()

    def reset(self) -> None:
        """Drop all processed predictions."""
        self._image_ids: list[int] = []
        self._predictions: list[dict[str, Any]] = []
        self._has_masks: bool | None = None  # unknown until the first output

    def process(self, inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]) -> None:
        """Convert a batch of outputs to COCO records (on CPU, so GPU memory is not held)."""
        if len(inputs) != len(outputs):
            raise ValueError(f"process: {len(inputs)} targets but {len(outputs)} outputs")
        for target, output in zip(inputs, outputs, strict=True):
            if "image_id" not in target:
                raise ValueError(f"process: target has no 'image_id' (keys: {sorted(target)})")
            image_id = int(target["image_id"])
            if image_id not in self._gt.imgs:
                raise ValueError(f"process: image_id {image_id} is not in the COCO ground truth")
            has_masks = "masks" in output
            if self._has_masks is not None and has_masks != self._has_masks:
                raise ValueError(f"process: image {image_id}: some outputs have 'masks' and some do not")
            self._has_masks = has_masks
            if has_masks:
                img = self._gt.imgs[image_id]
                if tuple(output["masks"].shape[-2:]) != (img["height"], img["width"]):
                    raise ValueError(
                        f"process: image {image_id}: masks are {tuple(output['masks'].shape[-2:])}, "
                        f"the image is {(img['height'], img['width'])} (map outputs to the original size)"
                    )
            records = instances_to_coco_results(image_id, output, self._lookup)
            records = [r for r in records if r["category_id"] not in self._unscored]
            for rec in records:
                if rec["category_id"] not in self._gt.cats:
                    raise ValueError(
                        f"process: image {image_id}: category id {rec['category_id']} not in the GT"
                    )
            self._image_ids.append(image_id)
            self._predictions.extend(records)

    def _gather(self) -> tuple[list[int], list[dict[str, Any]]]:
        """All processed image ids and COCO records. Under torch.distributed every rank gets the union
        of all ranks' shares (so any rank can report the same metrics); on one process, its own state."""
        if get_world_size() == 1:
            return self._image_ids, self._predictions
        parts = all_gather_objects((self._image_ids, self._predictions, self._has_masks))
        self._has_masks = any(p[2] for p in parts)
        return [i for p in parts for i in p[0]], [r for p in parts for r in p[1]]

    def evaluate(self) -> Metrics:
        """``{"bbox": {...}, "segm": {...}}`` in percent; ``segm`` only when the outputs had masks."""
        image_ids, predictions = self._gather()
        if not image_ids:
            _log.warning("COCOEvaluator.evaluate: no images were processed; returning no metrics")
            return {}
        if self.output_file is not None and is_main_process():
            write_json(self.output_file, predictions)
        iou_types = [t for t in self.iou_types if t != "segm" or self._has_masks]
        return evaluate_predictions(
            self._gt,
            predictions,
            iou_types,
            backend=self.backend,
            max_dets=self.max_dets,
            img_ids=image_ids,
            per_category=self.per_category,
            oks_sigmas=self.oks_sigmas,
        )

    def precision_recall_curves(
        self, iou_type: str = "bbox", iou: float = 0.5
    ) -> dict[str, dict[str, list[float]]]:
        """:func:`precision_recall_curves` of everything processed since the last :meth:`reset`."""
        image_ids, predictions = self._gather()
        return precision_recall_curves(
            self._gt,
            predictions,
            iou_type,
            iou,
            backend=self.backend,
            max_dets=self.max_dets,
            img_ids=image_ids,
        )

    def write_results(self, path: str | Path) -> Path:
        """Dump the COCO-format detections (bbox, and segmentation when present) as JSON."""
        return write_json(path, self._gather()[1])
