"""check_dataset on a clean COCO dataset and on many ways of breaking it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from scratchlab.data.check import Problem, check_dataset, format_report


def _noise_image(path: Path, w: int, h: int, orientation: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(w * h).integers(0, 255, (h, w, 3), dtype=np.uint8)
    kwargs = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    Image.fromarray(arr).save(path, **kwargs)


def errors(problems: list[Problem]) -> list[Problem]:
    """The problems that fail a check (warnings alone do not)."""
    return [p for p in problems if p.severity == "error"]


def _clean(root: Path) -> tuple[dict, Path]:
    """Three images (JPEG, PNG, JPEG in a sub-folder) with a polygon, a compressed and a raw RLE."""
    img_dir = root / "images"
    _noise_image(img_dir / "a.jpg", 40, 30)
    _noise_image(img_dir / "b.png", 50, 20)
    _noise_image(img_dir / "sub" / "c.jpg", 30, 30)
    mask = np.zeros((20, 50), np.uint8, order="F")
    mask[5:10, 10:30] = 1
    rle = mask_utils.encode(mask)
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
            {"id": 2, "file_name": "b.png", "width": 50, "height": 20},
            {"id": 3, "file_name": "sub/c.jpg", "width": 30, "height": 30},
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [0, 0, 40, 30],
                "area": 600,
                "iscrowd": 0,
                "segmentation": [[0, 0, 40, 0, 40, 30, 0, 30]],
            },
            {
                "id": 2,
                "image_id": 2,
                "category_id": 2,
                "bbox": [10, 5, 20, 5],
                "area": 100,
                "iscrowd": 1,
                "segmentation": {"size": [20, 50], "counts": rle["counts"].decode("ascii")},
            },
            {
                "id": 3,
                "image_id": 3,
                "category_id": 1,
                "bbox": [29.5, 1, 1.4, 2],
                "area": 3,
                "iscrowd": 1,
                "segmentation": {"size": [30, 30], "counts": [10, 20, 870]},
            },
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    return data, img_dir


def _write(root: Path, data: dict | str) -> Path:
    path = root / "ann.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_clean_dataset_has_no_problems(tmp_path):
    data, img_dir = _clean(tmp_path)
    problems = check_dataset(_write(tmp_path, data), img_dir)
    assert problems == []
    assert format_report(problems) == "no problems found"


def _set(path: str, value) -> Callable:
    """A mutation that sets data[k1][i][k2]... = value (path like 'annotations.0.bbox')."""

    def mutate(d, img_dir):
        *head, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        obj = d
        for p in head:
            obj = obj[p]
        obj[last] = value

    return mutate


def _delete(path: str) -> Callable:
    def mutate(d, img_dir):
        *head, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        obj = d
        for p in head:
            obj = obj[p]
        del obj[last]

    return mutate


def _truncate(rel: str) -> Callable:
    def mutate(d, img_dir):
        data = (img_dir / rel).read_bytes()
        (img_dir / rel).write_bytes(data[: len(data) // 2])

    return mutate


def _exif_rotated(d, img_dir):
    _noise_image(img_dir / "a.jpg", 40, 30, orientation=6)  # displays as 30x40


# (id, mutation, file the line names ("json" or an image path), record, message fragment, severity)
CASES = [
    ("not_json", lambda d, _: "{ images: [", "json", "line 1 column 3", "not valid JSON", "error"),
    ("top_level_list", lambda d, _: "[1, 2]", "json", "top level", "is a JSON list", "error"),
    ("missing_images", _delete("images"), "json", "top level", "missing the 'images' list", "error"),
    (
        "missing_annotations",
        _delete("annotations"),
        "json",
        "top level",
        "missing the 'annotations' list",
        "error",
    ),
    ("images_not_list", _set("images", {"a": 1}), "json", "'images'", "is a dict, expected a list", "error"),
    (
        "image_not_object",
        lambda d, _: d["images"].append("x.jpg"),
        "json",
        "images[3]",
        "is a str, expected an object",
        "error",
    ),
    (
        "duplicate_image_id",
        _set("images.1.id", 1),
        "json",
        "image id 1",
        "duplicate id: images[0] and images[1]",
        "error",
    ),
    (
        "duplicate_annotation_id",
        _set("annotations.2.id", 1),
        "json",
        "annotation id 1",
        "duplicate id: annotations[0] and annotations[2]",
        "error",
    ),
    ("duplicate_category_id", _set("categories.1.id", 1), "json", "category id 1", "duplicate id", "error"),
    (
        "category_without_name",
        _delete("categories.1.name"),
        "json",
        "categories[1]",
        "missing or empty 'name'",
        "error",
    ),
    (
        "duplicate_category_name",
        _set("categories.1.name", "cat"),
        "json",
        "categories[1]",
        "name 'cat' repeats categories[0]",
        "error",
    ),
    (
        "unknown_image_id",
        _set("annotations.1.image_id", 99),
        "json",
        "annotation id 2",
        "unknown image_id 99",
        "error",
    ),
    (
        "unhashable_image_id",
        _set("annotations.1.image_id", [2]),
        "json",
        "annotation id 2",
        "unknown image_id [2]",
        "error",
    ),
    (
        "unknown_category_id",
        _set("annotations.0.category_id", 7),
        "json",
        "annotation id 1",
        "unknown category_id 7",
        "error",
    ),
    (
        "bbox_wrong_length",
        _set("annotations.0.bbox", [1, 2, 3]),
        "json",
        "annotation id 1",
        "bbox must be a list of 4 numbers",
        "error",
    ),
    (
        "bbox_nan",
        _set("annotations.0.bbox", [1, float("nan"), 3, 4]),
        "json",
        "annotation id 1",
        "bbox[1]=nan",
        "error",
    ),
    (
        "bbox_string",
        _set("annotations.0.bbox", [1, 2, "10", 4]),
        "json",
        "annotation id 1",
        "bbox[2]='10'",
        "error",
    ),
    (
        "bbox_negative_width",
        _set("annotations.0.bbox", [5, 5, -3, 4]),
        "json",
        "annotation id 1",
        "width and height must be > 0",
        "error",
    ),
    (
        "bbox_outside_image",
        _set("annotations.0.bbox", [30, 5, 20, 10]),
        "json",
        "annotation id 1",
        "lies outside the 40x30 image",
        "error",
    ),
    ("bbox_missing", _delete("annotations.0.bbox"), "json", "annotation id 1", "missing 'bbox'", "error"),
    (
        "polygon_odd_length",
        _set("annotations.0.segmentation", [[1, 1, 5, 1, 5]]),
        "json",
        "annotation id 1",
        "segmentation[0] has 5 values",
        "error",
    ),
    (
        "polygon_too_short",
        _set("annotations.0.segmentation", [[1, 1, 5, 5]]),
        "json",
        "annotation id 1",
        "segmentation[0] has 4 values",
        "error",
    ),
    (
        "polygon_outside",
        _set("annotations.0.segmentation", [[0, 0, 80, 0, 0, 30]]),
        "json",
        "annotation id 1",
        "points outside the 40x30 image",
        "error",
    ),
    (
        "segmentation_string",
        _set("annotations.0.segmentation", "abc"),
        "json",
        "annotation id 1",
        "must be a polygon list or an RLE object",
        "error",
    ),
    (
        "rle_size_mismatch",
        _set("annotations.1.segmentation.size", [21, 50]),
        "json",
        "annotation id 2",
        "RLE size [21, 50] does not match the image's [height, width] [20, 50]",
        "error",
    ),
    (
        "rle_garbage_counts",
        _set("annotations.1.segmentation.counts", "!!garbage~~"),
        "json",
        "annotation id 2",
        "RLE 'counts' do not decode to a 20x50 mask",
        "error",
    ),
    (
        "rle_counts_wrong_sum",
        _set("annotations.2.segmentation.counts", [10, 20, 30]),
        "json",
        "annotation id 3",
        "do not decode to a 30x30 mask",
        "error",
    ),
    (
        "rle_counts_wrong_type",
        _set("annotations.2.segmentation.counts", 5),
        "json",
        "annotation id 3",
        "RLE 'counts' must be a string or a list of integers",
        "error",
    ),
    (
        "area_negative",
        _set("annotations.0.area", -1),
        "json",
        "annotation id 1",
        "area must be a non-negative number",
        "error",
    ),
    ("area_missing", _delete("annotations.0.area"), "json", "annotation id 1", "missing 'area'", "error"),
    (
        "annotation_id_zero",
        _set("annotations.0.id", 0),
        "json",
        "annotation id 0",
        "ids must be >= 1",
        "error",
    ),
    (
        "iscrowd_two",
        _set("annotations.0.iscrowd", 2),
        "json",
        "annotation id 1",
        "iscrowd must be 0 or 1",
        "error",
    ),
    (
        "width_not_int",
        _set("images.0.width", "40"),
        "json",
        "image id 1",
        "'width' must be a positive integer",
        "error",
    ),
    (
        "missing_image_file",
        lambda d, img_dir: (img_dir / "a.jpg").unlink(),
        "a.jpg",
        "image id 1",
        "image file not found",
        "error",
    ),
    (
        "corrupt_image",
        lambda d, img_dir: (img_dir / "b.png").write_bytes(b"not a png"),
        "b.png",
        "image id 2",
        "cannot read image",
        "error",
    ),
    ("truncated_image", _truncate("sub/c.jpg"), "sub/c.jpg", "image id 3", "truncated", "error"),
    (
        "size_mismatch",
        _set("images.0.width", 41),
        "a.jpg",
        "image id 1",
        "declared 41x30 but the image is 40x30",
        "error",
    ),
    (
        "exif_size_mismatch",
        _exif_rotated,
        "a.jpg",
        "image id 1",
        "the image is 30x40 after EXIF orientation (stored 40x30, EXIF orientation 6)",
        "error",
    ),
    (
        "absolute_path",
        lambda d, img_dir: d["images"][0].update(file_name=str(img_dir / "a.jpg")),
        "json",
        "image id 1",
        "is absolute",
        "error",
    ),
    (
        "dotdot_path",
        _set("images.0.file_name", "sub/../../a.jpg"),
        "json",
        "image id 1",
        "escapes the images folder",
        "error",
    ),
    (
        "duplicate_file_name",
        _set("images.1.file_name", "a.jpg"),
        "json",
        "image id 2",
        "file_name 'a.jpg' is also used by image id 1",
        "error",
    ),
    (
        "image_without_annotations",
        lambda d, _: d["annotations"].pop(),
        "json",
        "image id 3",
        "has no annotations (sub/c.jpg)",
        "warning",
    ),
]


@pytest.mark.parametrize(
    "case_id, mutate, file, record, fragment, severity", CASES, ids=[c[0] for c in CASES]
)
def test_malformed_dataset_is_reported_in_one_line(
    tmp_path, case_id, mutate, file, record, fragment, severity
):
    data, img_dir = _clean(tmp_path)
    raw = mutate(data, img_dir)
    ann = _write(tmp_path, raw if isinstance(raw, str) else data)
    problems = check_dataset(ann, img_dir)
    expected_file = str(ann) if file == "json" else str(img_dir / file)
    hits = [p for p in problems if p.record == record and fragment in p.message]
    assert hits, f"no '{record}: ...{fragment}' among:\n" + "\n".join(map(str, problems))
    p = hits[0]
    assert p.file == expected_file and p.severity == severity
    line = str(p)
    assert line.startswith(f"{expected_file}: {record}: ") and fragment in line and "\n" not in line
    if case_id == "size_mismatch":  # no EXIF rotation: the message does not send the user looking for one
        assert "EXIF" not in p.message
    if severity == "error":
        assert errors(problems)
    else:  # the only problem is this warning, and warnings do not fail a check
        assert problems == [p] and not errors(problems)


@pytest.mark.parametrize(
    "text",
    [
        "null",
        "123",
        '"str"',
        "",
        '{"images": null, "annotations": 5, "categories": "x"}',
        json.dumps(
            {
                "images": [{"id": [1], "file_name": 5, "width": None}, {"id": 2, "file_name": None}],
                "annotations": [
                    {
                        "id": {},
                        "image_id": {},
                        "category_id": [],
                        "bbox": {},
                        "area": "big",
                        "segmentation": {"counts": [1, "a"], "size": "x"},
                        "iscrowd": [],
                    },
                    {"id": 3, "image_id": 2, "segmentation": [[1, "a", 3, 4, 5, 6], 7]},
                ],
                "categories": [{"id": "1", "name": 3}, None],
            }
        ),
    ],
)
def test_garbage_never_raises(tmp_path, text):
    problems = check_dataset(_write(tmp_path, text), tmp_path)
    assert problems and all(isinstance(p, Problem) for p in problems)
    assert errors(problems)
    report = format_report(problems)
    assert report.count("\n") + 1 >= min(len(problems), 2)


def test_missing_json_and_missing_images_folder(tmp_path):
    problems = check_dataset(tmp_path / "none.json", tmp_path)
    assert [str(p) for p in problems] == [f"{tmp_path / 'none.json'}: file: no such file"]
    data, _ = _clean(tmp_path)
    problems = check_dataset(_write(tmp_path, data), tmp_path / "nowhere")
    assert [p.record for p in problems] == ["images folder"]
    assert problems[0].file == str(tmp_path / "nowhere")


def test_report_caps_floods_but_keeps_counts(tmp_path):
    data, img_dir = _clean(tmp_path)
    for k in range(30):
        data["annotations"].append(
            {"id": 100 + k, "image_id": 1, "category_id": 1, "bbox": [0, 0, -1, 1], "area": 1}
        )
    problems = check_dataset(_write(tmp_path, data), img_dir)
    assert len(problems) == 30
    report = format_report(problems, max_per_kind=5).splitlines()
    assert len(report) == 5 + 2
    assert report[5] == "... and 25 more 'bbox' problems (30 in all)"
    assert report[6] == "30 error(s), 0 warning(s) (bbox: 30)"


def test_progress_bar_only_when_asked(tmp_path, capsys):
    data, img_dir = _clean(tmp_path)
    ann = _write(tmp_path, data)
    check_dataset(ann, img_dir)
    assert capsys.readouterr().err == ""
    assert not errors(check_dataset(ann, img_dir, progress=True))
    err = capsys.readouterr().err
    assert "checking ann.json" in err and "3/3" in err


@pytest.mark.parametrize("key", ["images", "annotations", "categories"])
@pytest.mark.parametrize("big", [2**63, -(2**63) - 1, 10**30])
def test_ids_past_64_bits_are_refused(tmp_path, key, big):
    data, img_dir = _clean(tmp_path)
    data[key][0]["id"] = big
    if key == "images":
        data["annotations"][0]["image_id"] = big
    if key == "categories":
        data["annotations"][0]["category_id"] = big
        data["annotations"][2]["category_id"] = big
    problems = check_dataset(_write(tmp_path, data), img_dir)
    assert any(p.kind == "id" and "signed 64-bit" in p.message for p in problems), problems
