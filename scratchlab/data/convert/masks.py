"""Instance masks stored as images -> records with RLE masks.

Layout: ``SRC/images/`` and ``SRC/masks/`` (other folders with ``images_dir`` / ``masks_dir``, relative
to SRC or absolute); images may sit in sub-folders, which the masks mirror. Each image's mask is named
after it: the same stem, optionally followed by a suffix such as ``_mask``. The suffix is found
automatically: the one most mask names share (``a.jpg`` -> ``a.png``, ``a_mask.png`` or ``a_mask/``).

A mask is either
* one image (``.png``, ``.tif``, ``.bmp``) whose pixel values are instance ids: 0 is background, every
  other value one instance. Grey (8 or 16 bit) and palette PNGs are read as ids; in a colour mask each
  colour is one instance (black is background); or
* a folder holding one binary image per instance (any non-zero pixel belongs to the object); the
  instance's id is its file stem.

Classes: ``classes`` (``--classes FILE``, YAML or JSON) maps instance ids to class names, either once
for every image (``{1: cell, 2: nucleus}``) or per image (``{image stem: {1: cell}}``). Instances it
does not name take ``class_name`` (``--class-name``; for a single-class set that is all you pass);
without either, that is an error naming the mask and the id.

Each instance becomes a compressed COCO RLE (pycocotools) with ``area`` its pixel count and ``bbox``
the tightest box around its pixels. A mask whose size differs from its image's displayed size (after
EXIF orientation) is an error naming both files. An image without a mask, or with a mask that holds
only background, is kept without annotations and reported in the warnings.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from ._common import ConvertError, Obj, Record, Source, list_images, read_image_info

MASK_EXTENSIONS = frozenset({".png", ".tif", ".tiff", ".bmp"})  # lossless only: ids must survive
LOSSY_EXTENSIONS = frozenset({".jpg", ".jpeg", ".webp"})  # refused by name, not skipped unexplained
_SHOWN = 5  # example names listed in a warning


def _folder(src: Path, given: str | None, default: str, flag: str) -> Path:
    folder = Path(given) if given else Path(default)
    folder = folder if folder.is_absolute() else src / folder
    if not folder.is_dir():
        raise ConvertError(
            f"{folder}: no such folder (masks layout: {src}/images/ and {src}/masks/, other names via {flag})"
        )
    return folder


def _key(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` without its extension: how images and masks are paired."""
    return path.relative_to(root).with_suffix("").as_posix()


def _mask_entries(masks_dir: Path) -> dict[str, Path]:
    """Every candidate mask under ``masks_dir`` (image files and folders) by key."""
    entries: dict[str, Path] = {}
    for path in sorted(masks_dir.rglob("*")):
        if path.is_dir() or path.suffix.lower() in MASK_EXTENSIONS:
            key = path.relative_to(masks_dir).as_posix() if path.is_dir() else _key(path, masks_dir)
            if key in entries:
                raise ConvertError(f"{masks_dir}: ambiguous masks {entries[key].name} and {path.name}")
            entries[key] = path
    return entries


def _refuse_lossy(masks_dir: Path, image_keys: set[str]) -> None:
    """A JPEG named after an image is meant as its mask, but lossy compression changes pixel values (instance
    ids, edges); say so instead of reporting the mask as missing."""
    for path in sorted(masks_dir.rglob("*")):
        key = _key(path, masks_dir)
        if path.suffix.lower() in LOSSY_EXTENSIONS and any(
            key[:end] in image_keys for end in range(len(key), 0, -1)
        ):
            raise ConvertError(
                f"{path}: a {path.suffix} mask is lossy (compression changes its pixel values, so instance ids "
                f"and edges do not survive); save masks as {', '.join(sorted(MASK_EXTENSIONS))}"
            )


def _suffix(image_keys: set[str], entries: dict[str, Path]) -> str:
    """The suffix most mask names add to their image's name ("" when they share the stem)."""
    found: Counter[str] = Counter()
    for key in entries:
        for end in range(len(key), 0, -1):
            if key[:end] in image_keys and "/" not in key[end:]:
                found[key[end:]] += 1
                break
    if not found:
        return ""
    return max(found, key=lambda s: (found[s], s == ""))


def _read_class_map(path: Path) -> dict[str, Any]:
    """``{"*": {id: name}}`` for a map that holds for every image, else ``{image: {id: name}}``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConvertError(f"{path}: not a readable YAML/JSON file: {err}") from err
    if not isinstance(data, dict) or not data:
        raise ConvertError(f"{path}: expected a map of instance id -> class name, or image -> such a map")

    def ids(m: dict, where: str) -> dict[str, str]:
        out = {}
        for k, v in m.items():
            if not isinstance(v, str | int) or isinstance(v, bool) or not str(v).strip():
                raise ConvertError(
                    f"{path}: {where}id {k!r}: class name must be a non-empty string, got {v!r}"
                )
            out[str(k)] = str(v).strip()
        return out

    if all(isinstance(v, dict) for v in data.values()):
        return {str(image): ids(m, f"image {image!r}: ") for image, m in data.items()}
    if any(isinstance(v, dict) for v in data.values()):
        raise ConvertError(f"{path}: mixes per-image maps with plain ids; use one form")
    return {"*": ids(data, "")}


def _read_mask(path: Path) -> np.ndarray:
    """The mask's pixels as integer instance ids (colour masks: one id per colour)."""
    try:
        with Image.open(path) as im:
            im.load()
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ConvertError(f"{path}: cannot read mask: {type(err).__name__}: {err}") from err
    if im.mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
        rgb = np.asarray(im.convert("RGB"), dtype=np.int64)
        return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    if im.mode in ("LA", "PA", "La"):
        im = im.getchannel(0)
    if im.mode == "F":
        raise ConvertError(f"{path}: floating-point mask; instance ids must be integers")
    return np.asarray(im).astype(np.int64)


def _instance(category: str, mask: np.ndarray) -> Obj:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    x0, y0 = int(cols[0]), int(rows[0])
    bbox = [float(x0), float(y0), float(cols[-1] + 1 - x0), float(rows[-1] + 1 - y0)]
    segmentation = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    return Obj(category, bbox, float(mask.sum()), segmentation)


class _Classes:
    """Class of an instance: the class map's entry for (image, id), else the default class name."""

    def __init__(self, path: Path | None, default: str | None, src: Path) -> None:
        if path is None and default is None:
            raise ConvertError(
                f"{src}: instance masks carry no class names; pass --class-name NAME (one class "
                "for every instance) or --classes FILE (instance id -> class name)"
            )
        self.path, self.default = path, default
        self.map = _read_class_map(path) if path is not None else {}

    def __call__(self, image: Path, image_key: str, instance: str, mask: Path) -> str:
        table = self.map.get("*") or next(
            (self.map[k] for k in (image_key, image.name, image.stem) if k in self.map), {}
        )
        name = table.get(instance, self.default)
        if name is None:
            raise ConvertError(
                f"{mask}: instance id {instance} has no class in {self.path}; add it there or "
                "pass --class-name NAME for instances the map does not name"
            )
        return name


def _check_size(mask: np.ndarray, mask_path: Path, image: Path, info: Any) -> None:
    h, w = mask.shape[:2]
    if (w, h) != (info.width, info.height):
        hint = ""
        if info.orientation != 1 and (w, h) == (info.stored_width, info.stored_height):
            hint = (
                f"; the image's EXIF orientation {info.orientation} rotates it, the mask matches the "
                "unrotated pixels"
            )
        raise ConvertError(
            f"mask {mask_path} is {w}x{h} but its image {image} is {info.width}x{info.height}{hint}"
        )


def _objects(
    image: Path, key: str, mask_path: Path, info: Any, classes: _Classes, warnings: list[str]
) -> list[Obj]:
    if mask_path.is_file():
        ids = _read_mask(mask_path)
        _check_size(ids, mask_path, image, info)
        return [_instance(classes(image, key, str(v), mask_path), ids == v) for v in np.unique(ids) if v != 0]
    objects = []
    files = sorted(p for p in mask_path.iterdir() if p.is_file() and p.suffix.lower() in MASK_EXTENSIONS)
    if not files:
        warnings.append(f"{mask_path}: folder holds no mask images; {image.name} kept without annotations")
    for path in files:
        mask = _read_mask(path) != 0
        _check_size(mask, path, image, info)
        if not mask.any():
            warnings.append(f"{path}: instance mask is empty (all background); dropped")
            continue
        objects.append(_instance(classes(image, key, path.stem, path), mask))
    return objects


def _examples(names: list[str]) -> str:
    return ", ".join(names[:_SHOWN]) + (f", ... ({len(names)} in all)" if len(names) > _SHOWN else "")


def read_masks(
    src: Path,
    class_name: str | None = None,
    images_dir: str | None = None,
    masks_dir: str | None = None,
    classes: str | Path | None = None,
) -> Source:
    """Records for every image under the images folder, with one RLE object per mask instance."""
    if not src.is_dir():
        raise ConvertError(f"{src}: not a folder (masks layout: SRC/images/ and SRC/masks/)")
    img_dir = _folder(src, images_dir, "images", "--images-dir")
    mask_dir = _folder(src, masks_dir, "masks", "--masks-dir")
    if img_dir.resolve() == mask_dir.resolve():
        raise ConvertError(f"{img_dir}: images and masks must be in different folders")
    class_of = _Classes(Path(classes) if classes is not None else None, class_name, src)
    images = list_images(img_dir, recursive=True)
    if not images:
        raise ConvertError(f"{img_dir}: no image files")
    keys: dict[str, Path] = {}
    for image in images:
        other = keys.setdefault(_key(image, img_dir), image)
        if other != image:
            raise ConvertError(
                f"{img_dir}: {other.name} and {image.name} differ only in extension; their masks "
                "would share a name"
            )
    _refuse_lossy(mask_dir, set(keys))
    entries = _mask_entries(mask_dir)
    suffix = _suffix(set(keys), entries)
    warnings: list[str] = []
    records, missing, empty, used = [], [], [], set()
    for key, image in keys.items():
        info = read_image_info(image)
        rec = Record(image.relative_to(img_dir).as_posix(), info.width, info.height)
        mask_path = entries.get(key + suffix)
        if mask_path is None:
            missing.append(rec.file_name)
        else:
            used.add(mask_path)
            rec.objects = _objects(image, key, mask_path, info, class_of, warnings)
            if mask_path.is_file() and not rec.objects:
                empty.append(mask_path.name)
        records.append(rec)
    if len(missing) == len(records):
        raise ConvertError(
            f"{mask_dir}: no mask is named after an image of {img_dir} (for "
            f"{images[0].name} looked for {Path(_key(images[0], img_dir)).name}.png, "
            f"..._mask.png or a folder of that name)"
        )
    naming = f"a mask is named <image name>{suffix}, the naming most masks here share"
    if missing:
        warnings.append(
            f"{len(missing)} image(s) have no mask in {mask_dir} ({naming}) and are kept without annotations: "
            f"{_examples(missing)}"
        )
    if empty:
        warnings.append(
            f"{len(empty)} mask(s) hold only background; their images are kept without "
            f"annotations: {_examples(empty)}"
        )
    around = {parent for p in used for parent in p.parents}  # sub-folders that hold used masks
    orphans = [k for k, p in entries.items() if p not in used and p not in around and p.parent not in used]
    if orphans:
        warnings.append(
            f"{mask_dir}: {len(orphans)} mask(s) match no image and were ignored ({naming}): {_examples(orphans)}"
        )
    return Source(img_dir, records, None, warnings)
