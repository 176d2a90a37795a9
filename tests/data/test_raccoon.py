"""The real raccoon photographs (PASCAL VOC, read-only in ../shared): convert to COCO and check clean."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scratchlab.data.check import check_dataset
from scratchlab.data.convert import convert_dataset
from scratchlab.data.image_io import image_size, load_image
from tests.data.test_check import errors

RACCOON = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "raccoon"

pytestmark = pytest.mark.skipif(
    not (RACCOON / "annotations").is_dir(), reason=f"raccoon dataset not found at {RACCOON}"
)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_raccoon_converts_to_200_images_217_boxes_and_checks_clean(tmp_path):
    before = _snapshot(RACCOON)
    summary = convert_dataset("voc", RACCOON, tmp_path / "coco")
    assert (summary["images"], summary["annotations"], summary["categories"]) == (200, 217, ["raccoon"])
    assert summary["image_root"] == str((RACCOON / "images").resolve())
    coco = json.loads(Path(summary["files"][0]).read_text())
    assert len({i["file_name"] for i in coco["images"]}) == 200

    # One box traced by hand from its XML: 1-based inclusive VOC -> COCO [x, y, w, h].
    obj = ET.parse(RACCOON / "annotations" / "raccoon-1.xml").getroot().find("object/bndbox")
    xmin, ymin, xmax, ymax = (float(obj.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
    image_id = next(i["id"] for i in coco["images"] if i["file_name"] == "raccoon-1.jpg")
    (ann,) = [a for a in coco["annotations"] if a["image_id"] == image_id]
    assert ann["bbox"] == [xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]

    problems = check_dataset(summary["files"][0], summary["image_root"])
    assert not errors(problems), "\n".join(map(str, problems))
    assert problems == []  # every raccoon photo has at least one box

    split = convert_dataset("voc", RACCOON, tmp_path / "split", split=0.2, seed=0)
    train, val = (json.loads(Path(f).read_text()) for f in split["files"])
    assert (len(train["images"]), len(val["images"])) == (160, 40)
    assert len(train["annotations"]) + len(val["annotations"]) == 217
    for f in split["files"]:
        assert not errors(check_dataset(f, split["image_root"]))

    assert _snapshot(RACCOON) == before  # nothing written into the shared folder


def test_raccoon_greyscale_photos_load_as_rgb():
    grey = []
    for path in sorted((RACCOON / "images").glob("*.jpg")):
        with Image.open(path) as im:
            if im.mode == "L":
                grey.append(path)
    assert grey, "the raccoon set is documented to contain grey-scale JPEGs"
    for path in grey:
        img = load_image(path)
        arr = np.asarray(img)
        assert img.mode == "RGB" and img.size == image_size(path)
        assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
