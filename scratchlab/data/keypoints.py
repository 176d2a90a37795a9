"""The keypoint schema of a COCO dataset: which keypoints its categories define, and which keypoint a
horizontal flip turns each one into.

COCO describes keypoints per category (``"keypoints": [names...]``, ``"skeleton"``); annotations carry
``keypoints`` = [x1, y1, v1, ...] (v: 0 not labelled, 1 labelled but hidden, 2 visible) and
``num_keypoints``. Keypoint R-CNN predicts one set of K keypoints for every class, so every category that
defines keypoints must define the same list. A flip mirrors the image: what was the left eye is now where
a right eye would be, so ``left_*`` and ``right_*`` keypoints swap (COCO person's convention; Detectron2's
``keypoint_flip_map``). A category may state the pairs itself as ``"flip_map": [[a, b], ...]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["KeypointSchema", "keypoint_schema", "flip_index", "COCO_PERSON_KEYPOINTS"]

# COCO person keypoints in dataset order (person_keypoints_*.json).
COCO_PERSON_KEYPOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)


class KeypointSchema:
    """``names`` (the K keypoints, in order) and ``flip`` (index of each keypoint's mirror image)."""

    def __init__(self, names: Sequence[str], flip: Sequence[int]) -> None:
        self.names, self.flip = tuple(names), tuple(flip)

    def __len__(self) -> int:
        return len(self.names)


def flip_index(names: Sequence[str], flip_map: Sequence[Sequence[str]] | None = None) -> list[int]:
    """For each keypoint, the index of the keypoint it becomes under a horizontal flip.

    ``flip_map`` lists the swapped pairs by name; without it, ``left_X`` pairs with ``right_X`` (and
    ``X_left`` with ``X_right``). A keypoint without a partner (nose, a centre point) maps to itself.
    """
    index = {n: i for i, n in enumerate(names)}
    if len(index) != len(names):
        raise ValueError(f"keypoint names repeat: {list(names)}")
    pairs: list[tuple[str, str]] = []
    if flip_map is not None:
        for pair in flip_map:
            if len(pair) != 2 or any(p not in index for p in pair):
                raise ValueError(f"flip_map pair {list(pair)} must name two of the keypoints {list(names)}")
            pairs.append((pair[0], pair[1]))
    else:
        for n in names:
            for a, b in (("left_", "right_"), ("_left", "_right")):
                mirror = n.replace(a, b, 1) if a in n else None
                if mirror is not None and mirror in index:
                    pairs.append((n, mirror))
    out = list(range(len(names)))
    for a, b in pairs:
        out[index[a]], out[index[b]] = index[b], index[a]
    return out


def keypoint_schema(categories: Sequence[dict[str, Any]], where: str = "categories") -> KeypointSchema | None:
    """The schema shared by the categories that define ``keypoints``; ``None`` when none does.

    Raises :class:`ValueError` naming ``where`` and the category when two categories define different
    keypoint lists (one Keypoint R-CNN head cannot predict both).
    """
    defining = [c for c in categories if c.get("keypoints")]
    if not defining:
        return None
    first = defining[0]
    names = list(first["keypoints"])
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f"{where}: category {first.get('name')!r} keypoints must be a list of names")
    for c in defining[1:]:
        if list(c["keypoints"]) != names:
            raise ValueError(
                f"{where}: categories {first.get('name')!r} and {c.get('name')!r} define different "
                "keypoint lists; Keypoint R-CNN predicts one list for all classes"
            )
    return KeypointSchema(names, flip_index(names, first.get("flip_map")))
