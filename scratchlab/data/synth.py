"""A generated COCO instance-segmentation set of textured shapes on textured backgrounds.

Each image holds 1-6 shapes of random colour, texture, rotation and scale; later shapes occlude
earlier ones and every annotation describes the *visible* region (rasterised, then traced back to
polygons). The output is a pure function of the arguments: same seed, same bytes.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import contourpy
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from scratchlab.data.shapes import (
    OBJECT_TEXTURES,
    SHAPES,
    background,
    class_colour,
    finish,
    paint,
    place_outline,
    rasterize,
    unit_outline,
)
from scratchlab.data.synth_keypoints import KEYPOINT_FAMILY, crescent_keypoints, keypoint_category
from scratchlab.utils.io import write_json

__all__ = [
    "CATEGORIES",
    "make_synth_detection",
    "render_scene",
    "mask_to_polygons",
    "prepare_output",
    "write_canonical_json",
]

CATEGORIES: list[dict[str, Any]] = [
    {"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPES)
]
MARKER = "synth_info.json"
MIN_VISIBLE_FRACTION = 0.35  # an instance hidden beyond this is not placed (or, failing that, dropped)
MIN_PIXELS = 12  # smaller visible regions are too few pixels to be a fair target


def write_canonical_json(path: Path, data: Any) -> None:
    """Write ``data`` atomically as JSON with sorted keys and fixed separators, so equal data gives equal
    bytes."""
    write_json(path, data, sort_keys=True, separators=(",", ":"))


def prepare_output(out: Path, kind: str, managed: list[str]) -> None:
    """Make ``out`` ready for a fresh generated set of ``kind``.

    Folders in ``managed`` left by an earlier run of the same generator (recognised by its marker
    file) are removed, so a smaller re-run leaves no stale images behind; anything else already
    there is refused rather than deleted.
    """
    marker = out / MARKER
    existing = [out / m for m in managed if (out / m).exists()]
    if existing:
        prior = json.loads(marker.read_text()).get("kind") if marker.is_file() else None
        if prior != kind:
            raise FileExistsError(
                f"{existing[0]} already exists and {marker} does not mark it as a generated {kind!r} set; "
                "choose an empty --out folder"
            )
        for path in existing:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """Trace a boolean mask into COCO polygons (flat ``[x0, y0, x1, y1, ...]`` lists, pixel-edge coords).

    Each connected region is one polygon. A region with holes (something drawn inside it) becomes a
    single polygon that walks the outer ring, then each hole ring, returning to the start after each:
    the connecting edges are traversed twice, so under pycocotools' even-odd fill they cancel and the
    holes stay empty. Separate hole polygons would instead be *unioned* with the outer one.
    """
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return []
    y0, x0 = ys.min(), xs.min()
    # Crop (speed) and pad by one pixel so regions touching the border still get closed rings.
    crop = np.pad(mask[y0 : ys.max() + 1, x0 : xs.max() + 1].astype(np.float32), 1)
    gen = contourpy.contour_generator(z=crop, fill_type=contourpy.FillType.OuterOffset)
    points, offsets = gen.filled(0.5, 2.0)
    # contourpy puts the 0.5 level half-way between pixel centres; undo crop and pad (x0 - 1) and move
    # from pixel-centre to COCO pixel-edge coordinates (+0.5).
    shift = np.array([x0 - 0.5, y0 - 0.5])
    polys = []
    for pts, offs in zip(points, offsets, strict=True):
        rings = [_drop_collinear(pts[offs[k] : offs[k + 1]]) for k in range(len(offs) - 1)]
        outer = rings[0]
        if len(outer) < 4 or _ring_area(outer) <= 0.5:  # a lone pixel's diamond: too thin to rasterise
            continue
        parts = [outer]
        for hole in rings[1:]:
            parts += [hole, outer[:1]]
        xy = np.concatenate(parts) + shift
        polys.append(np.round(xy, 2).ravel().tolist())
    return polys


def _drop_collinear(ring: np.ndarray) -> np.ndarray:
    """Remove vertices in the middle of straight runs from a closed ring (first point == last)."""
    pts = ring[:-1]
    prev, nxt = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
    cross = (pts[:, 0] - prev[:, 0]) * (nxt[:, 1] - pts[:, 1]) - (pts[:, 1] - prev[:, 1]) * (
        nxt[:, 0] - pts[:, 0]
    )
    keep = pts[np.abs(cross) > 1e-9]
    return np.concatenate([keep, keep[:1]]) if len(keep) else ring


def _ring_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))) / 2


def _sample_sizes(
    rng: np.random.Generator, count: int, short: int, min_size: float = 0.08, max_size: float | None = None
) -> list[float]:
    """Object diameters: small, medium and (at most one) large, so APs/APm/APl all have targets.
    ``min_size`` (a fraction of the short side) is the smallest object; raising it to 0.2 or more
    removes the small bucket (an easier set for very short CPU schedules). With ``max_size``, every
    diameter is uniform in [min_size, max_size] instead (no large objects cut by the border)."""
    if max_size is not None:
        return [max(float(rng.uniform(min_size, max_size)) * short, 7.0) for _ in range(count)]
    sizes, has_large = [], False
    for _ in range(count):
        r = rng.random()
        if r < 0.25 and not has_large:
            has_large = True
            sizes.append(rng.uniform(0.9, 1.6) * short)  # may be cut by the border, like real objects
        elif r < 0.6:
            sizes.append(rng.uniform(0.2, 0.55) * short)
        else:
            sizes.append(rng.uniform(min_size, max(0.2, min_size + 0.1)) * short)
    return [max(s, 7.0) for s in sizes]  # below ~7 px a shape is a blob of a few pixels


def render_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    min_size: float = 0.08,
    max_objects: int = 6,
    textures: tuple[str, ...] = OBJECT_TEXTURES,
    shapes: tuple[str, ...] = SHAPES,
    class_colours: bool = False,
    max_size: float | None = None,
    outlines: list[np.ndarray] | None = None,
) -> tuple[Image.Image, list[tuple[int, np.ndarray]]]:
    """Draw one scene; return the image and ``(category_id, visible_mask)`` per kept instance
    (``class_colours``: each shape family in its own base colour, see ``shapes.CLASS_COLOURS``;
    ``max_size``: see ``_sample_sizes``). ``outlines``, when given, receives each kept instance's placed
    outline (image coordinates); the scene drawn is the same either way (no random draw depends on it)."""
    canvas = background(rng, height, width)
    short = min(height, width)
    sizes = _sample_sizes(rng, int(rng.integers(1, max_objects + 1)), short, min_size, max_size)
    # Mostly big-to-small (big shapes behind small ones), jittered so similar sizes overlap either way.
    sizes.sort(key=lambda s: -s * rng.uniform(0.7, 1.3))
    cats: list[int] = []
    full: list[np.ndarray] = []  # each instance's own (unoccluded, image-clipped) mask
    visible: list[np.ndarray] = []
    for size in sizes:
        shape = int(rng.integers(len(shapes)))
        outline = unit_outline(shapes[shape], rng)
        margin = 0.35 if size > 0.7 * short else 0.08
        for _ in range(8):  # re-place a shape that would hide too much of what is already there
            cx, cy = rng.uniform(margin, 1 - margin) * width, rng.uniform(margin, 1 - margin) * height
            angle = rng.uniform(0, 2 * math.pi)
            m = rasterize(place_outline(outline, cx, cy, size, angle), height, width)
            ok = m.sum() >= MIN_PIXELS and all(
                (v & ~m).sum() >= max(MIN_PIXELS, MIN_VISIBLE_FRACTION * f.sum())
                for v, f in zip(visible, full, strict=True)
            )
            if ok:
                break
        else:
            continue
        colour = class_colour(shapes[shape]) if class_colours else None
        paint(canvas, m, rng, textures[int(rng.integers(len(textures)))], size, colour=colour)
        visible = [v & ~m for v in visible]
        cats.append(shape + 1)
        if outlines is not None:
            outlines.append(place_outline(outline, cx, cy, size, angle))
        full.append(m)
        visible.append(m.copy())
    return finish(canvas, rng), list(zip(cats, visible, strict=True))


def _annotation(mask: np.ndarray, ann_id: int, image_id: int, cat: int) -> dict[str, Any] | None:
    """COCO annotation for a visible mask; ``bbox`` and ``area`` come from the polygons' own raster."""
    polys = mask_to_polygons(mask)
    if not polys:
        return None
    h, w = mask.shape
    rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    area = float(mask_utils.area(rle))
    if area < MIN_PIXELS / 2:
        return None
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cat,
        "segmentation": polys,
        "area": area,
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "iscrowd": 0,
    }


def _check_args(**kwargs: int) -> None:
    minimum = {"num_train": 1, "num_val": 0, "image_size": 32, "seed": 0}
    for name, value in kwargs.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum[name]:
            raise ValueError(
                f"make_synth_detection: {name} must be an integer >= {minimum[name]}, got {value!r}"
            )


def make_synth_detection(
    out: str | Path,
    num_train: int,
    num_val: int,
    image_size: int,
    seed: int,
    min_object_size: float = 0.08,
    max_objects: int = 6,
    object_textures: Sequence[str] | None = None,
    shapes: Sequence[str] | None = None,
    class_colours: bool = False,
    max_object_size: float | None = None,
    keypoints: bool = False,
) -> dict:
    """Write a generated COCO instance-segmentation set under ``out`` and return a summary.

    Layout: ``annotations/instances_{train,val}.json`` and PNG images in ``train/`` and ``val/``
    (``file_name`` is relative to the split's folder). Images are ``image_size`` on the long side,
    half of them square, the rest of mildly varied aspect. Each image is drawn from its own stream
    seeded by ``(seed, split, index)``, so the train set does not depend on ``num_val``.
    ``class_colours`` paints each shape family in its own base colour (jittered) instead of a random one;
    ``max_object_size`` (a fraction of the short side) draws every diameter uniformly between
    ``min_object_size`` and it, instead of the small/medium/large buckets. ``keypoints`` adds COCO
    keypoints to the crescent family (:mod:`scratchlab.data.synth_keypoints`); the images and every other
    field are the same bytes as without.
    """
    _check_args(num_train=num_train, num_val=num_val, image_size=image_size, seed=seed)
    if not 0.03 <= float(min_object_size) <= 0.5:
        raise ValueError(
            f"make_synth_detection: min_object_size must be in [0.03, 0.5], got {min_object_size!r}"
        )
    if max_object_size is not None and not float(min_object_size) < float(max_object_size) <= 1.6:
        raise ValueError(
            f"make_synth_detection: max_object_size must be in (min_object_size, 1.6], "
            f"got {max_object_size!r}"
        )
    if not 1 <= int(max_objects) <= 12:
        raise ValueError(f"make_synth_detection: max_objects must be in [1, 12], got {max_objects!r}")
    textures = tuple(object_textures) if object_textures else OBJECT_TEXTURES
    shapes = tuple(shapes) if shapes else SHAPES
    if unknown := set(shapes) - set(SHAPES):
        raise ValueError(
            f"make_synth_detection: unknown shapes {sorted(unknown)}; choose from {list(SHAPES)}"
        )
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(shapes)]
    if keypoints:
        if KEYPOINT_FAMILY not in shapes:
            raise ValueError(
                f"make_synth_detection: keypoints are drawn on {KEYPOINT_FAMILY!r} shapes, which "
                f"the shapes {list(shapes)} leave out"
            )
        categories = [keypoint_category(c) for c in categories]
    keypoint_cat = shapes.index(KEYPOINT_FAMILY) + 1 if keypoints else None
    if unknown := set(textures) - set(OBJECT_TEXTURES):
        raise ValueError(
            f"make_synth_detection: unknown object textures {sorted(unknown)}; "
            f"choose from {list(OBJECT_TEXTURES)}"
        )
    out = Path(out)
    prepare_output(out, "detection", ["annotations", "train", "val", MARKER])
    (out / "annotations").mkdir()
    summary: dict[str, Any] = {
        "kind": "detection",
        "out": str(out),
        "seed": seed,
        "image_size": image_size,
        "categories": [c["name"] for c in categories],
        "class_colours": bool(class_colours),
    }
    for split_id, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        img_dir = out / split
        img_dir.mkdir()
        images, anns = [], []
        for index in range(count):
            rng = np.random.default_rng([seed, split_id, index])
            height = width = image_size
            if rng.random() < 0.5:  # mild aspect variation; catches height/width mix-ups downstream
                short = round(image_size * rng.uniform(0.75, 0.95))
                height, width = (short, image_size) if rng.random() < 0.5 else (image_size, short)
            outlines: list[np.ndarray] | None = [] if keypoints else None
            image, instances = render_scene(
                rng,
                height,
                width,
                min_object_size,
                int(max_objects),
                textures,
                shapes,
                bool(class_colours),
                None if max_object_size is None else float(max_object_size),
                outlines=outlines,
            )
            image_id = index + 1
            name = f"{image_id:06d}.png"
            image.save(img_dir / name, format="PNG", compress_level=1)  # noise compresses poorly anyway
            images.append({"id": image_id, "file_name": name, "height": height, "width": width})
            for k, (cat, mask) in enumerate(instances):
                ann = _annotation(mask, len(anns) + 1, image_id, cat)
                if ann is not None and cat == keypoint_cat:
                    ann["keypoints"], ann["num_keypoints"] = crescent_keypoints(outlines[k], mask)
                if ann is not None:
                    anns.append(ann)
        json_path = out / "annotations" / f"instances_{split}.json"
        write_canonical_json(
            json_path,
            {
                "info": {"description": "scratchlab generated shapes", "seed": seed, "split": split},
                "licenses": [],
                "images": images,
                "annotations": anns,
                "categories": categories,
            },
        )
        summary[split] = {
            "json": str(json_path),
            "images_dir": str(img_dir),
            "images": count,
            "annotations": len(anns),
        }
    write_canonical_json(out / MARKER, summary)
    return summary
