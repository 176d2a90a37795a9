"""Training and test transforms on ``torchvision.transforms.v2`` with tv_tensors (boxes and masks move
with the image).

Training resizes here (scale jitter) and the model does not resize again; at test time the image is
passed at its original size and the model resizes to ``input.min_size_test`` and maps predictions back,
as torchvision's detectors do, so evaluation is always in original-image coordinates.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

__all__ = [
    "build_transforms",
    "RandomLongSideResize",
    "RandomCropUpTo",
    "PadTo",
    "RandomHorizontalFlipKeypoints",
]

# Per-instance target fields that are not tv_tensors the v2 ops know to filter: SanitizeBoundingBoxes
# drops their rows together with the boxes it drops.
_INSTANCE_FIELDS = ("labels", "keypoints", "keypoints_visibility")


class RandomLongSideResize(v2.Transform):
    """Resize so the long side is ``U(low, high)`` pixels, keeping the aspect ratio (MMDetection's
    ``Resize(img_scale=(s, s), ratio_range=..., keep_ratio=True)``, the direct pre-training stage 1)."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = float(low), float(high)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        long_side = self.low + (self.high - self.low) * float(torch.rand(()))
        h, w = v2.query_size(flat_inputs)
        scale = long_side / max(h, w)
        return {"size": [max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.resize, inpt, size=params["size"], antialias=True)


class RandomCropUpTo(v2.Transform):
    """A random ``size`` x ``size`` crop, or the whole side where the image is smaller (MMDetection's
    RandomCrop: ``min(crop, image)`` per side, no padding here)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        ch, cw = min(self.size, h), min(self.size, w)
        top = int(torch.randint(0, h - ch + 1, ()))
        left = int(torch.randint(0, w - cw + 1, ()))
        return {"top": top, "left": left, "height": ch, "width": cw}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return self._call_kernel(F.crop, inpt, **params)


class PadTo(v2.Transform):
    """Pad right and bottom to ``size`` x ``size``; the image with ``fill`` (the pixel mean, which the
    model's normalisation maps to 0: MMDetection pads *after* Normalize), masks with 0."""

    def __init__(self, size: int, fill: list[float]) -> None:
        super().__init__()
        self.size, self.fill = int(size), [float(v) for v in fill]

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        return {"padding": [0, 0, max(0, self.size - w), max(0, self.size - h)]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        fill = self.fill if isinstance(inpt, tv_tensors.Image) else 0
        return self._call_kernel(F.pad, inpt, padding=params["padding"], fill=fill)


class RandomHorizontalFlipKeypoints(v2.Transform):
    """Horizontal flip with probability ``p`` that also swaps mirrored keypoints (left <-> right).

    The image, boxes, masks and keypoint coordinates flip as in ``v2.RandomHorizontalFlip`` (the same one
    ``torch.rand(1)`` draw decides); then the keypoints and their ``keypoints_visibility`` are reordered by
    ``flip`` (index of each keypoint's mirror, :func:`scratchlab.data.keypoints.flip_index`): after a flip
    the left eye is where a right eye would be, so it must be labelled right eye.
    """

    def __init__(self, p: float, flip: list[int]) -> None:
        super().__init__()
        self.p, self.flip = float(p), list(flip)
        self._always = v2.RandomHorizontalFlip(1.0)

    def forward(self, *inputs: Any) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        if torch.rand(1) >= self.p:
            return sample
        image, target = self._always(sample)
        target = dict(target)
        if "keypoints" in target:
            kp = target["keypoints"]
            target["keypoints"] = tv_tensors.wrap(kp[:, self.flip], like=kp)
            target["keypoints_visibility"] = target["keypoints_visibility"][:, self.flip]
        return image, target


def _instance_fields(sample: Any) -> tuple[torch.Tensor, ...]:
    """The per-instance fields of ``(image, target)`` that SanitizeBoundingBoxes must filter with the boxes."""
    target = sample[1]
    return tuple(target[k] for k in _INSTANCE_FIELDS if k in target)


def build_transforms(input_cfg, train: bool, keypoint_flip: list[int] | None = None) -> v2.Compose:
    """Return the v2 pipeline for ``train`` or test, configured by the ``input`` config node.

    Train, normal recipe: short side chosen from ``min_size_train`` (capped by ``max_size_train``),
    horizontal flip. Train with ``crop_size`` (direct detection pre-training stage 1, as
    wxzs5/direct-pretraining's coco_instance_direct_size448.py): long side resized to
    ``crop_size * U(scale_jitter)``, a crop of at most ``crop_size`` square, flip, and after conversion to
    float a pad to ``crop_size`` square with the pixel mean. ``keypoint_flip`` (a keypoint dataset's flip
    index) makes the flip swap left and right keypoints.
    """
    ops: list = [v2.ToImage()]
    crop = int(input_cfg.crop_size) if train and input_cfg.crop_size else None
    if train:
        if crop:
            lo, hi = input_cfg.scale_jitter or (1.0, 1.0)
            ops += [RandomLongSideResize(crop * float(lo), crop * float(hi)), RandomCropUpTo(crop)]
        else:
            sizes = input_cfg.min_size_train
            sizes = [int(sizes)] if isinstance(sizes, int | float) else [int(s) for s in sizes]
            ops.append(v2.RandomShortestSize(sizes, max_size=int(input_cfg.max_size_train)))
        if input_cfg.hflip_prob > 0 and keypoint_flip is not None:
            ops.append(RandomHorizontalFlipKeypoints(float(input_cfg.hflip_prob), keypoint_flip))
        elif input_cfg.hflip_prob > 0:
            ops.append(v2.RandomHorizontalFlip(float(input_cfg.hflip_prob)))
        # Crops and resizes can leave empty or sub-pixel boxes; drop them (and their masks, labels,
        # keypoints).
        getter = _instance_fields if keypoint_flip is not None else "default"
        ops.append(v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=getter))
    ops.append(v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True))
    if crop:
        ops.append(PadTo(crop, list(input_cfg.pixel_mean)))
    return v2.Compose(ops)
