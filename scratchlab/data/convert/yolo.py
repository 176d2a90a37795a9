"""YOLO / Ultralytics txt labels -> records.

SRC is a dataset YAML (Ultralytics' ``coco8.yaml``, any name), or a folder. A YAML's ``path``, ``train``
and ``val`` say where the images are (see :mod:`.yolo_dataset`); each image's label file is its path with
the last ``images`` folder replaced by ``labels`` and the suffix by ``.txt``; the records then carry the
dataset's own split and file names relative to its root. A folder SRC holds ``images/`` (sub-folders
allowed) and ``labels/`` mirroring it; its class names come from ``--names FILE``, else the first of
``SRC/data.yaml`` (which may split it the same way), ``SRC/classes.txt``, ``SRC/obj.names``,
``SRC/labels/classes.txt`` (one name a line), or for a single-class set ``--class-name NAME``. Class
index i is category id i + 1 (the names file's order); every listed class becomes a category, used or not.

A label line is ``cls cx cy w h`` (normalised to [0, 1]) or an Ultralytics segment line
``cls x1 y1 x2 y2 x3 y3 ...`` (a polygon, at least 3 points); with ``kpt_shape: [K, D]`` in the YAML, a
pose line ``cls cx cy w h`` followed by K points of D values (x y, or x y visibility 0/1/2) becomes COCO
keypoints (a point at 0 0 without visibility is unlabelled), and ``flip_idx`` the categories' flip pairs.
An image without a label file, or with an empty one, is kept with no annotations. A malformed line is an
error naming the file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from .yolo_dataset import Dataset, Keypoints, label_path, read_dataset

# Normalised values a hair outside [0, 1] are rounding from the exporting tool, not errors.
_TOLERANCE = 0.01
_YAML_SUFFIXES = (".yaml", ".yml")


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


def _names_file(src: Path, names: Path | None, class_name: str | None) -> Path | None:
    """The file that names the classes: ``--names``, else the first of the usual names in SRC."""
    if names is not None:
        if not names.is_file():
            raise ConvertError(f"--names {names}: no such file")
        found: Path | None = names
    else:
        candidates = (
            src / "data.yaml",
            src / "classes.txt",
            src / "obj.names",
            src / "labels" / "classes.txt",
        )
        found = next((p for p in candidates if p.is_file()), None)
    if found is not None and class_name is not None:
        raise ConvertError(
            f"{found} already names the classes; --class-name is for a single-class set "
            "without a class names file"
        )
    return found


def _check_names(path: Path, names: list[str]) -> list[str]:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup or "" in names:
        raise ConvertError(f"{path}: class names must be unique and non-empty (repeated: {dup})")
    return names


def _keypoints(tokens: list[float], kp: Keypoints, where: str, w: int, h: int) -> dict[str, Any]:
    coords: list[float] = []
    for k in range(kp.count):
        x, y, *rest = tokens[k * kp.dims : (k + 1) * kp.dims]
        v = rest[0] if rest else (0.0 if x == 0 and y == 0 else 2.0)
        if v not in (0, 1, 2):
            raise ConvertError(f"{where}: keypoint {k + 1} visibility must be 0, 1 or 2, got {v:g}")
        coords += [0.0, 0.0, 0] if v == 0 else [round(x * w, 2), round(y * h, 2), int(v)]
    return {"keypoints": coords, "num_keypoints": sum(v > 0 for v in coords[2::3])}


def _parse_line(line: str, where: str, names: list[str], w: int, h: int, kp: Keypoints | None) -> Obj | None:
    tokens = line.split()
    pose = 5 + kp.count * kp.dims if kp is not None else None
    if pose is not None and len(tokens) != pose:
        raise ConvertError(
            f"{where}: kpt_shape [{kp.count}, {kp.dims}] needs 'class cx cy w h' and {kp.count} points "
            f"({pose} values), got {len(tokens)}: {line.strip()!r}"
        )
    if pose is None and len(tokens) != 5 and (len(tokens) < 7 or len(tokens) % 2 == 0):
        raise ConvertError(
            f"{where}: expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...', "
            f"got {len(tokens)} values: {line.strip()!r}"
        )
    c = finite(tokens[0], f"{where}: class index")
    if c != int(c) or not 0 <= c < len(names):
        raise ConvertError(f"{where}: class index {tokens[0]} is not one of 0..{len(names) - 1}")
    vals = [finite(t, f"{where}: coordinate") for t in tokens[1:]]
    coords = (
        vals if kp is None or kp.dims == 2 else vals[:4] + [v for i, v in enumerate(vals[4:]) if i % 3 != 2]
    )
    if any(v < -_TOLERANCE or v > 1 + _TOLERANCE for v in coords):
        raise ConvertError(f"{where}: coordinates must be normalised to [0, 1], got {line.strip()!r}")
    name = names[int(c)]
    if len(tokens) == 5 or kp is not None:
        cx, cy, bw, bh = vals[:4]
        if bw <= 0 or bh <= 0:
            raise ConvertError(f"{where}: box width and height must be > 0, got {line.strip()!r}")
        box = clip_xyxy((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h, w, h)
        extra = _keypoints(vals[4:], kp, where, w, h) if kp is not None else None
        return box_object(name, box, extra) if box is not None else None
    return polygon_object(name, [v * w for v in vals[0::2]], [v * h for v in vals[1::2]], w, h)


def _record(
    image: Path, file_name: str, label: Path, names: list[str], kp: Keypoints | None, warnings: list[str]
) -> Record:
    info = read_image_info(image)
    rec = Record(file_name, info.width, info.height)
    if not label.is_file():
        return rec
    try:
        lines = label.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConvertError(f"{label}: not a readable text file: {err}") from err
    for i, line in enumerate(lines, start=1):
        if line.strip():
            obj = _parse_line(line, f"{label}:{i}", names, info.width, info.height, kp)
            if obj is None:
                warnings.append(f"{label}:{i}: object has no area inside the image; dropped")
            else:
                rec.objects.append(obj)
    return rec


def _category_fields(kp: Keypoints | None) -> dict[str, Any]:
    if kp is None:
        return {}
    return {"keypoints": kp.names, "skeleton": [], **({"flip_map": kp.flip_map} if kp.flip_map else {})}


def _read_splits(ds: Dataset) -> Source:
    """Records for every image the YAML's train/val lists, named relative to the dataset root."""
    warnings = list(ds.warnings)
    records: dict[str, Record] = {}
    splits: dict[str, list[str]] = {}
    for split, images in ds.splits.items():
        splits[split] = []
        for image in images:
            file_name = image.relative_to(ds.root).as_posix()
            if file_name not in records:
                label = label_path(ds.root, image)
                records[file_name] = _record(image, file_name, label, ds.names, ds.keypoints, warnings)
            splits[split].append(file_name)
    missing = [label_path(ds.root, i) for images in ds.splits.values() for i in images]
    missing = [p for p in missing if not p.is_file()]
    if missing and len(missing) == len(records):  # a layout mistake, not a set of background images
        warnings.append(
            f"{ds.root}: none of the {len(records)} images has a label file (looked for e.g. {missing[0]}); "
            "every image is kept without annotations"
        )
    if len(splits) == 1:  # a train list alone is one set, split (or not) like a folder
        splits = {}
    return Source(ds.root, list(records.values()), ds.names, warnings, splits, _category_fields(ds.keypoints))


def _read_folder(root: Path, names: list[str], names_file: Path | None, kp: Keypoints | None) -> Source:
    img_dir, lbl_dir = root / "images", root / "labels"
    if not img_dir.is_dir():
        raise ConvertError(f"{root}: no images/ folder (YOLO layout: images/, labels/, class names file)")
    images = list_images(img_dir, recursive=True)
    if not images:
        raise ConvertError(f"{img_dir}: no image files")
    warnings: list[str] = []
    records, used_labels = [], set()
    for image in images:
        rel = image.relative_to(img_dir)
        label = (lbl_dir / rel).with_suffix(".txt")
        used_labels.add(label)
        records.append(_record(image, rel.as_posix(), label, names, kp, warnings))
    if lbl_dir.is_dir():
        orphans = [p for p in lbl_dir.rglob("*.txt") if p not in used_labels and p != names_file]
        if orphans:
            warnings.append(
                f"{lbl_dir}: {len(orphans)} label file(s) have no image, e.g. {orphans[0]}; ignored"
            )
    else:
        warnings.append(f"{root}: no labels/ folder; every image is kept without annotations")
    return Source(img_dir, records, names, warnings, category_fields=_category_fields(kp))


def read_yolo(src: Path, class_name: str | None = None, names: Path | None = None) -> Source:
    """Records for a YOLO dataset: ``src`` is its YAML or its folder; ``names`` (``--names``) is the
    YAML or text file naming the classes when it is not one of the usual files in ``src``;
    ``class_name`` names the only class (index 0) of a set without such a file."""
    if src.is_file():
        if src.suffix.lower() not in _YAML_SUFFIXES:
            raise ConvertError(f"{src}: --from yolo takes a dataset folder or its YAML (.yaml / .yml)")
        if names is not None:
            raise ConvertError(f"{src} is the dataset YAML and names the classes; drop --names")
        names_file: Path | None = _names_file(src.parent, src, class_name)
        base = src.parent
    else:
        names_file, base = _names_file(src, names, class_name), src
    if names_file is None:
        if not (base / "images").is_dir():
            raise ConvertError(f"{src}: no images/ folder (YOLO layout: images/, labels/, class names file)")
        if class_name is None:
            raise ConvertError(
                f"{src}: no class names file (data.yaml with names:, classes.txt or obj.names); pass "
                "the dataset YAML as SRC or --names FILE, or for a single-class set --class-name NAME"
            )
        return _read_folder(base, [class_name], None, None)
    if names_file.suffix.lower() not in _YAML_SUFFIXES:
        return _read_folder(base, _check_names(names_file, _read_txt_names(names_file)), names_file, None)
    ds = read_dataset(names_file, base)
    _check_names(names_file, ds.names)
    if ds.splits:
        return _read_splits(ds)
    source = _read_folder(ds.root, ds.names, names_file, ds.keypoints)
    source.warnings[:0] = ds.warnings
    return source
