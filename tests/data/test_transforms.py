import pytest
import torch
from torchvision import tv_tensors

from scratchlab.config import load_config
from scratchlab.data.transforms import build_transforms


def _sample(h: int, w: int):
    image = tv_tensors.Image(torch.randint(0, 256, (3, h, w), dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[0.0, 0.0, w / 2, h / 2], [w / 4, h / 4, w - 1.0, h - 1.0]]),
        format="XYXY",
        canvas_size=(h, w),
    )
    masks = tv_tensors.Mask(torch.ones(2, h, w, dtype=torch.uint8))
    return image, {"boxes": boxes, "masks": masks, "labels": torch.tensor([1, 2])}


def test_direct_stage1_resizes_the_long_side_crops_and_pads_with_the_mean():
    cfg = load_config(None, ["input.crop_size=64", "input.scale_jitter=[0.8,1.2]", "input.hflip_prob=0"])
    pipeline = build_transforms(cfg.input, train=True)
    torch.manual_seed(0)
    for _ in range(5):
        image, target = pipeline(*_sample(40, 160))  # landscape 4:1: long side -> 51..77, short 13..19
        assert tuple(image.shape[-2:]) == (64, 64)
        mean = torch.tensor(cfg.input.pixel_mean).view(3, 1, 1)
        # Rows below the resized short side are padding: the mean, i.e. 0 after the model normalises.
        assert torch.allclose(image[:, 24:, :], mean.expand(3, 40, 64))
        assert not target["masks"][:, 24:, :].any()
        assert target["boxes"][:, 3].max() <= 20


def test_long_side_scale_follows_the_jitter():
    cfg = load_config(None, ["input.crop_size=200", "input.scale_jitter=[0.5,0.5]", "input.hflip_prob=0"])
    image, target = build_transforms(cfg.input, train=True)(*_sample(50, 400))
    # long side 400 -> 100, short 50 -> 13 (rounded); no crop needed; padded to 200 x 200.
    content = (image != torch.tensor(cfg.input.pixel_mean).view(3, 1, 1)).any(dim=0)
    ys, xs = torch.nonzero(content, as_tuple=True)
    assert xs.max() < 100 and ys.max() < 13
    assert target["boxes"][1].tolist() == pytest.approx([25.0, 3.25, 99.75, 12.4375], abs=0.6)
