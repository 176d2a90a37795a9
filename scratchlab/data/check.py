"""Check a COCO annotation file and its images before training on them.

:func:`check_dataset` never raises for bad input: every problem becomes a :class:`Problem`, printed as
one line ``FILE: RECORD: what is wrong``. Errors are things that break or silently corrupt training or
COCO evaluation; warnings (images without annotations) are reported but do not fail the check.
Images are opened and decoded (JPEGs at 1/8 scale, which still reads every byte) to catch truncated
files, and their size after EXIF orientation is compared with the declared width/height.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .check_keypoints import annotation_keypoint_problems, category_keypoint_problems
from .image_io import ImageLoadError, image_info
from .keypoints import keypoint_schema

__all__ = ["Problem", "check_dataset", "file_name_outside", "format_report"]

BOX_TOLERANCE = 1.0  # pixels a box or polygon may stick out of its image (rounding in tools)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: where (file, record), what, and how bad."""

    file: str
    record: str  # e.g. "image id 7", "annotation id 12", "categories[3]", "top level"
    message: str
    severity: str = "error"  # "error" or "warning"
    kind: str = "other"  # groups similar problems so a report can cap floods

    def __str__(self) -> str:
        tag = "warning: " if self.severity == "warning" else ""
        return f"{self.file}: {self.record}: {tag}{self.message}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _key(v: Any) -> int | None:
    """``v`` when it can be an id, else None (lists/dicts are unhashable and would crash a lookup)."""
    return v if _is_int(v) else None


def _describe(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def file_name_outside(name: str) -> str | None:
    """Why the image path ``name`` would leave its images folder (absolute, or through ``..``), or None."""
    norm = posixpath.normpath(name.replace("\\", "/"))
    if posixpath.isabs(norm) or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        return f"file_name {_describe(name)} is absolute; it must be relative to the images folder"
    if norm == ".." or norm.startswith("../"):
        return f"file_name {_describe(name)} escapes the images folder with '..'"
    return None


def _rle_string_counts(s: str) -> list[int] | None:
    """Run lengths of a compressed COCO RLE string (pycocotools' rleFrString), or None if malformed.
    Parsed here because pycocotools decodes garbage without bounds checks."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = k = 0
        more = True
        while more:
            if p >= len(s):
                return None
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


class _Checker:
    def __init__(self, ann_json: Path, images_dir: Path, progress: bool) -> None:
        self.file, self.images_dir, self.progress = str(ann_json), images_dir, progress
        self.problems: list[Problem] = []

    def add(
        self, record: str, message: str, kind: str, severity: str = "error", file: str | None = None
    ) -> None:
        self.problems.append(Problem(file or self.file, record, message, severity, kind))

    # ---- top level -------------------------------------------------------------------------------
    def load(self) -> dict[str, Any] | None:
        try:
            text = Path(self.file).read_text(encoding="utf-8")
        except FileNotFoundError:
            return self.add("file", "no such file", "json")
        except (OSError, UnicodeDecodeError) as err:
            return self.add("file", f"cannot read: {err}", "json")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            return self.add(f"line {err.lineno} column {err.colno}", f"not valid JSON: {err.msg}", "json")
        if not isinstance(data, dict):
            return self.add(
                "top level",
                f"is a JSON {type(data).__name__}, expected an object with "
                "'images', 'annotations' and 'categories'",
                "structure",
            )
        return data

    def section(self, data: dict[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
        """``(index, entry)`` for the dict entries of the list under ``key`` (the rest are reported)."""
        value = data.get(key)
        if value is None:
            self.add("top level", f"missing the '{key}' list", "structure")
            return []
        if not isinstance(value, list):
            self.add(f"'{key}'", f"is a {type(value).__name__}, expected a list", "structure")
            return []
        out = []
        for i, entry in enumerate(value):
            if isinstance(entry, dict):
                out.append((i, entry))
            else:
                self.add(f"{key}[{i}]", f"is a {type(entry).__name__}, expected an object", "structure")
        return out

    def ids(self, entries: list, what: str, key: str) -> dict[Any, dict[str, Any]]:
        """Entries by id; reports missing, non-integer and duplicate ids."""
        by_id: dict[Any, dict[str, Any]] = {}
        first: dict[Any, int] = {}
        for i, e in entries:
            v = e.get("id")
            if not _is_int(v):
                self.add(
                    f"{key}[{i}]",
                    "missing 'id'" if v is None else f"id {_describe(v)} is not an integer",
                    "id",
                )
            elif not -(2**63) <= v < 2**63:  # training and evaluation hold ids in int64 tensors and arrays
                self.add(f"{key}[{i}]", f"id {_describe(v)} does not fit a signed 64-bit integer", "id")
            elif v in by_id:
                self.add(
                    f"{what} id {v}",
                    f"duplicate id: {key}[{first[v]}] and {key}[{i}] both use it",
                    "duplicate-id",
                )
            else:
                by_id[v], first[v] = e, i
        return by_id

    # ---- records ---------------------------------------------------------------------------------
    def categories(self, entries: list) -> dict[Any, dict[str, Any]]:
        cats = self.ids(entries, "category", "categories")
        seen: dict[str, int] = {}
        for i, c in entries:
            name = c.get("name")
            if not isinstance(name, str) or not name.strip():
                self.add(f"categories[{i}]", "missing or empty 'name'", "category")
            elif name in seen:
                self.add(f"categories[{i}]", f"name {name!r} repeats categories[{seen[name]}]", "category")
            else:
                seen[name] = i
            for message in category_keypoint_problems(c):
                self.add(f"categories[{i}]", message, "keypoints")
        try:
            keypoint_schema([c for _, c in entries if isinstance(c.get("keypoints"), list)], "categories")
        except ValueError as err:
            self.add("categories", str(err), "keypoints")
        return cats

    def image(self, rec: str, img: dict[str, Any], names: dict[str, str], on_disk: bool) -> bool:
        """Checks one image record and its file; True when its declared width/height are valid."""
        ok = True
        for key in ("width", "height"):
            v = img.get(key)
            if not _is_int(v) or v <= 0:
                self.add(rec, f"'{key}' must be a positive integer, got {_describe(v)}", "image-size")
                ok = False
        name = img.get("file_name")
        if not isinstance(name, str) or not name.strip():
            self.add(rec, f"'file_name' must be a non-empty string, got {_describe(name)}", "path")
            return ok
        if name in names:
            self.add(rec, f"file_name {name!r} is also used by {names[name]}", "path")
        names.setdefault(name, rec)
        if (outside := file_name_outside(name)) is not None:
            self.add(rec, outside, "path")
            return ok
        norm = posixpath.normpath(name.replace("\\", "/"))
        if not on_disk:
            return ok
        path = self.images_dir / norm
        if not path.is_file():
            self.add(rec, "image file not found", "missing-image", file=str(path))
            return ok
        try:
            info = image_info(path, verify=True)
        except ImageLoadError as err:
            why = str(err).removeprefix(f"{path}: ")
            self.add(rec, why, "unreadable-image", file=str(path))
            return ok
        if ok and (info.width, info.height) != (img["width"], img["height"]):
            hint = ""  # EXIF is named only when the image has a rotation: it is then the likely cause
            if info.orientation != 1:
                hint = (
                    f" after EXIF orientation (stored {info.stored_width}x{info.stored_height}, "
                    f"EXIF orientation {info.orientation})"
                )
            self.add(
                rec,
                f"declared {img['width']}x{img['height']} but the image is {info.width}x{info.height}{hint}",
                "size-mismatch",
                file=str(path),
            )
        return ok

    def bbox(self, rec: str, box: Any, size: tuple[int, int] | None) -> None:
        if not isinstance(box, list) or len(box) != 4:
            self.add(rec, f"bbox must be a list of 4 numbers [x, y, w, h], got {_describe(box)}", "bbox")
            return
        bad = [f"bbox[{k}]={_describe(v)}" for k, v in enumerate(box) if not _is_num(v)]
        if bad:
            self.add(rec, f"bbox values must be finite numbers: {', '.join(bad)}", "bbox")
            return
        x, y, w, h = box
        if w <= 0 or h <= 0:
            self.add(rec, f"bbox width and height must be > 0, got {box}", "bbox")
        elif size is not None:
            iw, ih = size
            t = BOX_TOLERANCE
            if x < -t or y < -t or x + w > iw + t or y + h > ih + t:
                self.add(rec, f"bbox {box} lies outside the {iw}x{ih} image", "bbox")

    def segmentation(self, rec: str, seg: Any, size: tuple[int, int] | None) -> None:
        if isinstance(seg, list):
            for k, poly in enumerate(seg):
                where = f"segmentation[{k}]"
                if not isinstance(poly, list):
                    self.add(rec, f"{where} must be a list of numbers, got {_describe(poly)}", "segmentation")
                elif not all(_is_num(v) for v in poly):
                    self.add(rec, f"{where} holds values that are not finite numbers", "segmentation")
                elif len(poly) % 2 or len(poly) < 6:
                    self.add(
                        rec,
                        f"{where} has {len(poly)} values; a polygon needs an even count >= 6 (3 points)",
                        "segmentation",
                    )
                elif size is not None and (
                    min(poly) < -BOX_TOLERANCE
                    or max(poly[0::2]) > size[0] + BOX_TOLERANCE
                    or max(poly[1::2]) > size[1] + BOX_TOLERANCE
                ):
                    self.add(rec, f"{where} has points outside the {size[0]}x{size[1]} image", "segmentation")
        elif isinstance(seg, dict):
            self.rle(rec, seg, size)
        else:
            self.add(
                rec,
                f"segmentation must be a polygon list or an RLE object, got {_describe(seg)}",
                "segmentation",
            )

    def rle(self, rec: str, seg: dict[str, Any], size: tuple[int, int] | None) -> None:
        rle_size, counts = seg.get("size"), seg.get("counts")
        if not (
            isinstance(rle_size, list) and len(rle_size) == 2 and all(_is_int(v) and v > 0 for v in rle_size)
        ):
            return self.add(
                rec, f"RLE 'size' must be [height, width], got {_describe(rle_size)}", "segmentation"
            )
        h, w = rle_size
        if size is not None and (h, w) != (size[1], size[0]):
            self.add(
                rec,
                f"RLE size {rle_size} does not match the image's [height, width] [{size[1]}, {size[0]}]",
                "segmentation",
            )
        if isinstance(counts, str):
            runs = _rle_string_counts(counts)
        elif isinstance(counts, list) and all(_is_int(v) for v in counts):
            runs = counts
        else:
            return self.add(
                rec,
                f"RLE 'counts' must be a string or a list of integers, got {_describe(counts)}",
                "segmentation",
            )
        if runs is None or any(r < 0 for r in runs) or sum(runs) != h * w:
            return self.add(rec, f"RLE 'counts' do not decode to a {h}x{w} mask", "segmentation")
        try:
            from pycocotools import mask as mask_utils

            obj = (
                mask_utils.frPyObjects(seg, h, w)
                if isinstance(counts, list)
                else {"size": rle_size, "counts": counts.encode("ascii")}
            )
            mask_utils.area(obj)
        except Exception as err:  # pycocotools raises assorted types for bad RLEs
            self.add(rec, f"RLE rejected by pycocotools: {err}", "segmentation")

    def annotation(
        self, rec: str, a: dict[str, Any], images: dict, cats: dict, sizes: dict[Any, tuple[int, int]]
    ) -> None:
        if _is_int(a.get("id")) and a["id"] <= 0:
            # pycocotools' matcher stores matched gt ids and treats 0 as "no match": AP would be wrong.
            self.add(rec, "annotation ids must be >= 1 (pycocotools treats id 0 as unmatched)", "id")
        image_id = a.get("image_id")
        if _key(image_id) not in images:
            self.add(
                rec,
                "missing 'image_id'" if image_id is None else f"unknown image_id {_describe(image_id)}",
                "reference",
            )
        cat = a.get("category_id")
        if _key(cat) not in cats:
            self.add(
                rec,
                "missing 'category_id'" if cat is None else f"unknown category_id {_describe(cat)}",
                "reference",
            )
        size = sizes.get(_key(image_id))
        if "bbox" not in a:
            self.add(rec, "missing 'bbox'", "bbox")
        else:
            self.bbox(rec, a["bbox"], size)
        if "segmentation" in a:
            self.segmentation(rec, a["segmentation"], size)
        category = cats.get(_key(cat)) or {}
        for message in annotation_keypoint_problems(a, category.get("keypoints"), size, BOX_TOLERANCE):
            self.add(rec, message, "keypoints")
        area = a.get("area")
        if area is None:
            self.add(rec, "missing 'area' (COCO evaluation needs it)", "area")
        elif not _is_num(area) or area < 0:
            self.add(rec, f"area must be a non-negative number, got {_describe(area)}", "area")
        crowd = a.get("iscrowd", 0)
        if crowd not in (0, 1) or isinstance(crowd, bool | float):
            self.add(rec, f"iscrowd must be 0 or 1, got {_describe(crowd)}", "iscrowd")

    def run(self) -> list[Problem]:
        data = self.load()
        if data is None:
            return self.problems
        img_entries = self.section(data, "images")
        ann_entries = self.section(data, "annotations")
        cat_entries = self.section(data, "categories")
        if "images" in data and not img_entries and isinstance(data["images"], list):
            self.add("'images'", "is empty", "structure")
        if "categories" in data and not cat_entries and isinstance(data["categories"], list):
            self.add("'categories'", "is empty", "structure")
        cats = self.categories(cat_entries)
        images = self.ids(img_entries, "image", "images")
        anns = self.ids(ann_entries, "annotation", "annotations")
        folder_ok = self.images_dir.is_dir()
        if not folder_ok:
            self.add(
                "images folder",
                "not a folder; image files were not checked",
                "missing-image",
                file=str(self.images_dir),
            )
        sizes: dict[Any, tuple[int, int]] = {}
        names: dict[str, str] = {}
        bar = tqdm(
            img_entries, desc=f"checking {Path(self.file).name}", unit="img", disable=not self.progress
        )
        for i, img in bar:
            rec = f"image id {img['id']}" if images.get(_key(img.get("id"))) is img else f"images[{i}]"
            if self.image(rec, img, names, on_disk=folder_ok) and _is_int(img.get("id")):
                sizes[img["id"]] = (img["width"], img["height"])
        for i, a in ann_entries:
            rec = f"annotation id {a['id']}" if anns.get(_key(a.get("id"))) is a else f"annotations[{i}]"
            self.annotation(rec, a, images, cats, sizes)
        counts = Counter(_key(a.get("image_id")) for _, a in ann_entries)
        for image_id in images:
            if counts[image_id] == 0:
                name = images[image_id].get("file_name")  # the id alone does not say which photo
                what = f"has no annotations ({name})" if isinstance(name, str) else "has no annotations"
                self.add(f"image id {image_id}", what, "no-annotations", severity="warning")
        return self.problems


def check_dataset(
    ann_json: str | os.PathLike[str], images_dir: str | os.PathLike[str], progress: bool = False
) -> list[Problem]:
    """Every problem found in the COCO file ``ann_json`` and the images under ``images_dir``.

    Never raises for bad input; an empty list (or warnings only) means the dataset is usable.
    ``progress`` shows a progress bar (tqdm, on stderr) while the images are decoded.
    """
    checker = _Checker(Path(ann_json), Path(images_dir), progress)
    try:
        return checker.run()
    except Exception as err:  # a checker bug must still end as one report line, not a traceback
        checker.add(
            "check",
            f"internal error while checking ({type(err).__name__}: {err}); problems above are still valid",
            "internal",
        )
        return checker.problems


def format_report(problems: list[Problem], max_per_kind: int = 10) -> str:
    """One line per problem, at most ``max_per_kind`` of each kind, then counts; for the CLI."""
    shown: Counter[str] = Counter()
    total = Counter(p.kind for p in problems)
    lines = []
    for p in problems:
        shown[p.kind] += 1
        if shown[p.kind] <= max_per_kind:
            lines.append(str(p))
        elif shown[p.kind] == total[p.kind]:
            lines.append(
                f"... and {total[p.kind] - max_per_kind} more '{p.kind}' problems ({total[p.kind]} in all)"
            )
    n_err = sum(p.severity == "error" for p in problems)
    n_warn = len(problems) - n_err
    if not problems:
        lines.append("no problems found")
    else:
        by_kind = ", ".join(f"{k}: {n}" for k, n in total.items())
        lines.append(f"{n_err} error(s), {n_warn} warning(s) ({by_kind})")
    return "\n".join(lines)
