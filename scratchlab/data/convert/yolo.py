"""YOLO txt labels -> records.

Layout: ``SRC/images/`` (sub-folders allowed, e.g. ``images/train``) and ``SRC/labels/`` mirroring it,
one ``.txt`` per image. Class names from the first of ``SRC/data.yaml`` (``names:`` list or
``{index: name}`` map), ``SRC/classes.txt``, ``SRC/obj.names``, ``SRC/labels/classes.txt`` (one name a
line), or for a single-class set without such a file ``--class-name NAME``. Every listed class becomes a
category, used or not.

A label line is ``cls cx cy w h`` (normalised to [0, 1]) or an Ultralytics segment line
``cls x1 y1 x2 y2 x3 y3 ...`` (a polygon, at least 3 points). An image without a label file, or with an
empty one, is kept with no annotations. A malformed line is an error naming the file and line.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ._common import (
    ConvertError,
    Obj,
    Record,
    Source,
    box_object,
    clip_xyxy,
    finite,
    list_images,
    polygon_object,
    read_image_info,
)

# Normalised values a hair outside [0, 1] are rounding from the exporting tool, not errors.
_TOLERANCE = 0.01


def _read_yaml_names(path: Path) -> list[str]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConvertError(f"{path}: not a readable YAML file: {err}") from err
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise ConvertError(f"{path}: 'names' keys must be class indices 0..K-1") from None
        if keys != list(range(len(keys))):
            raise ConvertError(f"{path}: 'names' indices must be 0..{len(keys) - 1} without gaps, got {keys}")
        names = [names[k] if k in names else names[str(k)] for k in keys]
    if not isinstance(names, list) or not names:
        raise ConvertError(f"{path}: needs a non-empty 'names:' list (or {{index: name}} map)")
    nc = data.get("nc")
    if nc is not None and nc != len(names):
        raise ConvertError(f"{path}: nc={nc} but 'names' lists {len(names)} classes")
    return [str(n).strip() for n in names]


def _read_txt_names(path: Path) -> list[str]:
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise ConvertError(f"{path}: not a readable text file: {err}") from err
    while lines and not lines[-1]:
        lines.pop()
    for i, name in enumerate(lines, start=1):
        if not name:  # a blank line in the middle would silently shift every later class index
            raise ConvertError(f"{path}:{i}: empty class name")
    if not lines:
        raise ConvertError(f"{path}: no class names")
    return lines


def _class_names(src: Path, class_name: str | None) -> tuple[list[str], Path | None]:
    for path in (src / "data.yaml", src / "classes.txt", src / "obj.names", src / "labels" / "classes.txt"):
        if path.is_file():
            names = _read_yaml_names(path) if path.suffix == ".yaml" else _read_txt_names(path)
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup or "" in names:
                raise ConvertError(f"{path}: class names must be unique and non-empty (repeated: {dup})")
            if class_name is not None:
                raise ConvertError(
                    f"{path} already names the classes; --class-name is for a single-class set "
                    "without a class names file"
                )
            return names, path
    if class_name is not None:
        return [class_name], None
    raise ConvertError(
        f"{src}: no class names file (data.yaml with names:, classes.txt or obj.names); for a "
        "single-class set pass --class-name NAME"
    )


def _parse_line(line: str, where: str, names: list[str], w: int, h: int) -> Obj | None:
    tokens = line.split()
    if len(tokens) != 5 and (len(tokens) < 7 or len(tokens) % 2 == 0):
        raise ConvertError(
            f"{where}: expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...', "
            f"got {len(tokens)} values: {line.strip()!r}"
        )
    c = finite(tokens[0], f"{where}: class index")
    if c != int(c) or not 0 <= c < len(names):
        raise ConvertError(f"{where}: class index {tokens[0]} is not one of 0..{len(names) - 1}")
    vals = [finite(t, f"{where}: coordinate") for t in tokens[1:]]
    if any(v < -_TOLERANCE or v > 1 + _TOLERANCE for v in vals):
        raise ConvertError(f"{where}: coordinates must be normalised to [0, 1], got {line.strip()!r}")
    name = names[int(c)]
    if len(tokens) == 5:
        cx, cy, bw, bh = vals
        if bw <= 0 or bh <= 0:
            raise ConvertError(f"{where}: box width and height must be > 0, got {line.strip()!r}")
        box = clip_xyxy((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h, w, h)
        return box_object(name, box) if box is not None else None
    return polygon_object(name, [v * w for v in vals[0::2]], [v * h for v in vals[1::2]], w, h)


def read_yolo(src: Path, class_name: str | None = None) -> Source:
    """Records for every image under SRC/images, with boxes from the matching SRC/labels/*.txt.
    ``class_name`` names the only class (index 0) of a set without a class names file."""
    img_dir, lbl_dir = src / "images", src / "labels"
    if not img_dir.is_dir():
        raise ConvertError(f"{src}: no images/ folder (YOLO layout: images/, labels/, class names file)")
    names, names_file = _class_names(src, class_name)
    images = list_images(img_dir, recursive=True)
    if not images:
        raise ConvertError(f"{img_dir}: no image files")
    warnings: list[str] = []
    records, used_labels = [], set()
    for image in images:
        rel = image.relative_to(img_dir)
        info = read_image_info(image)
        rec = Record(rel.as_posix(), info.width, info.height)
        label = (lbl_dir / rel).with_suffix(".txt")
        if label.is_file():
            used_labels.add(label)
            try:
                lines = label.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as err:
                raise ConvertError(f"{label}: not a readable text file: {err}") from err
            for i, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                obj = _parse_line(line, f"{label}:{i}", names, info.width, info.height)
                if obj is None:
                    warnings.append(f"{label}:{i}: object has no area inside the image; dropped")
                else:
                    rec.objects.append(obj)
        records.append(rec)
    if lbl_dir.is_dir():
        orphans = [p for p in lbl_dir.rglob("*.txt") if p not in used_labels and p != names_file]
        if orphans:
            warnings.append(
                f"{lbl_dir}: {len(orphans)} label file(s) have no image, e.g. {orphans[0]}; ignored"
            )
    else:
        warnings.append(f"{src}: no labels/ folder; every image is kept without annotations")
    return Source(img_dir, records, names, warnings)
