"""The keypoint part of ``scratchlab data check``: category keypoint definitions and annotation keypoints.

Each function returns messages (empty when all is well) for :mod:`scratchlab.data.check` to file under
the record it names. What is checked is what breaks Keypoint R-CNN training or COCO's OKS evaluation.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["category_keypoint_problems", "annotation_keypoint_problems"]


def category_keypoint_problems(category: dict[str, Any]) -> list[str]:
    """Problems with a category's ``keypoints`` names and ``skeleton`` (1-based index pairs)."""
    names = category.get("keypoints")
    if names is None:
        return []
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        return [f"'keypoints' must be a non-empty list of names, got {names!r}"]
    out = []
    if len(set(names)) != len(names):
        out.append(f"'keypoints' names repeat: {names}")
    for pair in category.get("skeleton") or []:
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(k, int) and 1 <= k <= len(names) for k in pair)
        ):
            out.append(f"skeleton entry {pair!r} must be two keypoint numbers in 1..{len(names)}")
    return out


def annotation_keypoint_problems(
    ann: dict[str, Any], names: list[str] | None, size: tuple[int, int] | None, tolerance: float
) -> list[str]:
    """Problems with an annotation's ``keypoints`` ([x, y, v] per keypoint of its category, ``names``)
    and ``num_keypoints`` (the count of labelled points, v > 0); ``size`` is the image's (width, height)."""
    kp = ann.get("keypoints")
    if kp is None:
        return []
    if names is None:
        return ["has 'keypoints' but its category defines none"]
    if not isinstance(kp, list) or len(kp) != 3 * len(names):
        return [
            f"'keypoints' must list [x, y, v] for each of the category's {len(names)} keypoints "
            f"({3 * len(names)} numbers), got {len(kp) if isinstance(kp, list) else type(kp).__name__}"
        ]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in kp):
        return ["'keypoints' holds values that are not finite numbers"]
    out = []
    visibility = kp[2::3]
    if any(v not in (0, 1, 2) for v in visibility):
        out.append(f"keypoint visibility must be 0, 1 or 2, got {sorted(set(visibility))}")
    labelled = sum(1 for v in visibility if v > 0)
    if ann.get("num_keypoints") != labelled:
        out.append(
            f"num_keypoints is {ann.get('num_keypoints')!r} but {labelled} keypoint(s) are labelled "
            "(COCO evaluation ignores an object whose num_keypoints is 0)"
        )
    if size is not None:
        w, h = size
        outside = [
            names[k]
            for k, (x, y, v) in enumerate(zip(kp[0::3], kp[1::3], visibility, strict=True))
            if v > 0 and not (-tolerance <= x <= w + tolerance and -tolerance <= y <= h + tolerance)
        ]
        if outside:
            out.append(f"labelled keypoints {outside} lie outside the {w}x{h} image")
    return out
