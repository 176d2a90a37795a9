"""The ResNet / ResNeXt body (stem + res2..res5, no classifier) that the detector and the pre-training
share.

Built from torchvision's ResNet so that at ``width_mult=1.0`` its state-dict keys and shapes are those of
``torchvision.models.resnet50`` (minus ``fc``), and an ImageNet checkpoint loads into it unchanged.
ResNeXt is the same Bottleneck with grouped 3x3 convs (``groups`` x ``width_per_group``: X101-32x8d is
depth 101, 32 groups of 8 channels, ``torchvision.models.resnext101_32x8d``); the paper's X152 is depth
152 ([3, 8, 36, 3] blocks) with 32x8d.
"""

from __future__ import annotations

from collections import OrderedDict

from omegaconf import DictConfig
from torch import Tensor
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from .norm import NormFactory, freeze_batchnorm, norm_factory
from .swin import SwinBody

__all__ = ["DEPTHS", "ResNetBody", "build_backbone_body", "freeze_stages", "STAGE_NAMES"]

DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}

# Detectron2 stage order: freeze_at=k freezes the first k entries (1 = stem, 2 = stem + res2, ...).
STAGE_NAMES = (("conv1", "bn1"), ("layer1",), ("layer2",), ("layer3",), ("layer4",))


class ResNetBody(ResNet):
    """torchvision ResNet without ``avgpool``/``fc``; ``forward`` returns the res2..res5 feature maps.

    ``width_mult`` scales the bottleneck/basic ``planes`` of the four stages (the stem stays at 64
    channels, as in every ResNet). ``stride_in_1x1`` moves each stage's stride from the 3x3 conv
    (torchvision's "ResNet v1.5") to the first 1x1 conv of the block (the original MSRA ResNet, which
    Detectron's Caffe2 R-50.pkl / R-101.pkl were trained as). The output is an ``OrderedDict`` with keys ``"0".."3"`` (res2..res5,
    strides 4..32), the format torchvision's FeaturePyramidNetwork consumes.

    Attributes:
        stage_channels: output channels of res2..res5.
        out_channels: channels of res5 (the input width of a linear classifier on pooled features).
    """

    def __init__(
        self,
        depth: int = 50,
        width_mult: float = 1.0,
        norm_layer: NormFactory | None = None,
        zero_init_residual: bool = False,
        stride_in_1x1: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
    ) -> None:
        if depth not in DEPTHS:
            raise ValueError(f"model.backbone.depth must be one of {sorted(DEPTHS)}, got {depth}")
        if not width_mult > 0:
            raise ValueError(f"model.backbone.width_mult must be > 0, got {width_mult}")
        block, layers = DEPTHS[depth]
        if block is BasicBlock and (groups, width_per_group) != (1, 64):
            raise ValueError(
                f"ResNeXt (model.backbone.groups={groups}, width_per_group={width_per_group}) needs "
                f"a Bottleneck depth (50, 101, 152), not {depth}"
            )
        if groups < 1 or width_per_group < 1:
            raise ValueError(
                f"model.backbone.groups and width_per_group must be >= 1, got {groups}, {width_per_group}"
            )
        # Read by _make_layer, which ResNet.__init__ calls; so it must be set before super().__init__.
        self._width_mult = float(width_mult)
        # zero_init_residual: gamma of each block's last norm (bn2/bn3, GN or BN) starts at 0, so every
        # residual block starts as the identity (Goyal et al. 2017; the GN paper's ImageNet recipe).
        super().__init__(
            block,
            layers,
            norm_layer=norm_layer,
            zero_init_residual=zero_init_residual,
            groups=groups,
            width_per_group=width_per_group,
        )
        del self.avgpool, self.fc  # the detector and the pre-training head pool/classify themselves
        self.depth = depth
        self.stage_channels = [self._scaled(p) * block.expansion for p in (64, 128, 256, 512)]
        self.out_channels = self.stage_channels[-1]
        if stride_in_1x1:
            self._move_stride_to_1x1()

    def _move_stride_to_1x1(self) -> None:
        for layer in (self.layer2, self.layer3, self.layer4):
            first = layer[0]
            if not isinstance(first, Bottleneck):
                raise ValueError("model.backbone.stride_in_1x1 applies to bottleneck ResNets (depth 50, 101)")
            first.conv1.stride, first.conv2.stride = first.conv2.stride, (1, 1)

    def _scaled(self, planes: int) -> int:
        return max(1, int(round(planes * self._width_mult)))

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):  # type: ignore[override]
        return super()._make_layer(block, self._scaled(planes), blocks, stride=stride, dilate=dilate)

    def forward(self, x: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        """Return ``{"0": res2, "1": res3, "2": res4, "3": res5}`` for images ``x`` of shape (N, 3, H, W)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        # Spelled out, not a loop over a tuple of stages: TorchScript cannot call modules held in a tuple.
        res2 = self.layer1(x)
        res3 = self.layer2(res2)
        res4 = self.layer3(res3)
        res5 = self.layer4(res4)
        return OrderedDict([("0", res2), ("1", res3), ("2", res4), ("3", res5)])


def build_backbone_body(cfg: DictConfig, zero_init_residual: bool = False) -> ResNetBody | SwinBody:
    """The ResNet body configured by ``cfg.model`` (depth, width_mult, norm, gn_groups), MSRA-initialised;
    ``zero_init_residual`` starts each residual block's last gamma at 0 (classification pre-training).

    ``model.backbone.name: swin_t`` gives a :class:`~scratchlab.models.swin.SwinBody` instead (its own
    LayerNorms; ``zero_init_residual`` does not apply).

    This is the very module :func:`scratchlab.models.build_model` uses as ``backbone.body``, so its
    ``state_dict()`` loads into a detector's body with no missing key. It is *not* frozen: ``freeze_at`` is
    a detector fine-tuning setting (see :func:`freeze_stages`). ``body.out_channels`` is the res5 width.
    """
    m = cfg.model
    if str(m.backbone.name) == "swin_t":  # LayerNorm inside, whatever model.norm says for the other parts
        return SwinBody(float(m.backbone.width_mult))
    norm = norm_factory(str(m.norm), int(m.gn_groups), where="backbone (model.norm)")
    if norm is None:
        raise ValueError("model.norm must name a norm for the backbone (GN, SyncBN, BN, FrozenBN), got ''")
    b = m.backbone
    return ResNetBody(
        int(b.depth),
        float(b.width_mult),
        norm,
        zero_init_residual,
        stride_in_1x1=bool(b.stride_in_1x1),
        groups=int(b.groups),
        width_per_group=int(b.width_per_group),
    )


def freeze_stages(body: ResNetBody | SwinBody, freeze_at: int) -> ResNetBody | SwinBody:
    """Freeze the first ``freeze_at`` stages (Detectron2 semantics: 0 none, 1 stem, 2 stem + res2, ...).

    Frozen parameters get ``requires_grad=False`` and BatchNorm/SyncBN layers inside frozen stages become
    FrozenBatchNorm2d, so their statistics stop moving too. Returns ``body``.
    """
    stages = getattr(body, "stage_names", STAGE_NAMES)
    if not 0 <= int(freeze_at) <= len(stages):
        raise ValueError(f"model.backbone.freeze_at must be in 0..{len(stages)}, got {freeze_at}")
    for names in stages[: int(freeze_at)]:
        for name in names:
            module = freeze_batchnorm(body.get_submodule(name))
            body.set_submodule(name, module)
            for p in module.parameters():
                p.requires_grad_(False)
    return body
