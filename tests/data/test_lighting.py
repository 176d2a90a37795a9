"""PCA lighting: one shift per image along ImageNet's pixel eigenvectors, scaled by their eigenvalues."""

from __future__ import annotations

import pytest
import torch

from scratchlab.data.lighting import IMAGENET_EIGVAL, IMAGENET_EIGVEC, PCALighting


def test_every_pixel_gets_the_same_eigenvector_weighted_shift():
    image = torch.rand(3, 8, 9)
    torch.manual_seed(0)
    alpha = torch.randn(3) * 0.1
    torch.manual_seed(0)
    out = PCALighting(0.1)(image)
    # fb.resnet.torch: rgb[i] = sum_j eigvec[i][j] * alpha[j] * eigval[j]
    shift = [sum(IMAGENET_EIGVEC[i][j] * alpha[j] * IMAGENET_EIGVAL[j] for j in range(3)) for i in range(3)]
    assert torch.allclose(out - image, torch.tensor(shift)[:, None, None].expand(3, 8, 9), atol=1e-6)
    assert (out - image).abs().max() > 0


def test_zero_std_leaves_the_image_and_bad_input_is_refused():
    image = torch.rand(3, 4, 4)
    assert torch.equal(PCALighting(0.0)(image), image)
    with pytest.raises(ValueError, match="float RGB"):
        PCALighting(0.1)(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="alpha_std"):
        PCALighting(-1.0)
