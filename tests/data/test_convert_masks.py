"""`data convert --from masks` on small PNG masks the tests write: instance-id PNGs (8-bit, 16-bit,
palette, colour), per-instance folders, odd sizes, a missing mask, an empty mask, class maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from scratchlab.cli import main
from scratchlab.data.check import check_dataset
from scratchlab.data.coco import CocoDetection
from scratchlab.data.convert import ConvertError, convert_dataset, format_summary
from tests.data.test_check import errors


def _image(path: Path, w: int, h: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (90, 140, 30)).save(path)


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def _ids(w: int = 37, h: int = 23) -> np.ndarray:
    """Two instances on an odd-sized canvas: id 1 a block, id 7 an L shape touching the border."""
    ids = np.zeros((h, w), np.uint8)
    ids[2:9, 3:14] = 1  # 7 rows x 11 columns
    ids[15:23, 30:37] = 7  # bottom-right corner block ...
    ids[10:15, 33:37] = 7  # ... with an arm up the right edge
    return ids


def _decode(ann: dict) -> np.ndarray:
    seg = ann["segmentation"]
    return mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode("ascii")})


def _by_file(coco: dict) -> dict[str, list[dict]]:
    names = {i["id"]: i["file_name"] for i in coco["images"]}
    out: dict[str, list[dict]] = {n: [] for n in names.values()}
    for a in coco["annotations"]:
        out[names[a["image_id"]]].append(a)
    return out


def _set(root: Path) -> Path:
    """a.jpg: instance-id PNG with a _mask suffix; b.png: a per-instance folder; c.jpg: empty mask;
    sub/d.jpg (a sub-folder) has no mask at all."""
    _image(root / "images" / "a.jpg", 37, 23)
    _png(root / "masks" / "a_mask.png", _ids())
    _image(root / "images" / "b.png", 20, 15)
    one, two, empty = (np.zeros((15, 20), np.uint8) for _ in range(3))
    one[0:5, 0:4] = 255
    two[10:15, 12:20] = 1
    _png(root / "masks" / "b_mask" / "0.png", one)
    _png(root / "masks" / "b_mask" / "1.png", two)
    _png(root / "masks" / "b_mask" / "2.png", empty)
    _image(root / "images" / "c.jpg", 9, 5)
    _png(root / "masks" / "c_mask.png", np.zeros((5, 9), np.uint8))
    _image(root / "images" / "sub" / "d.jpg", 8, 8)
    return root


def test_instance_ids_and_folders_become_exact_rle(tmp_path):
    src = _set(tmp_path / "src")
    summary = convert_dataset("masks", src, tmp_path / "out", class_name="cell")
    assert (summary["images"], summary["annotations"], summary["categories"]) == (4, 4, ["cell"])
    assert summary["image_root"] == str((src / "images").resolve()) and not summary["box_only"]
    warnings = "\n".join(summary["warnings"])
    assert "1 image(s) have no mask" in warnings and "sub/d.jpg" in warnings
    assert "1 mask(s) hold only background" in warnings and "c_mask.png" in warnings
    assert "2.png: instance mask is empty" in warnings
    coco = json.loads(Path(summary["files"][0]).read_text())
    by = _by_file(coco)
    assert by["c.jpg"] == [] and by["sub/d.jpg"] == []
    block, corner = sorted(by["a.jpg"], key=lambda a: a["id"])
    ids = _ids()
    for ann, value in ((block, 1), (corner, 7)):
        assert np.array_equal(_decode(ann), ids == value)
        assert ann["area"] == int((ids == value).sum()) and ann["iscrowd"] == 0
    assert block["bbox"] == [3, 2, 11, 7] and block["area"] == 77
    assert corner["bbox"] == [30, 10, 7, 13] and corner["area"] == 8 * 7 + 5 * 4
    b = sorted(by["b.png"], key=lambda a: a["id"])
    assert [a["bbox"] for a in b] == [[0, 0, 4, 5], [12, 10, 8, 5]] and [a["area"] for a in b] == [20, 40]
    assert b[0]["segmentation"]["size"] == [15, 20]
    # The output passes the checker and trains: the dataset decodes the same masks.
    problems = check_dataset(summary["files"][0], summary["image_root"])
    assert not errors(problems)
    dataset = CocoDetection(summary["files"][0], summary["image_root"], with_masks=True)
    index = dataset.ids.index(block["image_id"])
    _, target = dataset[index]
    assert target["masks"].shape == (2, 23, 37)
    assert torch.equal(target["masks"][0].bool(), torch.from_numpy(ids == 1))
    assert target["boxes"].tolist()[1] == [30, 10, 37, 23]
    assert "box-only" not in format_summary(summary)


@pytest.mark.parametrize("mode", ["P", "I;16", "RGB"])
def test_palette_16_bit_and_colour_masks(tmp_path, mode):
    src = tmp_path / "src"
    _image(src / "images" / "x.png", 10, 6)
    ids = np.zeros((6, 10), np.uint16)
    ids[0:2, 0:2], ids[3:6, 5:10] = 3, 300 if mode == "I;16" else 200
    if mode == "P":
        img = Image.fromarray(ids.astype(np.uint8), "L").convert("P")  # palette PNG: pixel values are indices
        img.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
        img = img
    elif mode == "I;16":
        img = Image.fromarray(ids)  # uint16: a 16-bit grey PNG
        assert img.mode == "I;16"
    else:
        rgb = np.zeros((6, 10, 3), np.uint8)
        rgb[0:2, 0:2] = (255, 0, 0)
        rgb[3:6, 5:10] = (0, 0, 255)
        img = Image.fromarray(rgb, "RGB")
    (src / "masks").mkdir()
    img.save(src / "masks" / "x.png")
    coco = json.loads(
        Path(convert_dataset("masks", src, tmp_path / "out", class_name="o")["files"][0]).read_text()
    )
    assert sorted(a["area"] for a in coco["annotations"]) == [4, 15]


def test_class_maps_global_and_per_image(tmp_path):
    src = _set(tmp_path / "src")
    (src / "classes.yaml").write_text("1: nucleus\n7: cytoplasm\n")
    with pytest.raises(ConvertError, match=r"b_mask/0\.png: instance id 0 has no class in .*classes\.yaml"):
        convert_dataset("masks", src, tmp_path / "out", classes=src / "classes.yaml")
    summary = convert_dataset(
        "masks", src, tmp_path / "out", classes=src / "classes.yaml", class_name="other"
    )
    assert summary["categories"] == ["cytoplasm", "nucleus", "other"]
    (src / "per_image.json").write_text(json.dumps({"a": {"1": "x", "7": "y"}, "b.png": {"1": "z"}}))
    summary = convert_dataset("masks", src, tmp_path / "out2", classes=src / "per_image.json", class_name="w")
    by = _by_file(json.loads(Path(summary["files"][0]).read_text()))
    names = {c: n for c, n in enumerate(summary["categories"], start=1)}
    assert sorted(names[a["category_id"]] for a in by["a.jpg"]) == ["x", "y"]
    assert sorted(names[a["category_id"]] for a in by["b.png"]) == ["w", "z"]
    (src / "bad.yaml").write_text("1: a\n2: {3: b}\n")
    with pytest.raises(ConvertError, match=r"bad\.yaml: mixes per-image maps"):
        convert_dataset("masks", src, tmp_path / "out3", classes=src / "bad.yaml")


def test_mask_of_another_size_names_both_files(tmp_path):
    src = tmp_path / "src"
    _image(src / "images" / "a.jpg", 37, 23)
    _png(src / "masks" / "a.png", _ids(36, 23))
    with pytest.raises(
        ConvertError, match=r"mask .*masks/a\.png is 36x23 but its image .*images/a\.jpg is 37x23"
    ):
        convert_dataset("masks", src, tmp_path / "out", class_name="c")


def test_missing_class_folders_and_unmatched_masks(tmp_path):
    src = _set(tmp_path / "src")
    with pytest.raises(
        ConvertError, match=r"masks carry no class names; pass --class-name NAME .* --classes FILE"
    ):
        convert_dataset("masks", src, tmp_path / "out")
    with pytest.raises(ConvertError, match=r"labels: no such folder .* via --masks-dir"):
        convert_dataset("masks", src, tmp_path / "out", class_name="c", masks_dir="labels")
    other = tmp_path / "other"
    _image(other / "photos" / "q.jpg", 8, 8)
    _png(other / "seg" / "unrelated.png", np.ones((8, 8), np.uint8))
    with pytest.raises(ConvertError, match=r"seg: no mask is named after an image"):
        convert_dataset(
            "masks", other, tmp_path / "out", class_name="c", images_dir="photos", masks_dir="seg"
        )
    _png(other / "seg" / "q.png", np.ones((8, 8), np.uint8))
    summary = convert_dataset(
        "masks", other, tmp_path / "out", class_name="c", images_dir="photos", masks_dir=str(other / "seg")
    )
    assert (summary["images"], summary["annotations"]) == (1, 1)
    assert any("1 mask(s) match no image" in w and "unrelated" in w for w in summary["warnings"])


def test_a_mask_named_unlike_the_others_is_reported_with_the_naming_in_use(tmp_path):
    src = tmp_path / "src"
    for stem in ("a", "b", "c"):
        _image(src / "images" / f"{stem}.jpg", 8, 8)
    for name in ("a_mask.png", "b_mask.png", "c.png"):  # c's mask drops the suffix the others share
        _png(src / "masks" / name, np.ones((8, 8), np.uint8))
    summary = convert_dataset("masks", src, tmp_path / "out", class_name="c")
    assert (summary["images"], summary["annotations"]) == (3, 2)
    naming = "a mask is named <image name>_mask"
    assert any("1 image(s) have no mask" in w and naming in w and "c.jpg" in w for w in summary["warnings"])
    assert any("1 mask(s) match no image" in w and naming in w for w in summary["warnings"])


def test_cli_masks_to_checked_coco(tmp_path, capsys):
    src = _set(tmp_path / "src")
    assert (
        main(
            [
                "data",
                "convert",
                "--from",
                "masks",
                str(src),
                "--out",
                str(tmp_path / "out"),
                "--class-name",
                "cell",
                "--split",
                "0.5",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "4 annotations" in out and "pass it as --images" in out
    train = tmp_path / "out" / "annotations" / "instances_train.json"
    assert main(["data", "check", str(train), "--images", str(src / "images")]) == 0
    assert (
        main(
            ["data", "convert", "--from", "voc", str(src), "--out", str(tmp_path / "o2"), "--masks-dir", "m"]
        )
        == 2
    )
    assert "--masks-dir only applies to --from masks" in capsys.readouterr().err


def test_jpeg_masks_are_refused_as_lossy_not_reported_missing(tmp_path):
    src = tmp_path / "src"
    _image(src / "images" / "q.jpg", 8, 8)
    _image(src / "masks" / "q_mask.jpg", 8, 8)
    with pytest.raises(
        ConvertError, match=r"q_mask\.jpg: a \.jpg mask is lossy .* save masks as \.bmp, \.png"
    ):
        convert_dataset("masks", src, tmp_path / "out", class_name="c")
