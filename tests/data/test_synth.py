"""The generated detection set: determinism, valid COCO, masks that match boxes, occlusion, scale."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from scratchlab.data.synth import make_synth_detection, mask_to_polygons

ARGS = {"num_train": 16, "num_val": 4, "image_size": 64, "seed": 3}


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth")
    return out, make_synth_detection(out, **ARGS)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def _json(root: Path, split: str) -> bytes:
    return (root / "annotations" / f"instances_{split}.json").read_bytes()


def test_layout_and_summary(synth: tuple[Path, dict]) -> None:
    out, summary = synth
    for split, n in (("train", 16), ("val", 4)):
        data = json.loads(_json(out, split))
        assert summary[split]["images"] == len(data["images"]) == n
        assert summary[split]["annotations"] == len(data["annotations"]) > 0
        for img in data["images"]:
            assert (out / split / img["file_name"]).is_file()
            assert max(img["height"], img["width"]) == 64


def test_same_seed_same_bytes_other_seed_differs(synth: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = synth
    make_synth_detection(tmp_path / "again", **ARGS)
    for split in ("train", "val"):
        assert _json(tmp_path / "again", split) == _json(out, split)
    assert _files(tmp_path / "again") == _files(out)
    make_synth_detection(tmp_path / "other", **{**ARGS, "seed": 4})
    assert _json(tmp_path / "other", "train") != _json(out, "train")
    assert _files(tmp_path / "other") != _files(out)


def test_train_split_does_not_depend_on_num_val(synth: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = synth
    make_synth_detection(tmp_path, **{**ARGS, "num_val": 1})
    assert _json(tmp_path, "train") == _json(out, "train")


def test_coco_loads_with_categories(synth: tuple[Path, dict]) -> None:
    out, _ = synth
    for split in ("train", "val"):
        coco = COCO(str(out / "annotations" / f"instances_{split}.json"))
        cats = coco.loadCats(coco.getCatIds())
        assert len(cats) >= 6
        assert sorted(c["id"] for c in cats) == list(range(1, len(cats) + 1))
        assert len({c["name"] for c in cats}) == len(cats)


def test_masks_match_boxes_and_areas(synth: tuple[Path, dict]) -> None:
    out, _ = synth
    coco = COCO(str(out / "annotations" / "instances_train.json"))
    for ann in coco.loadAnns(coco.getAnnIds()):
        img = coco.imgs[ann["image_id"]]
        assert ann["iscrowd"] == 0
        assert all(len(p) >= 6 and len(p) % 2 == 0 for p in ann["segmentation"])
        xs, ys = (
            np.concatenate([p[0::2] for p in ann["segmentation"]]),
            np.concatenate([p[1::2] for p in ann["segmentation"]]),
        )
        assert xs.min() >= 0 and ys.min() >= 0 and xs.max() <= img["width"] and ys.max() <= img["height"]
        mask = coco.annToMask(ann)
        assert mask.shape == (img["height"], img["width"])
        assert mask.sum() > 0
        assert abs(ann["area"] - mask.sum()) <= 1
        rows, cols = np.nonzero(mask)
        extent = [cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()]
        np.testing.assert_allclose(ann["bbox"], extent, atol=1.5)


def test_occluded_instances_exclude_their_occluders(synth: tuple[Path, dict]) -> None:
    """Visible masks never overlap, and the set does contain occlusion (one object inside another's box)."""
    out, _ = synth
    coco = COCO(str(out / "annotations" / "instances_train.json"))
    occluded = 0
    for image_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        masks = [coco.annToMask(a).astype(bool) for a in anns]
        for (a, ma), (b, mb) in itertools.permutations(zip(anns, masks, strict=True), 2):
            assert (ma & mb).sum() == 0, f"image {image_id}: annotations {a['id']} and {b['id']} overlap"
            x, y, w, h = (round(v) for v in a["bbox"])
            # b's pixels lie inside a's box and touch a's mask: b sits on top of a (or in a notch of it).
            inside = mb[y : y + h, x : x + w].sum()
            touches = (np.roll(mb, 1, 0) | np.roll(mb, -1, 0) | np.roll(mb, 1, 1) | np.roll(mb, -1, 1)) & ma
            occluded += bool(inside > 0.5 * mb.sum() and touches.any())
    assert occluded >= 5


def test_polygons_keep_holes_empty() -> None:
    """An object with a smaller one drawn inside it: its mask has a hole where the occluder is."""
    mask = np.zeros((40, 50), bool)
    mask[5:35, 5:45] = True
    mask[10:16, 10:16] = False  # occluder fully inside
    mask[20:30, 30:40] = False  # a second one
    mask[0:3, 0:3] = True  # a separate visible fragment
    polys = mask_to_polygons(mask)
    assert len(polys) == 2
    decoded = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, 40, 50))).astype(bool)
    assert np.array_equal(decoded, mask)


def test_scale_variation(tmp_path: Path) -> None:
    make_synth_detection(tmp_path, num_train=40, num_val=0, image_size=128, seed=0)
    data = json.loads(_json(tmp_path, "train"))
    areas = np.array([a["area"] for a in data["annotations"]])
    # COCO's own size bins at this image size: small < 32^2 <= medium < 96^2 <= large.
    assert (areas < 32**2).any() and ((areas >= 32**2) & (areas < 96**2)).any() and (areas >= 96**2).any()
    assert len({a["category_id"] for a in data["annotations"]}) >= 6
    per_image = np.bincount([a["image_id"] for a in data["annotations"]])[1:]
    assert per_image.max() >= 4 and per_image.min() >= 1


def test_rerun_replaces_and_foreign_folder_is_refused(tmp_path: Path) -> None:
    make_synth_detection(tmp_path, num_train=5, num_val=2, image_size=48, seed=0)
    make_synth_detection(tmp_path, num_train=3, num_val=1, image_size=48, seed=0)
    assert len(list((tmp_path / "train").glob("*.png"))) == 3
    foreign = tmp_path / "foreign"
    (foreign / "train").mkdir(parents=True)
    (foreign / "train" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="train"):
        make_synth_detection(foreign, num_train=2, num_val=1, image_size=48, seed=0)
    assert (foreign / "train" / "keep.txt").is_file()


@pytest.mark.parametrize("bad", [{"num_train": 0}, {"image_size": 8}, {"seed": -1}, {"num_val": 1.5}])
def test_bad_arguments_raise(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        make_synth_detection(tmp_path, **{**ARGS, **bad})


def test_class_colours_paint_each_family_in_its_own_colour(tmp_path: Path) -> None:
    from PIL import Image

    from scratchlab.data.shapes import CLASS_COLOURS, SHAPES

    make_synth_detection(
        tmp_path,
        num_train=6,
        num_val=0,
        image_size=64,
        seed=0,
        min_object_size=0.3,
        max_objects=2,
        object_textures=["solid"],
        class_colours=True,
    )
    data = json.loads(_json(tmp_path, "train"))
    cats = {c["id"]: c["name"] for c in data["categories"]}
    images = {img["id"]: img for img in data["images"]}
    checked = 0
    for ann in data["annotations"]:
        img = images[ann["image_id"]]
        rle = mask_utils.frPyObjects(ann["segmentation"], img["height"], img["width"])
        mask = mask_utils.decode(mask_utils.merge(rle)).astype(bool)
        pixels = np.asarray(Image.open(tmp_path / "train" / img["file_name"]).convert("RGB"))[mask]
        base = np.asarray(CLASS_COLOURS[SHAPES.index(cats[ann["category_id"]])], dtype=float)
        assert np.abs(np.median(pixels, axis=0) - base).max() < 70  # jitter, noise and blur only
        checked += 1
    assert checked >= 6


def test_max_object_size_bounds_every_object_and_is_validated(tmp_path: Path) -> None:
    make_synth_detection(
        tmp_path,
        num_train=8,
        num_val=0,
        image_size=64,
        seed=0,
        min_object_size=0.3,
        max_objects=3,
        max_object_size=0.5,
    )
    data = json.loads(_json(tmp_path, "train"))
    shorts = {img["id"]: min(img["height"], img["width"]) for img in data["images"]}
    assert data["annotations"]
    for ann in data["annotations"]:  # diameter <= 0.5 x short side, so the box fits in it (+1 px raster)
        assert max(ann["bbox"][2:]) <= 0.5 * shorts[ann["image_id"]] + 1
    with pytest.raises(ValueError, match="max_object_size"):
        make_synth_detection(
            tmp_path / "bad",
            num_train=1,
            num_val=0,
            image_size=64,
            seed=0,
            min_object_size=0.3,
            max_object_size=0.2,
        )
