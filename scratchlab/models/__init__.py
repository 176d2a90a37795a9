"""Detection models: Mask / Faster / Keypoint / Cascade R-CNN on ResNet, ResNeXt or Swin-T FPN backbones,
from torchvision, configured by ``cfg.model``.

Public entry points: :func:`build_model` (the detector), :func:`build_backbone_body` (the backbone body
alone, for classification pre-training) and :func:`load_init` (``model.init``: random, torchvision
weights or a weights file) and :func:`describe_init` (its provenance).
"""

from .cascade import switch_cascade
from .detector import ResNetFPN, TrainNoResizeTransform, build_model, model_label
from .norm import freeze_batchnorm, norm_factory, resolve_part_norm
from .resnet import ResNetBody, build_backbone_body, freeze_stages
from .weights import describe_init, load_init, load_state

__all__ = [
    "ResNetBody",
    "ResNetFPN",
    "TrainNoResizeTransform",
    "build_backbone_body",
    "build_model",
    "describe_init",
    "freeze_batchnorm",
    "freeze_stages",
    "load_init",
    "load_state",
    "model_label",
    "norm_factory",
    "resolve_part_norm",
    "switch_cascade",
]
