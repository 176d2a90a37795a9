"""Shared by the weights tests: a narrow (quarter-width) ResNet-50 Mask R-CNN config, small enough to
build, save and load in moments, with every layer a weights file names."""

from __future__ import annotations

from scratchlab.config import load_config

NARROW = [
    "model.backbone.depth=50",
    "model.backbone.width_mult=0.25",
    "model.gn_groups=8",
    "model.fpn.channels=32",
    "model.roi_box_head.conv_dim=32",
    "model.roi_box_head.fc_dim=64",
    "model.roi_mask_head.conv_dim=32",
]


def narrow_cfg(*overrides: str):
    """The default config, narrowed, with ``overrides`` on top."""
    return load_config(None, [*NARROW, *overrides])
