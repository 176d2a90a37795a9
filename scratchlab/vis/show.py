"""``scratchlab data show``: ground truth drawn on images the way ``predict`` draws detections, to see
that a conversion is right before training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..data.coco import CocoDetection
from ..data.image_io import ImageLoadError
from .draw import count_phrase, draw_instances, refuse_input_folder, save_image, unique_path

__all__ = ["show_dataset"]


def show_dataset(
    ann_file: str | Path,
    image_root: str | Path,
    out_dir: str | Path,
    n: int = 16,
    on_image: Callable[[str], Any] | None = None,
    unreadable: list[str] | None = None,
) -> list[Path]:
    """Draw the boxes, masks and class names of the first ``n`` images of ``ann_file`` (by image id)
    into ``out_dir``; ``on_image`` receives a one-line summary per image. Returns the files written.
    An image that cannot be read is skipped, its line saying why, and its file appended to
    ``unreadable`` (when given). Crowd regions are not drawn (they are not training instances)."""
    if n < 1:
        raise ValueError(f"data show: -n must be >= 1, got {n}")
    ds = CocoDetection(ann_file, image_root, transforms=None, with_masks=True)
    refuse_input_folder(
        out_dir, [image_root, *(ds.image_root / ds.images[i]["file_name"] for i in ds.ids)], "data show"
    )
    names = {label: c.get("name", str(c["id"])) for label, c in enumerate(ds.categories, start=1)}
    out, taken, written = Path(out_dir), set(), []
    for index in range(min(n, len(ds))):
        info = ds.images[ds.ids[index]]
        try:
            image, target = ds[index]
        except ImageLoadError as exc:  # one broken file must not cost the others (as in predict)
            if unreadable is not None:
                unreadable.append(info["file_name"])
            if on_image is not None:
                on_image(f"{info['file_name']}: skipped, unreadable ({exc})")
            continue
        labels = target["labels"].tolist()
        captions = [names[label] for label in labels]
        drawn = draw_instances(image, target["boxes"], labels, captions, target["masks"])
        path = save_image(drawn, unique_path(out, Path(info["file_name"]).name, taken))
        written.append(path)
        if on_image is not None:
            what = count_phrase(captions) if labels else "no instances"
            on_image(f"{info['file_name']}: {what} -> {path}")
    return written
