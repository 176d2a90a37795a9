"""COCO JSON -> an Ultralytics dataset, so the same data can be trained with Ultralytics side by side.

``OUT/data.yaml`` (``path`` absolute, ``train`` / ``val``, ``names`` in category-id order: the category
with the k-th smallest id is class k - 1), ``OUT/images/<split>/<file_name>`` (symlinks to the
originals, or copies), and beside them the label files where Ultralytics looks (the last ``images`` folder of the path
replaced by ``labels``, suffix ``.txt``), one line per non-crowd annotation:
a segment line when it is one polygon, a pose line (box and K ``x y v`` points, ``kpt_shape`` and
``flip_idx`` in the YAML) for keypoint data, else a box line. Coordinates are normalised to 6 decimals.
The split of each file is ``train`` or ``val`` when its name says so (``instances_val.json``), else its
stem; a single file is both ``train`` and ``val``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from ..utils.io import write_text
from .convert._common import ensure_outside
from .convert.yolo_dataset import inside, label_path
from .keypoints import keypoint_schema

__all__ = ["export_yolo"]


def _split_name(path: Path) -> str:
    stem = path.stem
    return "val" if "val" in stem else "train" if "train" in stem else stem


def _read(path: Path) -> dict[str, Any]:
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable COCO JSON file: {err}") from err
    if not isinstance(coco, dict) or not all(isinstance(coco.get(k), list) for k in ("images", "categories")):
        raise ValueError(f"{path}: a COCO file needs 'images' and 'categories' lists")
    return coco


def _n(v: float) -> str:
    return f"{min(max(v, 0.0), 1.0):.6f}"


def _line(ann: dict[str, Any], cls: int, w: int, h: int, num_keypoints: int) -> str:
    """One label line; ``num_keypoints`` K > 0 makes it a pose line (an object without keypoints gets K
    unlabelled points, as every line of a pose dataset has K)."""
    x, y, bw, bh = (float(v) for v in ann["bbox"])
    box = [_n((x + bw / 2) / w), _n((y + bh / 2) / h), _n(bw / w), _n(bh / h)]
    if num_keypoints:
        kps = ann.get("keypoints") or [0] * (3 * num_keypoints)
        pts = [f"{_n(kps[i] / w)} {_n(kps[i + 1] / h)} {int(kps[i + 2])}" for i in range(0, len(kps), 3)]
        return " ".join([str(cls), *box, *pts])
    seg = ann.get("segmentation")
    if isinstance(seg, list) and len(seg) == 1 and len(seg[0]) >= 6:
        xy = seg[0]
        return " ".join([str(cls), *(_n(v / (w if i % 2 == 0 else h)) for i, v in enumerate(xy))])
    return " ".join([str(cls), *box])


def _place(src: Path, dst: Path, copy: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f"{dst.name}.{os.getpid()}.tmp")
    if copy:
        shutil.copy2(src, tmp)
    else:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(src.resolve())
    os.replace(tmp, dst)


def _export_split(
    coco: dict[str, Any],
    ann_file: Path,
    images: Path,
    out: Path,
    split: str,
    classes: dict[int, int],
    num_keypoints: int,
    copy: bool,
) -> dict[str, int]:
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in coco.get("annotations", []):
        by_image.setdefault(a["image_id"], []).append(a)
    counts = {"images": 0, "annotations": 0, "crowd_skipped": 0}
    for img in coco["images"]:
        where = f"{ann_file}: image id {img.get('id')}"
        src = inside(images, str(img["file_name"]), where)
        if not src.is_file():
            raise ValueError(f"{where}: no such image {src}")
        dst = out / "images" / split / os.path.normpath(str(img["file_name"]))
        _place(src, dst, copy)
        lines = []
        for a in by_image.get(img["id"], []):
            if a.get("iscrowd"):
                counts["crowd_skipped"] += 1
                continue
            lines.append(
                _line(a, classes[a["category_id"]], int(img["width"]), int(img["height"]), num_keypoints)
            )
        write_text(label_path(out, dst), "".join(f"{ln}\n" for ln in lines))
        counts["images"] += 1
        counts["annotations"] += len(lines)
    return counts


def export_yolo(
    ann_files: list[str | os.PathLike[str]],
    images: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    copy: bool = False,
) -> dict[str, Any]:
    """Write the COCO files ``ann_files`` (their images under ``images``: one folder for all, or one per
    file) as an Ultralytics dataset in ``out``. Returns ``{"yaml", "names", "splits": {split: counts}}``."""
    files = [Path(f) for f in ann_files]
    roots = [Path(d) for d in images] * (len(files) if len(images) == 1 else 1)
    if len(roots) != len(files):
        raise ValueError(
            f"--images: give one folder, or one per annotation file ({len(files)}), not {len(images)}"
        )
    out_path = Path(out)
    for root in roots:
        ensure_outside(out_path, root)
    cocos = [_read(f) for f in files]
    cats = sorted((int(c["id"]), str(c["name"])) for c in cocos[0]["categories"])
    for f, coco in zip(files[1:], cocos[1:], strict=True):
        if sorted((int(c["id"]), str(c["name"])) for c in coco["categories"]) != cats:
            raise ValueError(
                f"{f}: its categories differ from {files[0]}'s; the splits must share one class list"
            )
    splits = [_split_name(f) for f in files]
    if len(set(splits)) != len(splits):
        raise ValueError(f"{', '.join(map(str, files))}: two files map to the same split ({splits})")
    schema = keypoint_schema(cocos[0]["categories"], str(files[0]))
    classes = {cid: i for i, (cid, _) in enumerate(cats)}
    counts = {
        split: _export_split(
            coco, f, root, out_path, split, classes, len(schema) if schema is not None else 0, copy
        )
        for f, coco, root, split in zip(files, cocos, roots, splits, strict=True)
    }
    train = "train" if "train" in splits else splits[0]
    val = "val" if "val" in splits else next((s for s in splits if s != train), train)
    spec: dict[str, Any] = {
        "path": str(out_path.resolve()),
        "train": f"images/{train}",
        "val": f"images/{val}",
        "names": {i: name for i, (_, name) in enumerate(cats)},
    }
    if schema is not None:
        spec.update(kpt_shape=[len(schema), 3], flip_idx=list(schema.flip), kpt_names={0: list(schema.names)})
    yaml_file = write_text(out_path / "data.yaml", yaml.safe_dump(spec, sort_keys=False))
    return {"yaml": str(yaml_file), "names": [n for _, n in cats], "splits": counts}
