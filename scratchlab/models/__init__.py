"""Detection models: Mask / Faster / Keypoint / Cascade R-CNN on ResNet, ResNeXt or Swin-T FPN backbones,
from torchvision, configured by ``cfg.model``.

Public entry points: :func:`build_model` (the detector), :func:`build_backbone_body` (the backbone body
alone, for classification pre-training) and :func:`load_init` (``model.init``: random, torchvision
weights or a checkpoint file).
"""

from .detector import ResNetFPN, TrainNoResizeTransform, build_model, model_label
from .init import load_init, load_state, read_checkpoint
from .norm import NORM_NAMES, freeze_batchnorm, norm_factory, resolve_part_norm
from .resnet import ResNetBody, build_backbone_body, freeze_stages

__all__ = [
    "NORM_NAMES",
    "ResNetBody",
    "ResNetFPN",
    "TrainNoResizeTransform",
    "build_backbone_body",
    "build_model",
    "freeze_batchnorm",
    "freeze_stages",
    "load_init",
    "load_state",
    "model_label",
    "norm_factory",
    "read_checkpoint",
    "resolve_part_norm",
]
