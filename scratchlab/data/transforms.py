"""Training and test transforms on ``torchvision.transforms.v2`` with tv_tensors (boxes and masks move
with the image).

Training resizes here (scale jitter) and the model does not resize again; at test time the image is
passed at its original size and the model resizes to ``input.min_size_test`` and maps predictions back,
as torchvision's detectors do, so evaluation is always in original-image coordinates.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

__all__ = ["build_transforms"]


def build_transforms(input_cfg, train: bool) -> v2.Compose:
    """Return the v2 pipeline for ``train`` or test, configured by the ``input`` config node.

    Train, normal recipe: short side chosen from ``min_size_train`` (capped by ``max_size_train``),
    horizontal flip. Train with ``crop_size`` (direct detection pre-training, Li et al. 2021): short side
    resized to ``crop_size * U(scale_jitter)``, then a ``crop_size`` square random crop, flip.
    """
    ops: list = [v2.ToImage()]
    if train:
        if input_cfg.crop_size:
            crop = int(input_cfg.crop_size)
            lo, hi = (input_cfg.scale_jitter or (1.0, 1.0))
            ops += [
                v2.RandomResize(int(round(crop * lo)), int(round(crop * hi)) + 1),
                v2.RandomCrop(crop, pad_if_needed=True),
            ]
        else:
            sizes = input_cfg.min_size_train
            sizes = [int(sizes)] if isinstance(sizes, int | float) else [int(s) for s in sizes]
            ops.append(v2.RandomShortestSize(sizes, max_size=int(input_cfg.max_size_train)))
        if input_cfg.hflip_prob > 0:
            ops.append(v2.RandomHorizontalFlip(float(input_cfg.hflip_prob)))
        # Crops and resizes can leave empty or sub-pixel boxes; drop them (and their masks, labels).
        ops.append(v2.SanitizeBoundingBoxes(min_size=1.0))
    ops.append(v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True))
    return v2.Compose(ops)
