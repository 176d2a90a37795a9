"""VGG Image Annotator (VIA 1.x / 2.x) JSON -> records.

Accepted: a VIA 2 project file (``_via_img_metadata``) or the plain "export annotations as JSON" dict
(``{key: {"filename", "regions", ...}}``; ``regions`` a list, or VIA 1's dict). SRC is that JSON file or
the folder holding exactly one ``*.json``; images are looked up beside it (or in ``images/`` next to it).

Shapes: ``polygon``/``polyline`` -> the polygon (a polyline is closed); ``circle``/``ellipse`` -> a
32-point polygon; ``rect`` -> a box without a mask (a rectangle says nothing about the object's
outline, so it is box-only, like VOC); ``point`` has no extent and is dropped with a warning.
Coordinates are clipped to the image.

Class: the value of one region attribute — ``attribute`` (``--attribute``) when given, else the first
region attribute of the project (``_via_attributes``), else the first attribute key met in the regions.
Text values are used stripped; checkbox values (``{"cat": true}``) must have at most one ticked option.
A region without a class takes ``class_name`` (``--class-name``); without it, that is an error saying
which flag to pass. A file with no region attributes at all (a single-class project such as the
widely copied balloon example, ``"region_attributes": {}``) needs ``--class-name``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..check import file_name_outside
from ._common import (
    ConvertError,
    Obj,
    Record,
    Source,
    box_object,
    clip_xyxy,
    ellipse_points,
    finite,
    polygon_object,
    read_image_info,
)


def _find_json(src: Path) -> Path:
    if src.is_file():
        return src
    found = sorted(src.glob("*.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConvertError(f"{src}: no VIA *.json file in this folder")
    raise ConvertError(
        f"{src}: several *.json files ({', '.join(p.name for p in found)}); pass the VIA file itself as SRC"
    )


def _entries(data: Any, path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The per-image entries and the project's region attribute names (in order)."""
    if not isinstance(data, dict):
        raise ConvertError(f"{path}: top level is a {type(data).__name__}, expected a VIA JSON object")
    # VIA 2.0.10+ saves _via_data_format_version ("2.0.10") next to _via_img_metadata: only a version 3
    # (or VIA 3's "project" + "metadata" layout) is the other format.
    version = str(data.get("_via_data_format_version", ""))
    if version.startswith("3") or ("project" in data and "metadata" in data):
        raise ConvertError(
            f"{path}: this is a VIA 3 project; export it from VIA 2 "
            "(Annotation > Export Annotations (as json)) or use COCO export"
        )
    attrs: list[str] = []
    if "_via_img_metadata" in data:
        region_attrs = (data.get("_via_attributes") or {}).get("region") or {}
        attrs = list(region_attrs) if isinstance(region_attrs, dict) else []
        data = data["_via_img_metadata"]
        if not isinstance(data, dict):
            raise ConvertError(f"{path}: _via_img_metadata is not an object")
    entries = []
    for key, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            raise ConvertError(f"{path}: entry {key!r} is not a VIA image record (no 'filename')")
        entries.append(entry)
    return entries, attrs


def _regions(entry: dict[str, Any], where: str) -> list[Any]:
    regions = entry.get("regions") or []
    if isinstance(regions, dict):  # VIA 1.x: {"0": region, "1": region, ...}
        regions = [regions[k] for k in sorted(regions, key=lambda k: (len(str(k)), str(k)))]
    if not isinstance(regions, list):
        raise ConvertError(f"{where}: 'regions' is not a list")
    return regions


def _class_name(attributes: Any, attribute: str | None, default: str | None, where: str) -> str:
    """The region's class: the value of ``attribute``, else ``default`` (``--class-name``)."""
    if attribute is None:  # the file has no region attributes at all (e.g. a single-class project)
        if default is not None:
            return default
        raise ConvertError(
            f"{where}: no region attribute holds a class name; pass --class-name NAME to give "
            "every region one class (or label the regions in VIA)"
        )
    value = attributes.get(attribute) if isinstance(attributes, dict) else None
    if isinstance(value, dict):  # checkbox attribute: {"option": true, ...}
        ticked = [str(k).strip() for k, v in value.items() if v]
        if len(ticked) > 1:
            raise ConvertError(
                f"{where}: attribute {attribute!r} has {len(ticked)} ticked options "
                f"{ticked}; exactly one is needed as the class"
            )
        value = ticked[0] if ticked else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if default is not None:
        return default
    raise ConvertError(
        f"{where}: no class: region attribute {attribute!r} is missing or empty; pass "
        "--attribute NAME to read the class from another region attribute, or --class-name NAME "
        "for regions without one"
    )


def _region_object(shape: dict[str, Any], cls: str, w: int, h: int, where: str) -> Obj | None:
    """A rect is a box (box-only, like VOC); shapes with an outline are polygons; None: no area."""
    if shape.get("name") == "rect":
        x, y, bw, bh = (finite(shape.get(k), f"{where}: rect '{k}'") for k in ("x", "y", "width", "height"))
        box = clip_xyxy(x, y, x + bw, y + bh, w, h)
        return box_object(cls, box) if box is not None else None
    pts = _points(shape, where)
    return polygon_object(cls, pts[0], pts[1], w, h) if pts is not None else None


def _points(shape: dict[str, Any], where: str) -> tuple[list[float], list[float]] | None:
    """Polygon vertices of a VIA shape, or None for shapes without extent."""
    kind = shape.get("name")
    num = {
        k: finite(shape.get(k, 0 if k == "theta" else None), f"{where}: {kind} '{k}'")
        for k in {"circle": ("cx", "cy", "r"), "ellipse": ("cx", "cy", "rx", "ry", "theta")}.get(kind, ())
    }
    if kind in ("polygon", "polyline"):
        xs, ys = shape.get("all_points_x"), shape.get("all_points_y")
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
            raise ConvertError(f"{where}: {kind} needs all_points_x and all_points_y lists of equal length")
        xs = [finite(v, f"{where}: all_points_x") for v in xs]
        ys = [finite(v, f"{where}: all_points_y") for v in ys]
        return (xs, ys) if len(xs) >= 3 else None
    if kind in ("circle", "ellipse"):
        rx = num["r"] if kind == "circle" else num["rx"]
        ry = num["r"] if kind == "circle" else num["ry"]
        return ellipse_points(num["cx"], num["cy"], rx, ry, num.get("theta", 0.0))
    return None


def _image_root(json_path: Path, entries: list[dict[str, Any]]) -> Path:
    """The folder that holds every listed image: beside the JSON, or its images/ subfolder."""
    names = [e["filename"] for e in entries]
    for name in names:
        if "://" in name:
            raise ConvertError(f"{json_path}: image {name!r} is a URL; download the images beside the JSON")
        if (outside := file_name_outside(name)) is not None:  # before any file outside is looked at
            raise ConvertError(f"{json_path}: {outside}")
    roots = [json_path.parent, json_path.parent / "images"]
    for root in roots:
        if all((root / n).is_file() for n in names):
            return root
    missing = next(n for n in names if not (roots[0] / n).is_file())
    raise ConvertError(f"{json_path}: image {missing!r} not found in {roots[0]} (nor in {roots[1]})")


def _first_attribute(entries: list[dict[str, Any]], path: Path) -> str | None:
    """The first region attribute key met in file order (for exports without ``_via_attributes``)."""
    for entry in entries:
        for region in _regions(entry, f"{path}: image {entry['filename']!r}"):
            attributes = region.get("region_attributes") if isinstance(region, dict) else None
            if isinstance(attributes, dict) and attributes:
                return next(iter(attributes))
    return None


def read_via(src: Path, attribute: str | None = None, class_name: str | None = None) -> Source:
    """Records for every image entry of a VIA JSON export; sizes come from the image files.
    ``class_name`` is the class of regions without one (every region, in a file without attributes)."""
    path = _find_json(src)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConvertError(f"{path}: not a readable JSON file: {err}") from err
    entries, attrs = _entries(data, path)
    if attribute is None:
        attribute = attrs[0] if attrs else _first_attribute(entries, path)
    root = _image_root(path, entries)
    warnings: list[str] = []
    records: dict[str, Record] = {}
    for entry in entries:
        name = entry["filename"]
        if name in records:
            raise ConvertError(f"{path}: image {name!r} is listed twice")
        info = read_image_info(root / name)
        rec = records[name] = Record(Path(name).as_posix(), info.width, info.height)
        for k, region in enumerate(_regions(entry, f"{path}: image {name!r}"), start=1):
            where = f"{path}: image {name!r} region {k}"
            shape = region.get("shape_attributes") if isinstance(region, dict) else None
            if not isinstance(shape, dict):
                raise ConvertError(f"{where}: no shape_attributes object")
            cls = _class_name(region.get("region_attributes"), attribute, class_name, where)
            obj = _region_object(shape, cls, info.width, info.height, where)
            if obj is None:
                warnings.append(f"{where}: {shape.get('name')!r} shape has no area inside the image; dropped")
                continue
            rec.objects.append(obj)
    return Source(root, list(records.values()), None, warnings)
