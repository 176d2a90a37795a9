"""The Swin-T body for the FPN detectors: torchvision's ``swin_t`` features with a LayerNorm on each of the
four stage outputs (MMDetection's SwinTransformer ``out_indices=(0, 1, 2, 3)``, the backbone of
wxzs5/direct-pretraining's Mask R-CNN w/ Swin).

Its ``features`` keys are torchvision's ``swin_t`` keys, so ``Swin_T_Weights.IMAGENET1K_V1`` loads into
``backbone.body`` unchanged (the four output norms are new, as in MMDetection). ``width_mult`` scales the
embedding width (96) for the mini recipes; each stage has one attention head per 32 channels (at least
one), Swin-T's 3 / 6 / 12 / 24 at full width.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn
from torchvision.models.swin_transformer import SwinTransformer

__all__ = ["SwinBody", "SWIN_T"]

# torchvision's swin_t: patch 4, embed 96, depths [2, 2, 6, 2], heads [3, 6, 12, 24], window 7, drop path 0.2.
SWIN_T = {
    "depths": [2, 2, 6, 2],
    "num_heads": [3, 6, 12, 24],
    "embed_dim": 96,
    "window_size": [7, 7],
    "stochastic_depth_prob": 0.2,
}


class SwinBody(SwinTransformer):
    """Swin-T without its classifier; ``forward`` returns the four stage outputs (strides 4..32, NCHW)
    under keys ``"0".."3"`` as :class:`~scratchlab.models.resnet.ResNetBody` does.

    ``stage_names`` lists the submodules of each freezable stage for ``freeze_at`` (1 = patch embedding,
    2 = + stage 1, ...), the ResNet stage order.
    """

    stage_names = (
        ("features.0",),
        ("features.1",),
        ("features.2", "features.3"),
        ("features.4", "features.5"),
        ("features.6", "features.7"),
    )
    # The per-stage output norms the detector adds (as Swin's detection code does): no ImageNet
    # checkpoint holds them, so a weights load leaves them at their initialisation without calling the
    # backbone partial.
    detection_only_keys = ("out_norms.",)

    def __init__(self, width_mult: float = 1.0) -> None:
        if not width_mult > 0:
            raise ValueError(f"model.backbone.width_mult must be > 0, got {width_mult}")
        embed = max(1, int(round(SWIN_T["embed_dim"] * width_mult)))
        heads = [max(1, embed * 2**i // 32) for i in range(4)]
        if any(embed * 2**i % h for i, h in enumerate(heads)):
            raise ValueError(
                f"model.backbone.width_mult={width_mult}: a Swin-T embed width of {embed} does not "
                f"split into attention heads of 32 channels ({heads})"
            )
        super().__init__(
            patch_size=[4, 4],
            embed_dim=embed,
            depths=SWIN_T["depths"],
            num_heads=heads,
            window_size=SWIN_T["window_size"],
            stochastic_depth_prob=SWIN_T["stochastic_depth_prob"],
        )
        del self.norm, self.permute, self.avgpool, self.flatten, self.head
        self.stage_channels = [embed * 2**i for i in range(4)]
        self.out_channels = self.stage_channels[-1]
        self.out_norms = nn.ModuleList(nn.LayerNorm(c) for c in self.stage_channels)

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:  # type: ignore[override]
        x = self.features[0](x)
        out: OrderedDict[str, Tensor] = OrderedDict()
        for i in range(4):
            x = self.features[1 + 2 * i](x)
            out[str(i)] = self.out_norms[i](x).permute(0, 3, 1, 2).contiguous()
            if i < 3:
                x = self.features[2 + 2 * i](x)
        return out
