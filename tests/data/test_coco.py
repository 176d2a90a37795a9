import pytest
import torch

from scratchlab.config import load_config
from scratchlab.data.coco import CocoDetection, select_subset
from scratchlab.data.transforms import build_transforms


def test_subset_is_seeded_nested_and_the_same_for_every_arm():
    ids = list(range(100, 200))
    ten = select_subset(ids, 0.1, seed=3)
    assert len(ten) == 10 and ten == select_subset(list(reversed(ids)), 0.1, seed=3)
    assert select_subset(ids, 10, seed=3) == ten  # a count and the matching fraction agree
    assert select_subset(ids, 0.1, seed=4) != ten
    assert set(select_subset(ids, 5, seed=3)) <= set(select_subset(ids, 20, seed=3))  # smaller inside larger
    assert select_subset(ids, None, seed=3) == ids


@pytest.mark.parametrize("bad", [0, -1, 1.5, 1000, "10%"])
def test_bad_subset_is_an_error(bad):
    with pytest.raises(ValueError, match="subset"):
        select_subset(list(range(10)), bad, seed=0)


def test_training_item_is_reproducible_and_boxes_follow_the_image(synth_data):
    cfg = load_config(None, ["input.min_size_train=[48,64]", "input.max_size_train=107"])
    ds = CocoDetection(
        synth_data["train_json"], synth_data["train_images"], build_transforms(cfg.input, True)
    )
    a_img, a_t = ds[(0, 1234)]
    b_img, b_t = ds[(0, 1234)]
    assert torch.equal(a_img, b_img) and torch.equal(a_t["boxes"], b_t["boxes"])
    assert a_img.dtype == torch.float32 and 0.0 <= a_img.min() and a_img.max() <= 1.0
    assert min(a_img.shape[-2:]) in (48, 64)
    h, w = a_img.shape[-2:]
    boxes = a_t["boxes"]
    assert (boxes[:, 2] <= w + 1e-3).all() and (boxes[:, 3] <= h + 1e-3).all()
    assert a_t["masks"].shape[-2:] == (h, w) and len(a_t["masks"]) == len(boxes) == len(a_t["labels"])
    # Masks and boxes moved together: each box encloses its mask.
    for box, mask in zip(boxes, a_t["masks"], strict=True):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert (
            xs.min() >= box[0] - 1
            and xs.max() <= box[2] + 1
            and ys.min() >= box[1] - 1
            and ys.max() <= box[3] + 1
        )


def test_crop_transform_for_direct_pretraining(synth_data):
    cfg = load_config(None, ["input.crop_size=40", "input.scale_jitter=[0.8,1.2]"])
    ds = CocoDetection(
        synth_data["train_json"], synth_data["train_images"], build_transforms(cfg.input, True)
    )
    for k in range(4):
        img, _ = ds[(k, k)]
        assert tuple(img.shape[-2:]) == (40, 40)


def test_labels_are_contiguous_and_map_back_to_category_ids(synth_data):
    ds = CocoDetection(synth_data["val_json"], synth_data["val_images"])
    assert sorted(ds.label_to_cat_id) == list(range(1, ds.num_classes + 1))
    assert {ds.cat_id_to_label[c] for c in ds.label_to_cat_id.values()} == set(ds.label_to_cat_id)
