"""Instances drawn on an image with torchvision's ``draw_segmentation_masks`` and
``draw_bounding_boxes``: what ``scratchlab predict`` (detections) and ``scratchlab data show`` (ground
truth) write, so both look the same. A class keeps its colour across images."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image
from torchvision.utils import draw_bounding_boxes, draw_keypoints, draw_segmentation_masks

__all__ = [
    "PALETTE",
    "class_color",
    "count_phrase",
    "refuse_input_folder",
    "draw_instances",
    "save_image",
    "to_uint8",
    "unique_path",
]

# Tableau's 10 + 10 light colours: distinct, readable under white label text.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
)


# A TrueType font, so captions can grow with the image (PIL's built-in bitmap font is ~10 px whatever
# the size, unreadable on a phone photo): matplotlib, a dependency already, ships DejaVu Sans.
CAPTION_FONT = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")


def caption_size(height: int, width: int) -> int:
    """Caption font size in pixels: Detectron2's Visualizer rule (sqrt(area) / 90, at least 10)."""
    return max(10, round((height * width) ** 0.5 / 90))


def class_color(label: int) -> tuple[int, int, int]:
    """The colour of contiguous label ``label`` (1..K)."""
    return PALETTE[(int(label) - 1) % len(PALETTE)]


def to_uint8(image: torch.Tensor | Image.Image) -> torch.Tensor:
    """A [3, H, W] uint8 tensor from a PIL image or a float [0, 1] / uint8 tensor."""
    if isinstance(image, Image.Image):
        return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)
    image = image.as_subclass(torch.Tensor)  # a tv_tensors.Image would carry its metadata through ops
    if image.dtype == torch.uint8:
        return image
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def draw_instances(
    image: torch.Tensor | Image.Image,
    boxes: torch.Tensor,
    labels: Sequence[int],
    captions: Sequence[str],
    masks: torch.Tensor | None = None,
    mask_alpha: float = 0.45,
    keypoints: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return ``image`` with each instance's mask (if given), box and caption drawn in its class colour.

    ``boxes``: [N, 4] XYXY pixels; ``labels``: N contiguous class labels (they pick colours);
    ``captions``: N texts (class name, and score for detections); ``masks``: [N, H, W] bool or None;
    ``keypoints``: [N, K, 2 or 3] pixel coordinates (a Keypoint R-CNN's), drawn as dots, or None.
    """
    canvas = to_uint8(image)
    colors = [class_color(label) for label in labels]
    if len(boxes) == 0:
        return canvas
    if masks is not None and len(masks):
        canvas = draw_segmentation_masks(
            canvas, masks.as_subclass(torch.Tensor).bool(), alpha=mask_alpha, colors=colors
        )
    width = max(1, round(min(canvas.shape[-2:]) / 250))
    if keypoints is not None and len(keypoints):
        points = keypoints.as_subclass(torch.Tensor)[..., :2].float()
        canvas = draw_keypoints(canvas, points, colors="white", radius=max(1, width + 1))
    return draw_bounding_boxes(
        canvas,
        boxes.as_subclass(torch.Tensor).float(),
        labels=list(captions),
        colors=colors,
        width=width,
        font=CAPTION_FONT,
        font_size=caption_size(*canvas.shape[-2:]),
        label_colors="white",
        label_background_colors=colors,
        fill_labels=True,
    )


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write a [3, H, W] uint8 tensor; the format follows the suffix (PNG, JPEG, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)
    return path


def count_phrase(names: Sequence[str]) -> str:
    """``["dog", "cat", "dog"]`` -> ``"2 dog, 1 cat"`` (most frequent first)."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def refuse_input_folder(out_dir: str | Path, inputs: Iterable[str | Path], command: str) -> None:
    """Refuse an ``--out`` that is the folder of an input image (or an input folder): the drawn copies,
    named as the images are, would overwrite the user's pictures."""
    out = Path(out_dir).resolve()
    for item in map(Path, inputs):
        resolved = item.resolve()
        if (resolved if resolved.is_dir() else resolved.parent) == out:
            raise ValueError(
                f"{command}: --out {out_dir} holds the input images ({item}); the drawn copies would "
                "overwrite them: give another --out"
            )


def unique_path(out_dir: Path, name: str, taken: set[str]) -> Path:
    """``out_dir / name``, with ``_1``, ``_2``, ... before the suffix when an earlier image of this run
    (``taken``, updated) already has that name: two folders may both hold ``0001.jpg``."""
    stem, suffix = Path(name).stem, Path(name).suffix or ".png"
    candidate, k = stem + suffix, 0
    while candidate in taken:
        k += 1
        candidate = f"{stem}_{k}{suffix}"
    taken.add(candidate)
    return Path(out_dir) / candidate
