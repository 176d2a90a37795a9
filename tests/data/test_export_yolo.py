"""data export --to yolo: a COCO set written as an Ultralytics dataset converts back to the same boxes,
polygons, keypoints and categories in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from scratchlab.cli import main
from scratchlab.data.convert import convert_dataset
from scratchlab.data.export_yolo import export_yolo

SIZES = {"a.jpg": (40, 20), "sub/b.png": (30, 50), "c.jpg": (64, 48)}
CATEGORIES = [{"id": 5, "name": "zebra"}, {"id": 2, "name": "ant"}]  # id order: ant is class 0


def _coco(path: Path, images_dir: Path, names: list[str], anns: list[dict], sizes=SIZES) -> Path:
    images = []
    for i, name in enumerate(names, start=1):
        w, h = sizes[name]
        (images_dir / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h), (10, 80, 160)).save(images_dir / name)
        images.append({"id": i, "file_name": name, "width": w, "height": h})
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATEGORIES}))
    return path


def _ann(i: int, image_id: int, cat: int, bbox: list[float], **extra) -> dict:
    return {
        "id": i,
        "image_id": image_id,
        "category_id": cat,
        "bbox": bbox,
        "area": bbox[2] * bbox[3],
        "iscrowd": 0,
        **extra,
    }


def _boxes(coco: dict) -> dict[str, list[tuple[str, list[float]]]]:
    cat = {c["id"]: c["name"] for c in coco["categories"]}
    name = {i["id"]: Path(i["file_name"]).name for i in coco["images"]}
    out: dict[str, list] = {n: [] for n in name.values()}
    for a in coco["annotations"]:
        if not a.get("iscrowd"):
            out[name[a["image_id"]]].append((cat[a["category_id"]], a["bbox"]))
    return {k: sorted(v) for k, v in out.items()}


def test_coco_set_round_trips_through_an_ultralytics_dataset(tmp_path, capsys):
    train = _coco(
        tmp_path / "instances_train.json",
        tmp_path / "train",
        ["a.jpg", "sub/b.png"],
        [
            _ann(1, 1, 5, [3.3, 2.1, 20.45, 10.7]),
            _ann(2, 1, 2, [0, 0, 40, 20], iscrowd=1),
            _ann(3, 2, 2, [6, 10, 18, 30], segmentation=[[6, 10, 24, 10, 15, 40]]),
        ],
    )
    val = _coco(
        tmp_path / "instances_val.json", tmp_path / "val", ["c.jpg"], [_ann(1, 1, 5, [10.25, 7.5, 31.5, 20])]
    )
    argv = [
        "data",
        "export",
        "--to",
        "yolo",
        str(train),
        str(val),
        "--images",
        str(tmp_path / "train"),
        str(tmp_path / "val"),
    ]
    assert main([*argv, "--out", str(tmp_path / "yolo")]) == 0
    assert "train: 2 images, 2 labels, 1 crowd regions left out" in capsys.readouterr().out
    spec = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert spec == {
        "path": str((tmp_path / "yolo").resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": {0: "ant", 1: "zebra"},
    }
    assert (tmp_path / "yolo" / "images" / "train" / "sub" / "b.png").is_symlink()
    assert (
        (tmp_path / "yolo" / "labels" / "train" / "sub" / "b.txt")
        .read_text()
        .startswith("0 0.200000 0.200000 ")
    )

    back = convert_dataset("yolo", tmp_path / "yolo" / "data.yaml", tmp_path / "back")
    assert back["categories"] == ["ant", "zebra"]
    for original, converted in zip((train, val), back["files"], strict=True):
        want, got = _boxes(json.loads(original.read_text())), _boxes(json.loads(Path(converted).read_text()))
        assert want.keys() == got.keys()
        for name in want:
            assert [c for c, _ in got[name]] == [c for c, _ in want[name]]
            for (_, b), (_, a) in zip(got[name], want[name], strict=True):
                assert b == pytest.approx(a, abs=0.01)  # 6-decimal normalised coordinates
    (poly,) = json.loads(Path(back["files"][0]).read_text())["annotations"][1:]
    assert poly["segmentation"] == [[6, 10, 24, 10, 15, 40]]


def test_keypoints_export_with_kpt_shape_and_flip_idx(tmp_path):
    kp_cats = [{"id": 1, "name": "hand", "keypoints": ["tip", "left_knuckle", "right_knuckle"]}]
    coco = _coco(
        tmp_path / "kp.json",
        tmp_path / "img",
        ["a.jpg"],
        [_ann(1, 1, 1, [4, 2, 20, 10], keypoints=[10, 5, 2, 0, 0, 0, 20, 8, 1]), _ann(2, 1, 1, [0, 0, 8, 8])],
    )
    coco.write_text(json.dumps({**json.loads(coco.read_text()), "categories": kp_cats}))
    done = export_yolo([coco], [tmp_path / "img"], tmp_path / "yolo", copy=True)
    spec = yaml.safe_load(Path(done["yaml"]).read_text())
    assert (
        spec["kpt_shape"] == [3, 3]
        and spec["flip_idx"] == [0, 2, 1]
        and spec["train"] == spec["val"] == "images/kp"
    )
    assert not (tmp_path / "yolo" / "images" / "kp" / "a.jpg").is_symlink()
    back = convert_dataset("yolo", done["yaml"], tmp_path / "back")
    ann, without = json.loads(Path(back["files"][0]).read_text())["annotations"]
    assert ann["keypoints"] == [10, 5, 2, 0, 0, 0, 20, 8, 1] and ann["bbox"] == [4, 2, 20, 10]
    assert without["num_keypoints"] == 0 and without["bbox"] == [0, 0, 8, 8]  # a box without keypoints


def test_image_names_that_leave_the_folder_are_refused(tmp_path):
    coco = _coco(tmp_path / "x.json", tmp_path / "img", ["a.jpg"], [])
    data = json.loads(coco.read_text())
    data["images"][0]["file_name"] = "../a.jpg"
    coco.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"x\.json: image id 1: '\.\./a\.jpg' leaves the dataset folder"):
        export_yolo([coco], [tmp_path / "img"], tmp_path / "yolo")


def test_file_names_with_an_images_folder_keep_their_labels_findable(tmp_path):
    name = "images/val2017/d.jpg"  # a COCO file converted from an Ultralytics dataset
    coco = _coco(
        tmp_path / "instances_val.json",
        tmp_path / "ds",
        [name],
        [_ann(1, 1, 2, [2, 4, 10, 8])],
        {name: (20, 20)},
    )
    done = export_yolo([coco], [tmp_path / "ds"], tmp_path / "yolo")
    assert (
        tmp_path / "yolo" / "images" / "val" / "labels" / "val2017" / "d.txt"
    ).is_file()  # Ultralytics' rule
    back = convert_dataset("yolo", done["yaml"], tmp_path / "back")
    assert json.loads(Path(back["files"][0]).read_text())["annotations"][0]["bbox"] == [2, 4, 10, 8]
