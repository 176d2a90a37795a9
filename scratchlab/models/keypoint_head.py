"""Keypoint R-CNN's keypoint head with a norm after each conv (GN-all reaches the keypoint head too).

torchvision's :class:`~torchvision.models.detection.keypoint_rcnn.KeypointRCNNHeads` is Detectron's
``add_roi_pose_head_v1convX`` (8 x conv3x3 512, ReLU) without a norm option; this is the same stack with
``norm_layer`` between each conv and its ReLU (the conv then has no bias, as in the GN box and mask
heads). Without a norm it *is* torchvision's module, so torchvision keypoint checkpoints load key for key.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNHeads

from .norm import NormFactory

__all__ = ["keypoint_head"]


def keypoint_head(in_channels: int, layers: list[int], norm_layer: NormFactory | None) -> nn.Module:
    """``len(layers)`` conv3x3 (+ norm) + ReLU blocks, MSRA-initialised (Detectron KRCNN.CONV_INIT)."""
    if norm_layer is None:
        return KeypointRCNNHeads(in_channels, layers)
    blocks: list[nn.Module] = []
    for width in layers:
        conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        blocks += [conv, norm_layer(width), nn.ReLU(inplace=True)]
        in_channels = width
    return nn.Sequential(*blocks)
