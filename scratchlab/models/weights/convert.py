"""What every source loader returns: the tensors renamed to scratchlab's names (torchvision's ResNet and
detection modules), and what the loader learnt about how they were trained."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from torch import Tensor

__all__ = ["Converted", "Convention", "TORCHVISION", "CAFFE2_MSRA", "CAFFE2_FAIR", "norm_kind"]


@dataclass(frozen=True)
class Convention:
    """The input a backbone was trained on and where its bottlenecks stride, in scratchlab's terms:
    ``pixel_mean``/``pixel_std`` as ``input.pixel_mean``/``input.pixel_std`` (RGB images in [0, 1]);
    ``stride_in_1x1`` as ``model.backbone.stride_in_1x1``."""

    name: str
    pixel_mean: tuple[float, float, float]
    pixel_std: tuple[float, float, float]
    stride_in_1x1: bool


# torchvision and timm ResNets: RGB in [0, 1] normalised by the ImageNet mean/std, stride in the 3x3.
TORCHVISION = Convention(
    "torchvision/timm (RGB, ImageNet mean/std)", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), False
)
# Detectron's Caffe2 models take BGR images in 0-255 minus a mean, no std (the loaders flip conv1 to RGB,
# so only mean/std remain to set): x*255 - mean  ==  (x - mean/255) / (1/255).
_C2_MEAN_BGR = (102.9801, 115.9465, 122.7717)
_C2_MEAN = tuple(round(v / 255, 6) for v in reversed(_C2_MEAN_BGR))
_C2_STD = (round(1 / 255, 6),) * 3
# MSRA's original ResNets (R-50.pkl, R-101.pkl; BN folded into an affine) stride in the 1x1 conv;
# FAIR's (R-50-GN.pkl, X-101-*) in the 3x3, as torchvision (Detectron's RESNETS.STRIDE_1X1).
CAFFE2_MSRA = Convention("Caffe2 MSRA (BGR 0-255, stride in 1x1)", _C2_MEAN, _C2_STD, True)  # type: ignore[arg-type]
CAFFE2_FAIR = Convention("Caffe2 FAIR (BGR 0-255, stride in 3x3)", _C2_MEAN, _C2_STD, False)  # type: ignore[arg-type]

_NORM_KEY = re.compile(r"(^|\.)(bn\d|downsample\.1)\.(weight|running_mean)$")


def norm_kind(state: dict[str, Tensor]) -> str | None:
    """``"BN"`` when the norm layers carry running statistics, ``"GN"`` when they have only an affine
    (GroupNorm), ``None`` when the file has no norm layers (keys in scratchlab's naming)."""
    found = {m.group(3) for k in state if (m := _NORM_KEY.search(k))}
    if "running_mean" in found:
        return "BN"
    return "GN" if "weight" in found else None


@dataclass
class Converted:
    """``state`` in scratchlab's names; ``fmt`` names the source format; ``norm`` what its norm layers are
    ("BN": statistics, "GN": affine only, "BN-folded": Caffe2 affine whose statistics the loader set so
    that FrozenBN computes exactly that affine); ``convention`` the input and stride the weights expect
    (None: they were trained by scratchlab with this run's own settings); ``notes`` go into the log."""

    state: dict[str, Tensor]
    fmt: str
    norm: str | None
    convention: Convention | None
    notes: list[str] = field(default_factory=list)
