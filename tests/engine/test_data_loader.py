"""The training loader: aspect-ratio grouping from the JSON sizes."""

import json

import pytest

from scratchlab.config import load_config
from scratchlab.data.coco import CocoDetection
from scratchlab.data.sampler import GroupedTrainingBatchSampler, TrainingBatchSampler
from scratchlab.engine.data import DatasetError, aspect_groups, build_train_loader
from scratchlab.utils.runtime import loader_workers


def _dataset(tmp_path, sizes):
    images = [{"id": i + 1, "file_name": f"{i}.jpg", **size} for i, size in enumerate(sizes)]
    anns = [
        {"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0}
        for i in range(len(sizes))
    ]
    path = tmp_path / "train.json"
    path.write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}]})
    )
    return CocoDetection(path, tmp_path, with_masks=False, filter_empty=True)


def test_grouping_batches_landscape_with_landscape(tmp_path):
    sizes = (
        [{"width": 64, "height": 48}] * 6
        + [{"width": 48, "height": 64}] * 4
        + [{"width": 50, "height": 50}] * 2
    )
    ds = _dataset(tmp_path, sizes)
    groups = aspect_groups(ds)
    assert groups == [0] * 6 + [1] * 6  # square counts as portrait, as in Detectron2
    cfg = load_config(None, ["data.aspect_ratio_grouping=true", "solver.ims_per_batch=3"])
    sampler = build_train_loader(cfg, ds, start_iter=0, rank=0, world=1).batch_sampler
    assert isinstance(sampler, GroupedTrainingBatchSampler)
    assert all(len({groups[i] for i, _ in sampler.batch(it)}) == 1 for it in range(12))
    plain = build_train_loader(load_config(None, ["solver.ims_per_batch=3"]), ds, 0, 0, 1).batch_sampler
    assert type(plain) is TrainingBatchSampler


def test_grouping_without_image_sizes_names_the_image(tmp_path):
    ds = _dataset(tmp_path, [{"width": 64, "height": 48}, {}])
    with pytest.raises(DatasetError, match="image id 2"):
        aspect_groups(ds)


@pytest.mark.parametrize("setting", ["auto", "0", "2"])
def test_workers_are_chosen_for_the_machine_and_kept_for_the_run(tmp_path, setting):
    ds = _dataset(tmp_path, [{"width": 64, "height": 48}] * 4)
    cfg = load_config(None, [f"data.num_workers={setting}", "solver.ims_per_batch=2"])
    loader = build_train_loader(cfg, ds, 0, 0, 1, pin_memory=True)
    assert loader.num_workers == loader_workers(setting)
    assert not loader.persistent_workers and loader.pin_memory  # one iterator per run: see its docstring
    assert not build_train_loader(cfg, ds, 0, 0, 1).pin_memory  # pinned only when training on CUDA
