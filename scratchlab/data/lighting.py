"""AlexNet-style PCA lighting noise (Krizhevsky et al. 2012), as fb.resnet.torch's ``Lighting``: add to
every pixel of an RGB image in [0, 1] the ImageNet pixel covariance's eigenvectors weighted by their
eigenvalues times N(0, ``alpha_std``) draws, one draw per image. torchvision has no such transform."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["PCALighting"]

# fb.resnet.torch datasets/imagenet.lua pca: of ImageNet's RGB pixels in [0, 1].
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


class PCALighting(nn.Module):
    """Shift a [3, H, W] float image by ``eigvec @ (alpha * eigval)``, alpha ~ N(0, ``alpha_std``)."""

    def __init__(self, alpha_std: float) -> None:
        super().__init__()
        if alpha_std < 0:
            raise ValueError(f"PCA lighting alpha_std must be >= 0, got {alpha_std}")
        self.alpha_std = float(alpha_std)
        self.register_buffer("eigval", torch.tensor(IMAGENET_EIGVAL))
        self.register_buffer("eigvec", torch.tensor(IMAGENET_EIGVEC))

    def forward(self, image: Tensor) -> Tensor:
        if image.shape[-3] != 3 or not image.is_floating_point():
            raise ValueError(f"PCA lighting needs a float RGB image [3, H, W], got {tuple(image.shape)}")
        alpha = torch.randn(3) * self.alpha_std
        shift = self.eigvec @ (alpha * self.eigval)
        return image + shift.to(image.dtype)[:, None, None]
