"""Mask R-CNN / Faster R-CNN / Keypoint R-CNN / Cascade (Mask) R-CNN on a ResNet, ResNeXt or Swin-T FPN
backbone, built from ``cfg.model`` and ``cfg.input``.

Everything is torchvision's detection code (the cascade stages: :mod:`scratchlab.models.cascade` on its
RoIHeads); this module only wires the parts the config chooses: the norm of each part (GN-all = GN in
backbone, FPN, 4conv1fc box head, 4conv mask head and 8conv keypoint head), widths, anchors, sampling and
NMS settings, and the initialisation (``model.init``).
"""

from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN, KeypointRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.poolers import initLevelMapper

from ..config import ARCHS, MASK_ARCHS
from .cascade import AgnosticBoxPredictor, CascadeRoIHeads
from .keypoint_head import keypoint_head
from .norm import norm_factory, resolve_part_norm
from .resnet import ResNetBody, build_backbone_body, freeze_stages
from .weights import load_init

__all__ = [
    "ARCHS",
    "ExactAnchorGenerator",
    "ResNetFPN",
    "TrainNoResizeTransform",
    "build_model",
    "model_label",
]

log = logging.getLogger(__name__)

FEATURE_NAMES = ["0", "1", "2", "3"]  # res2..res5 -> P2..P5; LastLevelMaxPool adds P6 ("pool")
FEATURE_LEVELS = [2, 3, 4, 5]  # P_k has stride 2**k
NUM_LEVELS = len(FEATURE_NAMES) + 1


def fpn_roi_align(output_size: int) -> MultiScaleRoIAlign:
    """RoIAlign over P2-P5 (``sampling_ratio`` 2) with the levels' scales fixed at 1/4..1/32, as Detectron2's
    ROIPooler takes them from the feature strides.

    Left unset, torchvision infers them at the pooler's first call, from that batch's largest unpadded image
    and its padded feature maps, rounded to a power of two: an image 67 px high padded to 96 gave 1/2 for
    P2, so every RoI of the run was pooled from the wrong place. The inferred values then stay on the
    module, outside the state dict, so a resumed run (whose first batch is another) could pool differently
    from the uninterrupted one."""
    pool = MultiScaleRoIAlign(FEATURE_NAMES, output_size=output_size, sampling_ratio=2)
    pool.scales = [2.0**-k for k in FEATURE_LEVELS]
    pool.map_levels = initLevelMapper(
        FEATURE_LEVELS[0], FEATURE_LEVELS[-1], pool.canonical_scale, pool.canonical_level
    )
    return pool


class ExactAnchorGenerator(AnchorGenerator):
    """torchvision's AnchorGenerator whose cell anchors stay the float32 ones it made at construction.

    torchvision converts its cell anchors in place to each call's feature dtype and keeps them: after one
    bfloat16 forward (``solver.amp_dtype=bfloat16``) an anchor 283 px wide (size 400, aspect 0.5) stays 284
    for every later call, float32 evaluation included, which a fresh model (``scratchlab eval`` on the saved
    weights) does not share. Here each call converts from the float32 anchors, which only follow the
    device."""

    def __init__(self, sizes, aspect_ratios) -> None:
        super().__init__(sizes, aspect_ratios)
        self.exact_cell_anchors = list(self.cell_anchors)

    def set_cell_anchors(self, dtype: torch.dtype, device: torch.device) -> None:
        self.exact_cell_anchors = [a.to(device=device) for a in self.exact_cell_anchors]
        self.cell_anchors = [a.to(dtype=dtype) for a in self.exact_cell_anchors]


class ResNetFPN(nn.Module):
    """``body`` (a :class:`ResNetBody`) followed by an FPN; P2-P6 with ``out_channels`` channels each.

    Same attribute names as torchvision's BackboneWithFPN (``body``, ``fpn``, ``out_channels``), so
    torchvision detector checkpoints map key for key.
    """

    def __init__(self, body: ResNetBody, channels: int, norm_layer=None) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(
            body.stage_channels, channels, extra_blocks=LastLevelMaxPool(), norm_layer=norm_layer
        )
        self.out_channels = channels

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.fpn(self.body(x))


class TrainNoResizeTransform(GeneralizedRCNNTransform):
    """Normalise and pad to ``size_divisible``; resize only in eval mode.

    In training the data pipeline has already chosen the scale (multi-scale short side, scale jitter and
    crops with transforms.v2); a second resize here would undo that choice. In eval mode the image is
    resized to (min_size, max_size) and predictions are mapped back to the original size (torchvision's
    ``postprocess``), as usual.
    """

    def __init__(self, min_size, max_size, image_mean, image_std, **kwargs) -> None:
        # torchvision's own switch, not an overridden resize: the model then stays scriptable
        # (TorchScript cannot compile a call through super()).
        super().__init__(min_size, max_size, image_mean, image_std, _skip_resize=True, **kwargs)


ARCH_LABELS = {
    "mask_rcnn": "Mask R-CNN",
    "faster_rcnn": "Faster R-CNN",
    "keypoint_rcnn": "Keypoint R-CNN",
    "cascade_mask_rcnn": "Cascade Mask R-CNN",
    "cascade_rcnn": "Cascade R-CNN",
}


def model_label(cfg: DictConfig) -> str:
    """``Mask R-CNN R50-FPN``, ``Cascade Mask R-CNN X152-32x8d-FPN``, ``Mask R-CNN Swin-T-FPN``: what a study
    report calls an arm's detector."""
    m = cfg.model
    b = m.backbone
    if str(b.name) == "swin_t":
        backbone = "Swin-T"
    elif int(b.groups) > 1:
        backbone = f"X{b.depth}-{b.groups}x{b.width_per_group}d"
    else:
        backbone = f"R{b.depth}"
    return f"{ARCH_LABELS[str(m.arch)]} {backbone}-FPN"


def _num_classes(cfg: DictConfig, num_classes: int | None) -> int:
    n = num_classes if num_classes is not None else cfg.model.num_classes
    if n is None:
        raise ValueError(
            "number of classes unknown: set model.num_classes or pass num_classes to build_model"
        )
    if int(n) < 1:
        raise ValueError(f"num_classes (foreground) must be >= 1, got {n}")
    return int(n)


def _box_head(cfg: DictConfig, in_channels: int, norm) -> tuple[nn.Module, int]:
    """``num_conv`` convs then ``num_fc`` fcs: GN-all's 4conv1fc, or Detectron2's default 2fc (0 conv, 2 fc)."""
    h = cfg.model.roi_box_head
    num_conv, conv_dim, fc_dim = int(h.num_conv), int(h.conv_dim), int(h.fc_dim)
    if int(h.num_fc) < 1:
        raise ValueError(f"model.roi_box_head.num_fc must be >= 1, got {h.num_fc}")
    fcs = [fc_dim] * int(h.num_fc)
    head = FastRCNNConvFCHead((in_channels, 7, 7), [conv_dim] * num_conv, fcs, norm_layer=norm)
    return head, fc_dim


def _init_box_head_fcs(box_head: nn.Module) -> None:
    # The anchors fill the box head's fc layers with Xavier (Caffe2 XavierFill in Detectron's fc6/fc7,
    # Detectron2 c2_xavier_fill): uniform with bound sqrt(3 / fan_in) = kaiming_uniform(a=1); bias 0.
    # torchvision's FastRCNNConvFCHead leaves them at PyTorch's default.
    for layer in box_head.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, a=1)
            nn.init.zeros_(layer.bias)


def _init_predictors(box_predictor: nn.Module, mask_predictor: nn.Module | None) -> None:
    # Detectron2's initialisation of the output layers: small Gaussians, so that the initial class scores
    # are near uniform and the box deltas near zero -- this matters most when everything else is random.
    nn.init.normal_(box_predictor.cls_score.weight, std=0.01)
    nn.init.normal_(box_predictor.bbox_pred.weight, std=0.001)
    nn.init.zeros_(box_predictor.cls_score.bias)
    nn.init.zeros_(box_predictor.bbox_pred.bias)
    if mask_predictor is not None:
        # The 2x2 deconv keeps torchvision's MSRA weights (= Detectron's MSRAFill); its bias starts at 0 as
        # in Detectron (const_fill(0.0)) and Detectron2 (c2_msra_fill), not at PyTorch's default.
        nn.init.zeros_(mask_predictor.conv5_mask.bias)
        logits = mask_predictor.mask_fcn_logits
        nn.init.normal_(logits.weight, std=0.001)
        nn.init.zeros_(logits.bias)


def _keypoint_parts(cfg: DictConfig, channels: int, norm) -> dict:
    """Keypoint R-CNN's RoIAlign 14x14, 8conv head and deconv + 2x upsampling predictor (56x56 heatmaps):
    Detectron's keypoint_rcnn_R-50-FPN (add_roi_pose_head_v1convX, USE_DECONV_OUTPUT, UP_SCALE 2)."""
    kh = cfg.model.roi_keypoint_head
    if kh.num_keypoints is None:
        raise ValueError(
            "model.roi_keypoint_head.num_keypoints is unset: the training set's keypoint count "
            "fills it (scratchlab train), or set it"
        )
    conv_dim = int(kh.conv_dim)
    head = keypoint_head(channels, [conv_dim] * int(kh.num_conv), norm)
    return dict(
        keypoint_roi_pool=fpn_roi_align(14),
        keypoint_head=head,
        keypoint_predictor=KeypointRCNNPredictor(
            conv_dim if int(kh.num_conv) else channels, int(kh.num_keypoints)
        ),
    )


def _cascade(cfg: DictConfig, heads: RoIHeads, channels: int, norm, n_cls: int) -> CascadeRoIHeads:
    """``heads`` (built with stage 1's head and predictor) turned into Cascade R-CNN RoI heads: one more
    roi_box_head-shaped head and class-agnostic predictor per further stage of ``model.cascade``."""
    c = cfg.model.cascade
    stages = [(heads.box_head, heads.box_predictor)]
    for _ in range(len(c.ious) - 1):
        head, dim = _box_head(cfg, channels, norm)
        predictor = AgnosticBoxPredictor(dim, n_cls)
        _init_box_head_fcs(head)
        _init_predictors(predictor, None)
        stages.append((head, predictor))
    return CascadeRoIHeads(
        heads.box_roi_pool,
        [h for h, _ in stages],
        [p for _, p in stages],
        list(c.ious),
        [list(w) for w in c.bbox_reg_weights],
        list(c.stage_loss_weights),
        heads.fg_bg_sampler.batch_size_per_image,
        heads.fg_bg_sampler.positive_fraction,
        heads.score_thresh,
        heads.nms_thresh,
        heads.detections_per_img,
        heads.mask_roi_pool,
        heads.mask_head,
        heads.mask_predictor,
    )


def build_model(cfg: DictConfig, num_classes: int | None = None) -> nn.Module:
    """Build the detector that ``cfg.model.arch`` names (``mask_rcnn`` | ``faster_rcnn`` |
    ``keypoint_rcnn`` | ``cascade_mask_rcnn`` | ``cascade_rcnn``), then apply ``cfg.model.init`` and
    ``cfg.model.backbone.freeze_at``.

    ``num_classes`` (foreground classes) overrides ``cfg.model.num_classes``; the model predicts that
    plus one background class. The load report of ``model.init`` is kept as ``model.init_report``.
    """
    m, inp = cfg.model, cfg.input
    arch = str(m.arch)
    if arch not in ARCHS:
        raise ValueError(f"model.arch must be one of {ARCHS}, got {arch!r}")
    n_cls = _num_classes(cfg, num_classes) + 1
    model_norm, groups = str(m.norm), int(m.gn_groups)

    def part_norm(key: str, part_cfg: DictConfig):
        name = resolve_part_norm(part_cfg.norm, model_norm)
        return norm_factory(name, groups, where=f"{key} (norm {name!r})")

    body = build_backbone_body(cfg)
    channels = int(m.fpn.channels)
    backbone = ResNetFPN(body, channels, norm_layer=part_norm("model.fpn", m.fpn))

    rpn = m.rpn
    if len(rpn.anchor_sizes) != NUM_LEVELS:
        raise ValueError(
            f"model.rpn.anchor_sizes needs one size per FPN level P2-P6 ({NUM_LEVELS}), got {list(rpn.anchor_sizes)}"
        )
    anchors = ExactAnchorGenerator(
        sizes=tuple((int(s),) for s in rpn.anchor_sizes),
        aspect_ratios=(tuple(float(a) for a in rpn.aspect_ratios),) * NUM_LEVELS,
    )
    # The RPN head has no norm, as in Detectron2 (GN-all normalises backbone, FPN and RoI heads).
    rpn_head = RPNHead(channels, anchors.num_anchors_per_location()[0])

    bh = m.roi_box_head
    box_head, box_dim = _box_head(cfg, channels, part_norm("model.roi_box_head", bh))
    cascade = arch.startswith("cascade")
    box_predictor = AgnosticBoxPredictor(box_dim, n_cls) if cascade else FastRCNNPredictor(box_dim, n_cls)
    kwargs = dict(
        rpn_anchor_generator=anchors,
        rpn_head=rpn_head,
        rpn_pre_nms_top_n_train=int(rpn.pre_nms_top_n_train),
        rpn_post_nms_top_n_train=int(rpn.post_nms_top_n_train),
        rpn_pre_nms_top_n_test=int(rpn.pre_nms_top_n_test),
        rpn_post_nms_top_n_test=int(rpn.post_nms_top_n_test),
        rpn_nms_thresh=float(rpn.nms_thresh),
        rpn_batch_size_per_image=int(rpn.batch_size_per_image),
        rpn_positive_fraction=float(rpn.positive_fraction),
        box_roi_pool=fpn_roi_align(7),
        box_head=box_head,
        box_predictor=box_predictor,
        box_score_thresh=float(bh.score_thresh),
        box_nms_thresh=float(bh.nms_thresh),
        box_detections_per_img=int(bh.detections_per_img),
        box_batch_size_per_image=int(bh.batch_size_per_image),
        box_positive_fraction=float(bh.positive_fraction),
    )
    mask_predictor = None
    if arch in MASK_ARCHS:
        mh = m.roi_mask_head
        conv_dim = int(mh.conv_dim)
        mask_head = MaskRCNNHeads(
            channels, [conv_dim] * int(mh.num_conv), 1, norm_layer=part_norm("model.roi_mask_head", mh)
        )
        mask_dim = conv_dim if int(mh.num_conv) > 0 else channels
        mask_predictor = MaskRCNNPredictor(mask_dim, conv_dim, n_cls)
        kwargs.update(
            mask_roi_pool=fpn_roi_align(14),
            mask_head=mask_head,
            mask_predictor=mask_predictor,
        )
        model: nn.Module = MaskRCNN(backbone, num_classes=None, **kwargs)
    elif arch == "keypoint_rcnn":
        kh = m.roi_keypoint_head
        kwargs.update(_keypoint_parts(cfg, channels, part_norm("model.roi_keypoint_head", kh)))
        model = KeypointRCNN(backbone, num_classes=None, **kwargs)
    else:
        model = FasterRCNN(backbone, num_classes=None, **kwargs)
    _init_box_head_fcs(box_head)
    _init_predictors(box_predictor, mask_predictor)
    if cascade:
        model.roi_heads = _cascade(cfg, model.roi_heads, channels, part_norm("model.roi_box_head", bh), n_cls)

    model.transform = TrainNoResizeTransform(
        int(inp.min_size_test),
        int(inp.max_size_test),
        [float(v) for v in inp.pixel_mean],
        [float(v) for v in inp.pixel_std],
        size_divisible=32,
    )
    freeze_at = int(m.backbone.freeze_at)
    freeze_stages(body, freeze_at)
    if freeze_at > 0 and str(m.init) == "random":
        log.warning(
            "model.backbone.freeze_at=%d with model.init=random freezes randomly initialised layers",
            freeze_at,
        )
    model.init_report = load_init(model, str(m.init))
    return model
