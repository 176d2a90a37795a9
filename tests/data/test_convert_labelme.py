"""`data convert --from labelme` on LabelMe JSON files the tests write: polygons, rectangles, circles,
group_id instances, lines, empty labels, images elsewhere, embedded imageData."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from scratchlab.data.check import check_dataset
from scratchlab.data.convert import ConvertError, convert_dataset
from tests.data.test_check import errors


def _image(path: Path, w: int, h: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (20, 40, 200)).save(path)


def _shape(label: str, points: list, kind: str = "polygon", group: int | None = None) -> dict:
    return {
        "label": label,
        "points": points,
        "group_id": group,
        "description": "",
        "shape_type": kind,
        "flags": {},
    }


def _labelme(
    path: Path, image_path: str, shapes: list[dict], size: tuple[int, int], data: str | None = None
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "version": "5.4.1",
                "flags": {},
                "shapes": shapes,
                "imagePath": image_path,
                "imageData": data,
                "imageHeight": size[1],
                "imageWidth": size[0],
            }
        )
    )


def _by_file(coco: dict) -> dict[str, list[dict]]:
    names = {i["id"]: i["file_name"] for i in coco["images"]}
    out: dict[str, list[dict]] = {n: [] for n in names.values()}
    for a in sorted(coco["annotations"], key=lambda a: a["id"]):
        out[names[a["image_id"]]].append(a)
    return out


def test_shapes_groups_and_images_in_another_folder(tmp_path):
    src = tmp_path / "src"
    _image(src / "one.jpg", 60, 40)
    _image(tmp_path / "src" / "pics" / "two.png", 30, 30)
    _labelme(
        src / "one.json",
        "one.jpg",
        [
            _shape("dog", [[0, 0], [10, 0], [0, 10]]),
            _shape("dog", [[20, 20], [30, 20], [20, 30]], group=1),  # one dog drawn in two parts
            _shape("dog", [[40, 20], [50, 20], [40, 30]], group=1),
            _shape(" cat ", [[55, 30], [5, 35]], kind="rectangle"),  # corners in any order; box-only
            _shape("cat", [[20, 10], [25, 10]], kind="circle"),
            _shape("cat", [[1, 1], [5, 5]], kind="line"),
        ],
        size=(60, 40),
    )
    _labelme(src / "ann" / "two.json", "../pics/two.png", [], size=(99, 99))  # stale size: warning
    summary = convert_dataset("labelme", src, tmp_path / "out")
    assert summary["image_root"] == str(src.resolve())
    assert (summary["images"], summary["annotations"], summary["categories"]) == (2, 4, ["cat", "dog"])
    assert summary["without_mask"] == 1 and not summary["box_only"]
    warnings = "\n".join(summary["warnings"])
    assert "one.json: shape 6 ('cat', line): has no area" in warnings
    assert "two.json: imageWidth x imageHeight say 99x99, the image is 30x30" in warnings
    coco = json.loads(Path(summary["files"][0]).read_text())
    by = _by_file(coco)
    assert by["pics/two.png"] == []
    tri, grouped, rect, circle = by["one.jpg"]
    assert tri["bbox"] == [0, 0, 10, 10] and tri["segmentation"] == [[0, 0, 10, 0, 0, 10]]
    assert (
        grouped["bbox"] == [20, 20, 30, 10] and grouped["area"] == 100 and len(grouped["segmentation"]) == 2
    )
    assert rect["bbox"] == [5, 30, 50, 5] and rect["area"] == 250 and "segmentation" not in rect
    assert circle["bbox"] == pytest.approx([15, 5, 10, 10], abs=0.01)
    assert circle["area"] == pytest.approx(math.pi * 25, rel=0.01)
    assert not errors(check_dataset(summary["files"][0], summary["image_root"]))


def test_single_file_empty_label_and_class_name(tmp_path):
    src = tmp_path / "src"
    _image(src / "a.jpg", 20, 20)
    _labelme(src / "a.json", "a.jpg", [_shape("", [[0, 0], [10, 0], [0, 10]])], size=(20, 20))
    with pytest.raises(ConvertError, match=r"a\.json: shape 1: empty label; pass --class-name NAME"):
        convert_dataset("labelme", src / "a.json", tmp_path / "out")
    summary = convert_dataset("labelme", src / "a.json", tmp_path / "out", class_name="leaf")
    assert summary["categories"] == ["leaf"]


@pytest.mark.parametrize(
    "shape, match",
    [
        (
            _shape("a", [[0, 0], [1, 1], [2, 2]], kind="rectangle"),
            r"shape 1 \('a', rectangle\): a rectangle needs 2",
        ),
        (_shape("a", [[0, 0], [1]]), r"shape 1 \('a', polygon\): 'points' must be a list of \[x, y\] pairs"),
        (_shape("a", [[0, 0], ["x", 1], [3, 3]]), r"shape 1 \('a', polygon\): x: 'x' is not a number"),
        (
            _shape("a", [[0, 0], [4, 4]], kind="mask"),
            r"shape 1 \('a', mask\): 'mask' shapes are not supported",
        ),
    ],
)
def test_bad_shapes_name_file_and_shape(tmp_path, shape, match):
    src = tmp_path / "src"
    _image(src / "a.jpg", 20, 20)
    _labelme(src / "a.json", "a.jpg", [shape], size=(20, 20))
    with pytest.raises(ConvertError, match=r"a\.json: " + match):
        convert_dataset("labelme", src, tmp_path / "out")


def test_missing_image_embedded_data_and_other_json(tmp_path):
    src = tmp_path / "src"
    _labelme(src / "a.json", "a.jpg", [], size=(20, 20), data="aGVsbG8=")
    (src / "classes.json").write_text(json.dumps(["a", "b"]))
    with pytest.raises(
        ConvertError, match=r"a\.json: image 'a\.jpg' not found at .* embeds the image in 'imageData'"
    ):
        convert_dataset("labelme", src, tmp_path / "out")
    _image(src / "a.jpg", 20, 20)
    summary = convert_dataset("labelme", src, tmp_path / "out")
    assert summary["images"] == 1
    assert any("classes.json: not a LabelMe file" in w for w in summary["warnings"])
    _labelme(src / "b.json", "a.jpg", [], size=(20, 20))
    with pytest.raises(ConvertError, match=r"b\.json: describes .*a\.jpg, which .*a\.json already describes"):
        convert_dataset("labelme", src, tmp_path / "out")
