"""Keypoint schema, the flip that swaps left and right keypoints, and keypoints through CocoDetection."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf
from torchvision import tv_tensors

from scratchlab.config import DEFAULTS
from scratchlab.data.coco import CocoDetection
from scratchlab.data.keypoints import COCO_PERSON_KEYPOINTS, flip_index, keypoint_schema
from scratchlab.data.synth import make_synth_detection
from scratchlab.data.transforms import RandomHorizontalFlipKeypoints, build_transforms


def test_coco_person_flip_pairs_left_with_right():
    flip = flip_index(COCO_PERSON_KEYPOINTS)
    names = COCO_PERSON_KEYPOINTS
    assert names[flip[names.index("left_eye")]] == "right_eye"
    assert names[flip[names.index("right_ankle")]] == "left_ankle"
    assert flip[names.index("nose")] == names.index("nose")
    assert sorted(flip) == list(range(17))


def test_category_flip_map_overrides_names():
    assert flip_index(["a", "b", "c"], [["a", "c"]]) == [2, 1, 0]
    with pytest.raises(ValueError, match="flip_map"):
        flip_index(["a", "b"], [["a", "z"]])


def test_categories_with_different_keypoints_are_refused():
    cats = [{"id": 1, "name": "x", "keypoints": ["a", "b"]}, {"id": 2, "name": "y", "keypoints": ["a"]}]
    with pytest.raises(ValueError, match="different keypoint lists"):
        keypoint_schema(cats, "ann.json")
    assert keypoint_schema([{"id": 1, "name": "x"}]) is None


def _sample(width: int = 10):
    image = tv_tensors.Image(torch.zeros(3, 8, width))
    kp = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])  # nose, left_x, right_x
    target = {
        "boxes": tv_tensors.BoundingBoxes([[0, 0, 6, 7]], format="XYXY", canvas_size=(8, width)),
        "labels": torch.tensor([1]),
        "keypoints": tv_tensors.KeyPoints(kp, canvas_size=(8, width)),
        "keypoints_visibility": torch.tensor([[2.0, 1.0, 2.0]]),
    }
    return image, target


def test_flip_swaps_left_and_right_keypoints():
    flip = flip_index(["nose", "left_x", "right_x"])
    _, out = RandomHorizontalFlipKeypoints(1.0, flip)(*_sample())
    # The point that was the right one (x=5, y=6) is now the left one, mirrored: x -> (W - 1) - x.
    assert out["keypoints"].tolist() == [[[8.0, 2.0], [4.0, 6.0], [6.0, 4.0]]]
    assert out["keypoints_visibility"].tolist() == [[2.0, 2.0, 1.0]]
    assert out["boxes"].tolist() == [[4.0, 0.0, 10.0, 7.0]]


def test_no_flip_leaves_keypoints_alone():
    _, out = RandomHorizontalFlipKeypoints(0.0, [0, 2, 1])(*_sample())
    assert out["keypoints"].tolist() == [[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]]


# The generated set with and without keypoints: only the keypoint flag differs.
SET = dict(
    num_train=6,
    num_val=2,
    image_size=64,
    seed=0,
    min_object_size=0.25,
    max_objects=3,
    shapes=["crescent", "square"],
)


@pytest.fixture(scope="module")
def keypoint_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("kp")
    make_synth_detection(root, **SET, keypoints=True)
    return root


def test_synth_crescents_carry_keypoints(keypoint_set):
    data = json.loads((keypoint_set / "annotations" / "instances_train.json").read_text())
    cats = {c["name"]: c for c in data["categories"]}
    assert cats["crescent"]["keypoints"] == ["back", "left_tip", "right_tip"]
    assert "keypoints" not in cats["square"]
    crescents = [a for a in data["annotations"] if a["category_id"] == cats["crescent"]["id"]]
    assert crescents and all(len(a["keypoints"]) == 9 for a in crescents)
    assert all(a["num_keypoints"] == sum(v > 0 for v in a["keypoints"][2::3]) for a in crescents)
    assert sum(a["num_keypoints"] for a in crescents) > 0
    assert not [
        a for a in data["annotations"] if a["category_id"] != cats["crescent"]["id"] and "keypoints" in a
    ]


def test_synth_keypoints_leave_images_and_other_fields_unchanged(keypoint_set, tmp_path):
    make_synth_detection(tmp_path, **SET)
    for name in sorted(p.name for p in (tmp_path / "train").iterdir()):
        assert (tmp_path / "train" / name).read_bytes() == (keypoint_set / "train" / name).read_bytes()
    plain = json.loads((tmp_path / "annotations" / "instances_train.json").read_text())
    with_kp = json.loads((keypoint_set / "annotations" / "instances_train.json").read_text())
    strip = [
        {k: v for k, v in a.items() if k not in ("keypoints", "num_keypoints")}
        for a in with_kp["annotations"]
    ]
    assert strip == plain["annotations"]


def test_synth_keypoints_need_the_crescent_family(tmp_path):
    with pytest.raises(ValueError, match="crescent"):
        make_synth_detection(
            tmp_path, num_train=1, num_val=0, image_size=64, seed=0, shapes=["square"], keypoints=True
        )


def test_dataset_gives_torchvision_keypoints_and_flips_them(keypoint_set):
    root = keypoint_set
    ds = CocoDetection(
        root / "annotations" / "instances_train.json", root / "train", with_masks=False, with_keypoints=True
    )
    assert ds.keypoints.names == ("back", "left_tip", "right_tip") and ds.keypoints.flip == (0, 2, 1)
    index = next(
        i
        for i in range(len(ds))
        if any(a.get("num_keypoints") and not a.get("iscrowd", 0) for a in ds.anns[ds.ids[i]])
    )
    _, plain = ds[index]
    assert plain["keypoints"].shape == (len(plain["boxes"]), 3, 3)
    input_cfg = OmegaConf.create(
        {**DEFAULTS["input"], "min_size_train": [64], "max_size_train": 64, "hflip_prob": 1.0}
    )
    ds.transforms = build_transforms(input_cfg, train=True, keypoint_flip=list(ds.keypoints.flip))
    image, flipped = ds[index]
    w = image.shape[-1]
    mirrored = plain["keypoints"].clone()
    mirrored[..., 0] = (w - 1) - mirrored[..., 0]
    mirrored = mirrored[:, [0, 2, 1]]
    labelled = mirrored[..., 2] > 0
    assert torch.allclose(flipped["keypoints"][labelled], mirrored[labelled])
    assert torch.equal(flipped["keypoints"][..., 2], mirrored[..., 2])


def test_data_check_accepts_the_keypoint_set_and_names_bad_keypoints(keypoint_set, tmp_path):
    from scratchlab.data.check import check_dataset

    ann = keypoint_set / "annotations" / "instances_train.json"
    assert not [p for p in check_dataset(ann, keypoint_set / "train") if p.severity == "error"]
    data = json.loads(ann.read_text())
    bad = next(a for a in data["annotations"] if "keypoints" in a)
    bad["num_keypoints"] += 1
    data["annotations"][0]["keypoints"] = data["annotations"][0].get("keypoints", [0, 0, 0])[:3]
    data["categories"][0]["skeleton"] = [[1, 9]]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    messages = [
        f"{p.record}: {p.message}"
        for p in check_dataset(path, keypoint_set / "train")
        if p.kind == "keypoints"
    ]
    assert any(f"annotation id {bad['id']}: num_keypoints" in m for m in messages), messages
    assert any("skeleton entry [1, 9]" in m for m in messages), messages
    assert any(f"annotation id {data['annotations'][0]['id']}" in m for m in messages), messages


def test_split_keeps_coco_keypoints(keypoint_set):
    from scratchlab.data.convert._common import split_coco

    data = json.loads((keypoint_set / "annotations" / "instances_train.json").read_text())
    train, val = split_coco(data, 0.5, seed=0)
    assert train["categories"] == val["categories"] == data["categories"]
    kept = {a["id"]: a for a in train["annotations"] + val["annotations"]}
    assert all(kept[a["id"]].get("keypoints") == a.get("keypoints") for a in data["annotations"])
