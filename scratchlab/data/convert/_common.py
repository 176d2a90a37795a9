"""Shared pieces of the converters: the in-memory records, geometry helpers and the COCO writer."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..image_io import ImageInfo, ImageLoadError, image_info

ELLIPSE_POINTS = 32  # vertices of the polygon that stands for a circle or an ellipse
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})


class ConvertError(ValueError):
    """Bad or inconsistent source annotations; the message names the file and the record."""


@dataclass
class Obj:
    """One annotated object in image pixel coordinates (already clipped to the image)."""

    category: str
    bbox: list[float]  # COCO [x, y, w, h]
    area: float
    # COCO polygons, a compressed RLE dict {"size": [h, w], "counts": str}, or None for a box-only object
    segmentation: list[list[float]] | dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. {"difficult": 1} from VOC


@dataclass
class Record:
    """One image: its path relative to the image root, displayed size and objects."""

    file_name: str
    width: int
    height: int
    objects: list[Obj] = field(default_factory=list)


@dataclass
class Source:
    """What a reader hands to the writer."""

    image_root: Path
    records: list[Record]
    # Every class name in id order (YOLO: index i is id i + 1), or None = the names that occur, sorted.
    categories: list[str] | None = None
    warnings: list[str] = field(default_factory=list)
    splits: dict[str, list[str]] = field(default_factory=dict)  # the dataset's own split: file names
    category_fields: dict[str, Any] = field(default_factory=dict)  # added to every category (keypoints)


def read_image_info(path: Path) -> ImageInfo:
    """Header size after EXIF orientation; an unreadable file becomes a ConvertError naming it."""
    try:
        return image_info(path)
    except ImageLoadError as err:
        raise ConvertError(str(err)) from err


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (by extension, case-insensitive), sorted for determinism."""
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def finite(value: Any, what: str) -> float:
    """``value`` as a finite float, or a ConvertError saying ``what`` it was meant to be."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConvertError(f"{what}: {value!r} is not a number") from None
    if not math.isfinite(x) or isinstance(value, bool):
        raise ConvertError(f"{what}: {value!r} is not a finite number")
    return x


def clip_xyxy(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> list[float] | None:
    """Clip a box to the image and return COCO ``[x, y, w, h]``, or None when nothing is left."""
    x0, x1 = min(max(x0, 0.0), w), min(max(x1, 0.0), w)
    y0, y1 = min(max(y0, 0.0), h), min(max(y1, 0.0), h)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return [x0, y0, x1 - x0, y1 - y0]


def polygon_object(
    category: str, xs: list[float], ys: list[float], w: int, h: int, extra: dict[str, Any] | None = None
) -> Obj | None:
    """An object from one polygon: points clipped to the image, bbox from the clipped points and the
    shoelace area (COCO's own `area` comes from the rasterised mask; the difference is sub-pixel-ish).
    None when the clipped polygon has no extent."""
    xs = [min(max(x, 0.0), w) for x in xs]
    ys = [min(max(y, 0.0), h) for y in ys]
    box = clip_xyxy(min(xs), min(ys), max(xs), max(ys), w, h)
    if box is None:
        return None
    area = 0.5 * abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs))))
    flat = [round(v, 2) for xy in zip(xs, ys, strict=True) for v in xy]
    return Obj(category, box, area, [flat], dict(extra or {}))


def ellipse_points(
    cx: float, cy: float, rx: float, ry: float, theta: float = 0.0, n: int = ELLIPSE_POINTS
) -> tuple[list[float], list[float]]:
    """``n`` vertices of an ellipse (a circle when ``rx == ry``) rotated by ``theta`` radians."""
    ts = [2 * math.pi * i / n for i in range(n)]
    xs = [cx + rx * math.cos(t) * math.cos(theta) - ry * math.sin(t) * math.sin(theta) for t in ts]
    ys = [cy + rx * math.cos(t) * math.sin(theta) + ry * math.sin(t) * math.cos(theta) for t in ts]
    return xs, ys


def merge_objects(parts: list[Obj]) -> Obj:
    """One object made of several polygons (an instance drawn in pieces): the union box, the summed
    area and every polygon, as COCO stores a multi-part instance. Box-only when any part is."""
    x0 = min(o.bbox[0] for o in parts)
    y0 = min(o.bbox[1] for o in parts)
    x1 = max(o.bbox[0] + o.bbox[2] for o in parts)
    y1 = max(o.bbox[1] + o.bbox[3] for o in parts)
    polygons = None
    if all(isinstance(o.segmentation, list) for o in parts):
        polygons = [poly for o in parts for poly in o.segmentation]
    return Obj(
        parts[0].category,
        [x0, y0, x1 - x0, y1 - y0],
        sum(o.area for o in parts),
        polygons,
        dict(parts[0].extra),
    )


def box_object(category: str, box: list[float], extra: dict[str, Any] | None = None) -> Obj:
    """An object from a clipped COCO box, with no mask."""
    return Obj(category, box, box[2] * box[3], None, dict(extra or {}))


def ensure_outside(out: Path, src: Path) -> None:
    """Refuse an output folder inside the source: converting must never write into SRC."""
    o, s = out.resolve(), src.resolve()
    if o == s or s in o.parents:
        raise ConvertError(f"--out {out} is inside the source folder {src}; the source is never written to")


def _r(v: float) -> float:
    return round(float(v), 3)


def build_coco(source: Source) -> dict[str, Any]:
    """COCO dict: images sorted by file_name with ids 1..N, annotations ids 1..M, categories with ids
    1..K in the source's order (sorted by name when it has none) — so the same source always gives the
    same file."""
    names = source.categories
    if names is None:
        names = sorted({o.category for r in source.records for o in r.objects})
    cat_ids = {n: i + 1 for i, n in enumerate(names)}
    images, anns = [], []
    for img_id, rec in enumerate(sorted(source.records, key=lambda r: r.file_name), start=1):
        images.append({"id": img_id, "file_name": rec.file_name, "width": rec.width, "height": rec.height})
        for obj in rec.objects:
            ann: dict[str, Any] = {
                "id": len(anns) + 1,
                "image_id": img_id,
                "category_id": cat_ids[obj.category],
                "bbox": [_r(v) for v in obj.bbox],
                "area": _r(obj.area),
                "iscrowd": 0,
            }
            if obj.segmentation is not None:
                ann["segmentation"] = obj.segmentation
            ann.update(obj.extra)
            anns.append(ann)
    return {
        # pycocotools' loadRes copies "info"/"licenses" in some versions, so they are always present.
        "info": {"description": "converted by scratchlab.data.convert"},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": [
            {"id": i, "name": n, "supercategory": "", **source.category_fields} for n, i in cat_ids.items()
        ],
    }


def subset_coco(coco: dict[str, Any], file_names: set[str]) -> dict[str, Any]:
    """The images named ``file_names`` and their annotations; every category is kept so ids agree."""
    keep = {i["id"] for i in coco["images"] if i["file_name"] in file_names}
    return {
        **coco,
        "images": [i for i in coco["images"] if i["id"] in keep],
        "annotations": [a for a in coco["annotations"] if a["image_id"] in keep],
    }


def split_coco(coco: dict[str, Any], val_fraction: float, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A seeded split by image into (train, val); both keep every category so class ids agree."""
    if not 0.0 < val_fraction < 1.0:
        raise ConvertError(f"--split must be a fraction strictly between 0 and 1, got {val_fraction}")
    ids = [img["id"] for img in coco["images"]]
    if len(ids) < 2:
        raise ConvertError(f"cannot split {len(ids)} image(s) into a train and a val set")
    n_val = min(max(round(val_fraction * len(ids)), 1), len(ids) - 1)
    order = list(ids)
    random.Random(seed).shuffle(order)
    val_ids = set(order[:n_val])

    def part(keep: set[int]) -> dict[str, Any]:
        return {
            **coco,
            "images": [i for i in coco["images"] if i["id"] in keep],
            "annotations": [a for a in coco["annotations"] if a["image_id"] in keep],
        }

    return part(set(ids) - val_ids), part(val_ids)
