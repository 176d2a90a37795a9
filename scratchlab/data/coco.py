"""COCO-format detection / instance-segmentation dataset with tv_tensors targets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torchvision import tv_tensors

from .image_io import load_image_tensor
from .keypoints import KeypointSchema, keypoint_schema

__all__ = ["CocoDetection", "select_subset", "collate"]


def select_subset(image_ids: list[int], subset: float | int | None, seed: int) -> list[int]:
    """The images a data regime trains on: a seeded choice of ``subset`` (a fraction in (0, 1] or an
    image count) from ``image_ids``. Depends only on the ids, ``subset`` and ``seed``, so every arm of a
    comparison sees the same images, and a smaller regime is a subset of a larger one."""
    ids = sorted(image_ids)
    if subset is None:
        return ids
    if isinstance(subset, bool) or not isinstance(subset, int | float) or subset <= 0:
        raise ValueError(
            f"data.subset must be a fraction in (0, 1] or a positive image count, got {subset!r}"
        )
    if isinstance(subset, float) and subset <= 1.0:
        count = max(1, int(round(subset * len(ids))))
    else:
        if float(subset) != int(subset):
            raise ValueError(f"data.subset={subset!r}: a count must be a whole number")
        count = int(subset)
        if count > len(ids):
            raise ValueError(f"data.subset={count} images asked, the training set has only {len(ids)}")
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed))
    return sorted(ids[i] for i in order[:count].tolist())


class CocoDetection(torch.utils.data.Dataset):
    """Images and targets from a COCO JSON file.

        Items are ``(image, target)``: ``image`` a float tv_tensors.Image in [0, 1]; ``target`` holds
        ``boxes`` (XYXY BoundingBoxes), ``labels`` (contiguous 1..K), ``masks`` (when ``with_masks``),
        ``image_id`` and ``orig_size`` (h, w). Crowd annotations are left out of training targets. With
    ``with_keypoints``, ``keypoints`` is [N, K, 3] (x, y, visibility) in pixel coordinates, torchvision's
    Keypoint R-CNN format; an annotation without keypoints (another category) gets K unlabelled points, and a
    point a crop or resize moved off the image becomes unlabelled. :attr:`keypoints` is the dataset's
    :class:`~scratchlab.data.keypoints.KeypointSchema` (names and flip pairs), ``None`` without keypoints.

        An index may be an ``(index, sample_seed)`` pair (what :class:`TrainingBatchSampler` yields):
        the random transforms then run under that seed, so augmentation is reproducible across resumes
        and worker counts.
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_root: str | Path,
        transforms: Any = None,
        with_masks: bool = True,
        subset: float | int | None = None,
        subset_seed: int = 0,
        filter_empty: bool = False,
        with_keypoints: bool = False,
    ) -> None:
        self.ann_file, self.image_root = Path(ann_file), Path(image_root)
        with open(self.ann_file) as f:
            data = json.load(f)
        self.categories = sorted(data.get("categories", []), key=lambda c: c["id"])
        self.cat_id_to_label = {c["id"]: i + 1 for i, c in enumerate(self.categories)}
        self.label_to_cat_id = {v: k for k, v in self.cat_id_to_label.items()}
        self.images = {img["id"]: img for img in data.get("images", [])}
        self.anns: dict[int, list[dict]] = {i: [] for i in self.images}
        for ann in data.get("annotations", []):
            self.anns.setdefault(ann["image_id"], []).append(ann)
        ids = list(self.images)
        if filter_empty:  # Detectron2 drops training images without (non-crowd) instances
            ids = [i for i in ids if any(not a.get("iscrowd", 0) for a in self.anns[i])]
        self.ids = select_subset(ids, subset, subset_seed)
        self.transforms, self.with_masks = transforms, with_masks
        self.keypoints: KeypointSchema | None = keypoint_schema(self.categories, str(self.ann_file))
        if with_keypoints and self.keypoints is None:
            raise ValueError(f"{self.ann_file}: no category defines 'keypoints'; a keypoint model needs them")
        self.with_keypoints = with_keypoints

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    def annotations_without_masks(self) -> list[int]:
        """Ids of the (non-crowd) annotations of the selected images that carry no segmentation: box-only
        data, e.g. converted from VOC or YOLO."""
        return [
            a.get("id")
            for i in self.ids
            for a in self.anns[i]
            if not a.get("iscrowd", 0) and not a.get("segmentation")
        ]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, key: int | tuple[int, int]):
        index, seed = key if isinstance(key, tuple) else (key, None)
        info = self.images[self.ids[index]]
        image = tv_tensors.Image(load_image_tensor(self.image_root / info["file_name"]))
        h, w = image.shape[-2:]
        anns = [a for a in self.anns[info["id"]] if not a.get("iscrowd", 0)]
        xywh = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
        target: dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
            "labels": torch.tensor([self.cat_id_to_label[a["category_id"]] for a in anns], dtype=torch.int64),
        }
        if self.with_masks:
            target["masks"] = tv_tensors.Mask(self._masks(anns, h, w))
        if self.with_keypoints:
            xy, visibility = self._keypoints(anns)
            target["keypoints"] = tv_tensors.KeyPoints(xy, canvas_size=(h, w))
            target["keypoints_visibility"] = visibility
        if self.transforms is not None:
            if seed is None:
                image, target = self.transforms(image, target)
            else:
                with torch.random.fork_rng(devices=[]):
                    # The CPU generator only: torch.manual_seed also queues seeds for CUDA/XPU/MTIA, a
                    # traceback capture each (~3 ms a sample); the transforms draw from the CPU generator.
                    torch.default_generator.manual_seed(seed)
                    image, target = self.transforms(image, target)
        if self.with_keypoints:
            target["keypoints"] = _merge_visibility(
                target.pop("keypoints"), target.pop("keypoints_visibility"), tuple(image.shape[-2:])
            )
        target["image_id"] = int(info["id"])
        target["orig_size"] = (h, w)
        return image, target

    def _keypoints(self, anns: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """[N, K, 2] coordinates and [N, K] visibility (0 where an annotation has no keypoints)."""
        k = len(self.keypoints)
        values = torch.zeros(len(anns), k, 3)
        for i, a in enumerate(anns):
            if a.get("keypoints"):
                values[i] = torch.tensor(a["keypoints"], dtype=torch.float32).reshape(k, 3)
        return values[..., :2].contiguous(), values[..., 2].contiguous()

    @staticmethod
    def _masks(anns: list[dict], h: int, w: int) -> torch.Tensor:
        masks = np.zeros((len(anns), h, w), dtype=np.uint8)
        for i, a in enumerate(anns):
            seg = a.get("segmentation")
            if not seg:
                continue
            if isinstance(seg, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
            elif isinstance(seg.get("counts"), list):
                rle = mask_utils.frPyObjects(seg, h, w)
            else:
                rle = seg
            masks[i] = mask_utils.decode(rle)
        return torch.from_numpy(masks)


def _merge_visibility(xy: torch.Tensor, visibility: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[N, K, 3] (x, y, v); a point outside the (transformed) ``size`` image is unlabelled (v = 0)."""
    xy, (h, w) = xy.as_subclass(torch.Tensor).float(), size
    inside = (xy[..., 0] >= 0) & (xy[..., 1] >= 0) & (xy[..., 0] < w) & (xy[..., 1] < h)
    return torch.cat([xy, torch.where(inside, visibility, 0.0)[..., None]], dim=-1)


def collate(batch: list) -> tuple[list, list]:
    """Detection batches stay lists: images differ in size, the model pads them itself."""
    return tuple(map(list, zip(*batch, strict=True)))
