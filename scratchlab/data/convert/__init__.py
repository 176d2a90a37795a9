"""Convert PASCAL VOC, VIA, YOLO, LabelMe annotations or instance-mask images to COCO JSON.

:func:`convert_dataset` reads a source folder and writes COCO JSON; nothing is ever written into the
source, and images are not copied: each image's ``file_name`` is relative to the source's image folder,
which is returned as ``image_root`` for training's ``--images``. Image sizes always come from the image
files (after EXIF orientation), never from the annotation files. Ids are deterministic: images sorted by
``file_name`` get ids 1..N, categories sorted by name get ids 1..K (YOLO: the names file's order).
Each format is a reader (source -> :class:`~._common.Record` list) and :func:`~._common.build_coco` the
one writer. Per-format details live in the docstrings of :mod:`.voc`, :mod:`.via`, :mod:`.yolo`,
:mod:`.labelme` and :mod:`.masks`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...utils.io import write_json
from ..check import file_name_outside
from ..formats import CONVERT_HELP, FORMATS
from ._common import ConvertError, Source, build_coco, ensure_outside, split_coco, subset_coco
from .labelme import read_labelme
from .masks import read_masks
from .via import read_via
from .voc import read_voc
from .yolo import read_yolo

__all__ = ["CONVERT_HELP", "FORMATS", "ConvertError", "convert_dataset", "format_summary"]

# Options that only some readers take, and the formats they apply to.
_ONLY_FOR = {
    "attribute": ("--attribute", ("via",)),
    "images_dir": ("--images-dir", ("masks",)),
    "masks_dir": ("--masks-dir", ("masks",)),
    "classes": ("--classes", ("masks",)),
    "names": ("--names", ("yolo",)),
}


def _read(fmt: str, src: Path, options: dict[str, Any]) -> Source:
    for key, (flag, formats) in _ONLY_FOR.items():
        if options.get(key) is not None and fmt not in formats:
            raise ConvertError(f"{flag} only applies to --from {' / '.join(formats)}")
    class_name = options.get("class_name")
    if class_name is not None and not class_name.strip():
        raise ConvertError("--class-name must not be empty")
    class_name = class_name.strip() if class_name else None
    if fmt == "voc":
        return read_voc(src, class_name)
    if fmt == "via":
        return read_via(src, options.get("attribute"), class_name)
    if fmt == "yolo":
        names = options.get("names")
        return read_yolo(src, class_name, Path(names) if names is not None else None)
    if fmt == "labelme":
        return read_labelme(src, class_name)
    return read_masks(
        src, class_name, options.get("images_dir"), options.get("masks_dir"), options.get("classes")
    )


def convert_dataset(
    fmt: str,
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    split: float | None = None,
    seed: int = 0,
    *,
    attribute: str | None = None,
    class_name: str | None = None,
    images_dir: str | None = None,
    masks_dir: str | None = None,
    classes: str | os.PathLike[str] | None = None,
    names: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Convert the ``fmt`` (one of :data:`FORMATS`) dataset in ``src`` to COCO JSON under ``out``.

    Writes ``out/annotations.json``, or with ``split`` (the val fraction, e.g. 0.2) a seeded
    by-image split into ``out/annotations/instances_{train,val}.json``. ``attribute`` picks the VIA
    region attribute that holds the class; ``class_name`` is the class of objects without one (every
    object of a single-class set); ``images_dir``, ``masks_dir`` and ``classes`` are the masks
    reader's folders and class map; ``names`` the YOLO class names file. A YOLO dataset YAML with
    ``train`` and ``val`` writes ``out/annotations/instances_{train,val}.json`` following its split
    (``split`` is then refused). Returns ``{"images", "annotations", "categories", "files",
    "file_sizes" (each file's image and annotation counts), "image_root", "without_mask", "box_only", "warnings"}``. Raises :class:`ConvertError` (a
    ValueError) naming the file and record for bad input.
    """
    src_path, out_path = Path(src), Path(out)
    if fmt not in FORMATS:
        raise ConvertError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not src_path.exists():
        raise ConvertError(f"{src_path}: no such file or folder")
    ensure_outside(out_path, src_path if src_path.is_dir() else src_path.parent)
    source = _read(
        fmt,
        src_path,
        {
            "attribute": attribute,
            "class_name": class_name,
            "images_dir": images_dir,
            "masks_dir": masks_dir,
            "classes": classes,
            "names": names,
        },
    )
    ensure_outside(out_path, source.image_root)
    for rec in source.records:  # data check would refuse the file: never write it
        if (outside := file_name_outside(rec.file_name)) is not None:
            raise ConvertError(f"{src_path}: {outside}")
    coco = build_coco(source)
    if source.splits:
        if split is not None:
            raise ConvertError(
                f"{src_path}: the dataset has its own {' / '.join(source.splits)} split; "
                "--split is for a dataset without one"
            )
        parts = {
            out_path / "annotations" / f"instances_{name}.json": subset_coco(coco, set(files))
            for name, files in source.splits.items()
        }
    elif split is None:
        parts = {out_path / "annotations.json": coco}
    else:
        train, val = split_coco(coco, split, seed)
        parts = {
            out_path / "annotations" / "instances_train.json": train,
            out_path / "annotations" / "instances_val.json": val,
        }
    files = [str(write_json(path, part)) for path, part in parts.items()]
    sizes = [{"images": len(p["images"]), "annotations": len(p["annotations"])} for p in parts.values()]
    without_mask = sum("segmentation" not in a for a in coco["annotations"])
    return {
        "images": len(coco["images"]),
        "annotations": len(coco["annotations"]),
        "categories": [c["name"] for c in coco["categories"]],
        "files": files,
        "file_sizes": sizes,
        "image_root": str(source.image_root.resolve()),
        "without_mask": without_mask,
        "box_only": bool(coco["annotations"]) and without_mask == len(coco["annotations"]),
        "warnings": source.warnings,
    }


def format_summary(summary: dict[str, Any], max_warnings: int = 20) -> str:
    """Human-readable lines for a :func:`convert_dataset` summary (what the CLI prints)."""
    cats = summary["categories"]
    shown = ", ".join(cats[:20]) + (f", ... ({len(cats)} in all)" if len(cats) > 20 else "")
    lines = [
        f"{summary['images']} images, {summary['annotations']} annotations, "
        f"{len(cats)} {'category' if len(cats) == 1 else 'categories'}: {shown}"
    ]
    if summary.get("box_only"):
        lines.append(
            "box-only: no annotation has a mask; train a faster_rcnn config "
            "(configs/mini/faster_rcnn_gn_scratch.yaml on a CPU, "
            "configs/coco/faster_rcnn_R50_FPN_gn_scratch_3x.yaml full size); a mask_rcnn config needs masks"
        )
    elif summary.get("without_mask"):
        lines.append(
            f"warning: {summary['without_mask']} of {summary['annotations']} annotations are box-only "
            "(no mask); a mask_rcnn config would learn empty masks for them"
        )
    sizes = summary.get("file_sizes") or [None] * len(summary["files"])
    lines += [
        f"wrote {f}" + (f" ({n['images']} images, {n['annotations']} annotations)" if n else "")
        for f, n in zip(summary["files"], sizes, strict=True)
    ]
    lines.append(
        f"images stay in {summary['image_root']}  "
        "(pass it as --images, and to train as data.train_images / data.val_images)"
    )
    warnings = summary.get("warnings", [])
    lines += [f"warning: {w}" for w in warnings[:max_warnings]]
    if len(warnings) > max_warnings:
        lines.append(f"... and {len(warnings) - max_warnings} more warnings ({len(warnings)} in all)")
    return "\n".join(lines)
