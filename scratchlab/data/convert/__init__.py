"""Convert PASCAL VOC, VIA or YOLO annotations to COCO JSON.

:func:`convert_dataset` reads a source folder and writes COCO JSON; nothing is ever written into the
source, and images are not copied: each image's ``file_name`` is relative to the source's image folder,
which is returned as ``image_root`` for training's ``--images``. Image sizes always come from the image
files (after EXIF orientation), never from the annotation files. Ids are deterministic: images sorted by
``file_name`` get ids 1..N, categories sorted by name get ids 1..K.
Per-format details live in the docstrings of :mod:`.voc`, :mod:`.via` and :mod:`.yolo`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._common import ConvertError, build_coco, ensure_outside, split_coco, write_json
from .via import read_via
from .voc import read_voc
from .yolo import read_yolo

__all__ = ["CONVERT_HELP", "FORMATS", "ConvertError", "convert_dataset", "format_summary"]

FORMATS = ("voc", "via", "yolo")

# User-facing text for `scratchlab data convert --help`.
CONVERT_HELP = """\
Convert annotations to COCO JSON. Formats:
  voc   SRC/annotations/*.xml + SRC/images/ (or VOC's Annotations/ + JPEGImages/); boxes as
        Detectron2 reads VOC (x = xmin - 1, w = xmax - xmin + 1), clipped to the image;
        'difficult' objects are kept (marked "difficult": 1).
  via   a VGG Image Annotator 1.x/2.x JSON (SRC is the file or its folder) beside its images;
        polygon/polyline/rect/circle/ellipse regions -> polygons + boxes; the class is the
        region attribute given by --attribute, else the project's first region attribute.
  yolo  SRC/images/, SRC/labels/*.txt ('cls cx cy w h' normalised, or segment polygons) and
        data.yaml (names:), classes.txt or obj.names; images without labels are kept empty.
Output: DIR/annotations.json, or with --split F a seeded split by image into
DIR/annotations/instances_train.json and DIR/annotations/instances_val.json (F = val fraction).
Images are not copied: file_name is relative to the source image folder, printed at the end;
pass that folder as --images. Image sizes are read from the image files (after EXIF rotation).
Nothing is written into SRC."""


def convert_dataset(fmt: str, src: str | os.PathLike[str], out: str | os.PathLike[str],
                    split: float | None = None, seed: int = 0, attribute: str | None = None) -> dict[str, Any]:
    """Convert the ``fmt`` ("voc", "via" or "yolo") dataset in ``src`` to COCO JSON under ``out``.

    Writes ``out/annotations.json``, or with ``split`` (the val fraction, e.g. 0.2) a seeded
    by-image split into ``out/annotations/instances_{train,val}.json``. ``attribute`` picks the VIA
    region attribute that holds the class. Returns ``{"images", "annotations", "categories",
    "files", "image_root", "warnings"}``. Raises :class:`ConvertError` (a ValueError) naming the file
    and record for bad input.
    """
    src_path, out_path = Path(src), Path(out)
    if fmt not in FORMATS:
        raise ConvertError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not src_path.exists():
        raise ConvertError(f"{src_path}: no such file or folder")
    if attribute is not None and fmt != "via":
        raise ConvertError("--attribute only applies to --from via")
    ensure_outside(out_path, src_path if src_path.is_dir() else src_path.parent)
    if fmt == "voc":
        source = read_voc(src_path)
    elif fmt == "via":
        source = read_via(src_path, attribute)
    else:
        source = read_yolo(src_path)
    coco = build_coco(source)
    if split is None:
        files = [write_json(coco, out_path / "annotations.json")]
    else:
        train, val = split_coco(coco, split, seed)
        files = [write_json(train, out_path / "annotations" / "instances_train.json"),
                 write_json(val, out_path / "annotations" / "instances_val.json")]
    return {
        "images": len(coco["images"]),
        "annotations": len(coco["annotations"]),
        "categories": [c["name"] for c in coco["categories"]],
        "files": files,
        "image_root": str(source.image_root.resolve()),
        "warnings": source.warnings,
    }


def format_summary(summary: dict[str, Any], max_warnings: int = 20) -> str:
    """Human-readable lines for a :func:`convert_dataset` summary (what the CLI prints)."""
    cats = summary["categories"]
    shown = ", ".join(cats[:20]) + (f", ... ({len(cats)} in all)" if len(cats) > 20 else "")
    lines = [f"{summary['images']} images, {summary['annotations']} annotations, "
             f"{len(cats)} categories: {shown}"]
    lines += [f"wrote {f}" for f in summary["files"]]
    lines.append(f"images stay in {summary['image_root']}  (pass it as --images)")
    warnings = summary.get("warnings", [])
    lines += [f"warning: {w}" for w in warnings[:max_warnings]]
    if len(warnings) > max_warnings:
        lines.append(f"... and {len(warnings) - max_warnings} more warnings ({len(warnings)} in all)")
    return "\n".join(lines)
