"""Keypoints for the generated set's crescents: the back of the crescent and its two horn tips.

The crescent is mirror-symmetric, so its tips are told apart the way a person's hands are: by the side
they are on. Turn the crescent so its back points down; the tip then on the viewer's left is
``left_tip``. A horizontal flip of the image turns a left tip into a right one, which is what the
``left_``/``right_`` names tell the data pipeline (:mod:`scratchlab.data.keypoints`). Nothing here draws
random numbers: the points come from the outline the scene already placed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["KEYPOINT_FAMILY", "KEYPOINT_NAMES", "keypoint_category", "crescent_keypoints"]

KEYPOINT_FAMILY = "crescent"
KEYPOINT_NAMES = ["back", "left_tip", "right_tip"]
# Outline vertex indices (scratchlab.data.shapes._crescent: 28 outer-arc points from one tip round the
# back to the other, then the inner arc): the tips are the arc's ends, the back its middle.
_TIP_A, _TIP_B, _BACK = 0, 27, (13, 14)


def keypoint_category(category: dict[str, Any]) -> dict[str, Any]:
    """``category`` with the COCO keypoint fields when it is the crescent family."""
    if category["name"] != KEYPOINT_FAMILY:
        return category
    return {**category, "keypoints": list(KEYPOINT_NAMES), "skeleton": [[1, 2], [1, 3]]}


def _visibility(x: float, y: float, visible: np.ndarray) -> int:
    """2 if the visible mask covers the point (within a pixel: tips are thin), 1 if hidden, 0 off-image."""
    h, w = visible.shape
    if not (0 <= x < w and 0 <= y < h):
        return 0
    xi, yi = int(round(x)), int(round(y))
    near = visible[max(0, yi - 1) : yi + 2, max(0, xi - 1) : xi + 2]
    return 2 if near.any() else 1


def crescent_keypoints(outline: np.ndarray, visible: np.ndarray) -> tuple[list[float], int]:
    """COCO ``keypoints`` ([x, y, v] x 3, pixel coordinates) and ``num_keypoints`` of a placed crescent
    ``outline`` whose visible region is ``visible``."""
    back = outline[list(_BACK)].mean(0)
    tips = outline[[_TIP_A, _TIP_B]]
    up = tips.mean(0) - back  # from the back towards the opening
    # Image y points down: with "up" pointing up the screen, a tip left of the back has a negative cross
    # product up x (tip - back).
    cross = up[0] * (tips[:, 1] - back[1]) - up[1] * (tips[:, 0] - back[0])
    left, right = (tips[0], tips[1]) if cross[0] < cross[1] else (tips[1], tips[0])
    values: list[float] = []
    for x, y in (back, left, right):
        v = _visibility(float(x), float(y), visible)
        values += [round(float(x), 2), round(float(y), 2), v] if v else [0.0, 0.0, 0]
    return values, sum(1 for v in values[2::3] if v)
