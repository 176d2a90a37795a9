"""convert_dataset on Ultralytics datasets as they come: a YAML of any name with path/train/val/names,
folders or .txt image lists, keypoints, and paths that leave the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from scratchlab.cli import main
from scratchlab.data.convert import ConvertError, convert_dataset
from scratchlab.data.keypoints import keypoint_schema

NAMES = {0: "person", 1: "bicycle", 2: "airplane"}  # not alphabetical: ids must follow the file


def _image(path: Path, w: int = 40, h: int = 20) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (90, 120, 30)).save(path)


def _label(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _ultralytics(root: Path, **yaml_keys) -> Path:
    """coco8-style: images/{train2017,val2017}, labels/ beside them, the YAML named coco8.yaml."""
    for split, stems in (("train2017", ("t1", "t2")), ("val2017", ("v1",))):
        for stem in stems:
            _image(root / "images" / split / f"{stem}.jpg")
    _label(root / "labels" / "train2017" / "t1.txt", "2 0.5 0.5 0.5 0.5\n0 0.25 0.25 0.5 0.5\n")
    _label(root / "labels" / "val2017" / "v1.txt", "1 0.5 0.5 1.0 1.0\n")
    spec = {"path": ".", "train": "images/train2017", "val": "images/val2017", "names": NAMES, **yaml_keys}
    (root / "coco8.yaml").write_text(yaml.safe_dump(spec))
    return root / "coco8.yaml"


def _load(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def test_yaml_of_any_name_gives_its_split_and_class_order(tmp_path):
    data = _ultralytics(tmp_path / "coco8")
    summary = convert_dataset("yolo", data, tmp_path / "out")
    assert summary["image_root"] == str((tmp_path / "coco8").resolve())
    assert summary["categories"] == ["person", "bicycle", "airplane"]
    train, val = (_load(f) for f in summary["files"])
    assert summary["files"] == [
        str(tmp_path / "out" / "annotations" / f"instances_{s}.json") for s in ("train", "val")
    ]
    assert [i["file_name"] for i in train["images"]] == ["images/train2017/t1.jpg", "images/train2017/t2.jpg"]
    assert [i["file_name"] for i in val["images"]] == ["images/val2017/v1.jpg"]
    assert train["categories"] == val["categories"]
    assert [(c["id"], c["name"]) for c in train["categories"]] == [
        (1, "person"),
        (2, "bicycle"),
        (3, "airplane"),
    ]
    assert sorted((a["category_id"], a["bbox"]) for a in train["annotations"]) == [
        (1, [0, 0, 20, 10]),
        (3, [10, 5, 20, 10]),
    ]
    assert [(a["category_id"], a["bbox"]) for a in val["annotations"]] == [(2, [0, 0, 40, 20])]
    assert summary["warnings"] == []
    (data.parent / "labels").rename(data.parent / "labels_elsewhere")
    warned = convert_dataset("yolo", data, tmp_path / "unlabelled")["warnings"]
    assert any("none of the 3 images has a label file (looked for e.g." in w for w in warned)
    with pytest.raises(ConvertError, match="own train / val split; --split is for a dataset without one"):
        convert_dataset("yolo", data, tmp_path / "again", split=0.2)


def test_txt_lists_and_names_flag_through_the_cli(tmp_path, capsys):
    root = tmp_path / "ds"
    data = _ultralytics(root, path=None, train="train.txt", val=["val.txt"])
    (root / "train.txt").write_text("./images/train2017/t1.jpg\nimages/train2017/t2.jpg\n")
    (root / "val.txt").write_text("./images/val2017/v1.jpg\n")
    moved = tmp_path / "elsewhere" / "my_dataset.yaml"  # --names: the YAML lives outside the folder
    moved.parent.mkdir()
    moved.write_text(data.read_text().replace("path: null\n", f"path: {root}\n"))
    data.unlink()
    rc = main(
        ["data", "convert", "--from", "yolo", str(root), "--names", str(moved), "--out", str(tmp_path / "o")]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "instances_train.json (2 images, 2 annotations)" in out
    assert "instances_val.json (1 images, 1 annotations)" in out
    assert [
        c["name"] for c in _load(tmp_path / "o" / "annotations" / "instances_val.json")["categories"]
    ] == [
        "person",
        "bicycle",
        "airplane",
    ]


@pytest.mark.parametrize(
    "line, match",
    [
        ("../outside.jpg", r"train\.txt:2: '\.\./outside\.jpg' leaves the dataset folder"),
        ("/etc/x.jpg", r"train\.txt:2: '/etc/x\.jpg' is an absolute path"),
        ("./images/train2017/missing.jpg", r"train\.txt:2: no such image"),
    ],
)
def test_list_entries_that_leave_the_dataset_are_refused(tmp_path, line, match):
    root = tmp_path / "ds"
    _image(tmp_path / "outside.jpg")
    data = _ultralytics(root, train="train.txt")
    (root / "train.txt").write_text(f"./images/train2017/t1.jpg\n{line}\n")
    with pytest.raises(ConvertError, match=match):
        convert_dataset("yolo", data, tmp_path / "out")


def test_split_folder_outside_the_dataset_is_refused(tmp_path):
    _image(tmp_path / "other" / "images" / "x.jpg")
    data = _ultralytics(tmp_path / "ds", val="../other/images")
    with pytest.raises(
        ConvertError, match=r"coco8\.yaml: val: '\.\./other/images' leaves the dataset folder"
    ):
        convert_dataset("yolo", data, tmp_path / "out")


def test_roboflow_layout_yaml_inside_with_dotdot_entries(tmp_path):
    root = tmp_path / "rf"
    _image(root / "train" / "images" / "a.jpg")
    _label(root / "train" / "labels" / "a.txt", "0 0.5 0.5 0.5 0.5\n")
    _image(root / "valid" / "images" / "b.jpg")
    spec = {"train": "../train/images", "val": "../valid/images", "nc": 1, "names": ["cell"]}
    (root / "data.yaml").write_text(yaml.safe_dump(spec))
    train, val = (_load(f) for f in convert_dataset("yolo", root, tmp_path / "out")["files"])
    assert [i["file_name"] for i in train["images"]] == ["train/images/a.jpg"]
    assert len(train["annotations"]) == 1 and val["annotations"] == []


def test_pose_labels_become_coco_keypoints_with_flip_pairs(tmp_path):
    kpt_names = {0: ["nose", "left_hand", "right_hand"]}
    data = _ultralytics(tmp_path / "pose", kpt_shape=[3, 3], flip_idx=[0, 2, 1], kpt_names=kpt_names)
    root = data.parent
    _label(root / "labels" / "train2017" / "t1.txt", "0 0.5 0.5 0.5 0.5 0.5 0.5 2 0.25 0.75 1 0 0 0\n")
    _label(root / "labels" / "val2017" / "v1.txt", "")
    train, _ = (_load(f) for f in convert_dataset("yolo", data, tmp_path / "out")["files"])
    (ann,) = train["annotations"]
    assert ann["keypoints"] == [20, 10, 2, 10, 15, 1, 0, 0, 0] and ann["num_keypoints"] == 2
    assert train["categories"][0]["keypoints"] == ["nose", "left_hand", "right_hand"]
    schema = keypoint_schema(train["categories"])
    assert schema is not None and schema.flip == (0, 2, 1)
    _label(root / "labels" / "train2017" / "t1.txt", "0 0.5 0.5 0.5 0.5 0.5 0.5 2\n")
    with pytest.raises(
        ConvertError, match=r"t1\.txt:1: kpt_shape \[3, 3\] needs 'class cx cy w h' and 3 points"
    ):
        convert_dataset("yolo", data, tmp_path / "out2")


def test_pose_points_without_visibility_and_a_bad_flip_idx(tmp_path):
    data = _ultralytics(tmp_path / "pose2", kpt_shape=[2, 2])
    _label(data.parent / "labels" / "train2017" / "t1.txt", "0 0.5 0.5 0.5 0.5 0.5 0.5 0 0\n")
    _label(data.parent / "labels" / "val2017" / "v1.txt", "")
    train, _ = (_load(f) for f in convert_dataset("yolo", data, tmp_path / "out")["files"])
    assert train["annotations"][0]["keypoints"] == [20, 10, 2, 0, 0, 0]  # 0 0 = not labelled
    assert train["categories"][0]["keypoints"] == ["kp0", "kp1"]
    data.write_text(data.read_text() + "kpt_names: [[tip, root]]\n")  # the list-of-lists spelling
    train, _ = (_load(f) for f in convert_dataset("yolo", data, tmp_path / "named")["files"])
    assert train["categories"][0]["keypoints"] == ["tip", "root"]
    data.write_text(data.read_text() + "flip_idx: [1, 1]\n")
    with pytest.raises(
        ConvertError, match=r"coco8\.yaml: flip_idx must give each of the 2 keypoints its mirror"
    ):
        convert_dataset("yolo", data, tmp_path / "out2")
