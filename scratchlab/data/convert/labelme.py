"""LabelMe JSON (one file per image) -> records.

SRC is a folder of LabelMe ``*.json`` files (sub-folders searched too) or one such file. Each file's
``imagePath`` is relative to the JSON (LabelMe's default); the folder that holds every image becomes the
image root. JSON files without LabelMe's ``shapes`` and ``imagePath`` keys are skipped with a warning.
Image sizes come from the image files; ``imageWidth``/``imageHeight`` that disagree give a warning.

Shapes: ``polygon`` -> the polygon; ``circle`` (centre, a point on the rim) -> a 32-point polygon;
``rectangle`` (two corners) -> a box without a mask (box-only, like VOC); ``line``, ``linestrip`` and
``point`` have no area and are dropped with a warning; ``mask`` shapes are refused (export them as
polygons). Shapes with the same label and the same non-null ``group_id`` are one instance drawn in
several parts (as labelme2coco merges them). Coordinates are clipped to the image.

Class: the shape's label, stripped; an empty label takes ``class_name`` (``--class-name``), else error.

Embedded images (``imageData``) are not extracted: the image file must exist at ``imagePath``; when it
does not, the error names the JSON, the path it looked at and says the JSON embeds the image.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._common import (
    ConvertError,
    Obj,
    Record,
    Source,
    box_object,
    clip_xyxy,
    ellipse_points,
    finite,
    merge_objects,
    polygon_object,
    read_image_info,
)

_NO_AREA = frozenset({"line", "linestrip", "point", "points"})


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConvertError(f"{path}: not a readable JSON file: {err}") from err


def _image_path(path: Path, data: dict[str, Any]) -> Path:
    rel = data.get("imagePath")
    if not isinstance(rel, str) or not rel.strip():
        raise ConvertError(f"{path}: 'imagePath' is missing or empty")
    image = (path.parent / rel.replace("\\", "/")).resolve()
    if image.is_file():
        return image
    embedded = (
        " (the JSON embeds the image in 'imageData', which is not extracted: save the image there)"
        if data.get("imageData")
        else ""
    )
    raise ConvertError(f"{path}: image {rel!r} not found at {image}{embedded}")


def _points(shape: dict[str, Any], where: str) -> tuple[list[float], list[float]]:
    pts = shape.get("points")
    if not isinstance(pts, list) or not all(isinstance(p, list) and len(p) == 2 for p in pts):
        raise ConvertError(f"{where}: 'points' must be a list of [x, y] pairs")
    return [finite(p[0], f"{where}: x") for p in pts], [finite(p[1], f"{where}: y") for p in pts]


def _shape_object(shape: dict[str, Any], cls: str, w: int, h: int, where: str) -> Obj | None:
    kind = shape.get("shape_type") or "polygon"  # LabelMe 3.x files have no shape_type: polygons
    if kind == "mask":
        raise ConvertError(f"{where}: 'mask' shapes are not supported; export the shape as a polygon")
    if kind in _NO_AREA:
        return None
    xs, ys = _points(shape, where)
    if kind == "rectangle":
        if len(xs) != 2:
            raise ConvertError(f"{where}: a rectangle needs 2 corner points, got {len(xs)}")
        box = clip_xyxy(min(xs), min(ys), max(xs), max(ys), w, h)
        return box_object(cls, box) if box is not None else None
    if kind == "circle":
        if len(xs) != 2:
            raise ConvertError(
                f"{where}: a circle needs its centre and a point on the rim, got {len(xs)} points"
            )
        r = ((xs[1] - xs[0]) ** 2 + (ys[1] - ys[0]) ** 2) ** 0.5
        xs, ys = ellipse_points(xs[0], ys[0], r, r)
    elif kind != "polygon":
        raise ConvertError(f"{where}: unknown shape_type {kind!r}")
    return polygon_object(cls, xs, ys, w, h) if len(xs) >= 3 else None


def _record(
    path: Path, data: dict[str, Any], image: Path, root: Path, class_name: str | None, warnings: list[str]
) -> Record:
    info = read_image_info(image)
    declared = (data.get("imageWidth"), data.get("imageHeight"))
    if all(isinstance(v, int) for v in declared) and declared != (info.width, info.height):
        warnings.append(
            f"{path}: imageWidth x imageHeight say {declared[0]}x{declared[1]}, the image is "
            f"{info.width}x{info.height}; using the image's size"
        )
    rec = Record(image.relative_to(root).as_posix(), info.width, info.height)
    shapes = data.get("shapes")
    if not isinstance(shapes, list):
        raise ConvertError(f"{path}: 'shapes' is not a list")
    groups: dict[tuple[str, Any], list[Obj]] = {}
    for k, shape in enumerate(shapes, start=1):
        where = f"{path}: shape {k}"
        if not isinstance(shape, dict):
            raise ConvertError(f"{where}: is a {type(shape).__name__}, expected an object")
        label = shape.get("label")
        cls = (label.strip() if isinstance(label, str) else "") or class_name
        if not cls:
            raise ConvertError(f"{where}: empty label; pass --class-name NAME for shapes without one")
        where = f"{where} ({cls!r}, {shape.get('shape_type') or 'polygon'})"
        obj = _shape_object(shape, cls, info.width, info.height, where)
        if obj is None:
            warnings.append(f"{where}: has no area inside the image; dropped")
            continue
        group = shape.get("group_id")
        groups.setdefault((cls, group if group is not None else ("shape", k)), []).append(obj)
    rec.objects = [merge_objects(parts) if len(parts) > 1 else parts[0] for parts in groups.values()]
    return rec


def read_labelme(src: Path, class_name: str | None = None) -> Source:
    """Records for every LabelMe JSON file in SRC; sizes come from the image files."""
    files = [src] if src.is_file() else sorted(src.rglob("*.json"))
    if not files:
        raise ConvertError(f"{src}: no LabelMe *.json files in this folder")
    warnings: list[str] = []
    found: list[tuple[Path, dict[str, Any], Path]] = []
    for path in files:
        data = _load(path)
        if not isinstance(data, dict) or "shapes" not in data or "imagePath" not in data:
            warnings.append(f"{path}: not a LabelMe file (no 'shapes' and 'imagePath'); skipped")
            continue
        found.append((path, data, _image_path(path, data)))
    if not found:
        raise ConvertError(f"{src}: none of the *.json files is a LabelMe annotation file")
    root = found[0][2].parent
    while not all(root in image.parents for _, _, image in found):
        root = root.parent
    records: dict[Path, Record] = {}
    described_by: dict[Path, Path] = {}
    for path, data, image in found:
        if image in described_by:
            raise ConvertError(f"{path}: describes {image}, which {described_by[image]} already describes")
        described_by[image] = path
        records[image] = _record(path, data, image, root, class_name, warnings)
    return Source(root, list(records.values()), None, warnings)
