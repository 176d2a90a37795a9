"""Do a validation file's categories mean what the model's labels mean?

A detector's label k is the k-th of the categories it was trained on (the training file's, sorted by id:
:class:`~scratchlab.data.coco.CocoDetection`); its detections are scored against the validation file by
category id. The two files agree when every id both list has the same name and every category the
validation annotations use is one the model knows. Order and extra, unused entries do not matter: the
mapping goes by id (Detectron2 likewise checks that datasets' metadata agree and maps through the model's
own contiguous ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["CategoryMismatch", "compare_categories", "used_category_ids"]


class CategoryMismatch(ValueError):
    """The validation file's categories contradict the model's; the message names both files."""


def used_category_ids(annotations: Iterable[Mapping[str, Any]]) -> dict[int, int]:
    """``category id -> count`` of the non-crowd annotations (crowd regions are only ignored by COCOeval,
    never matched, so they make no category scorable)."""
    counts: dict[int, int] = {}
    for a in annotations:
        if not a.get("iscrowd", 0):
            counts[a["category_id"]] = counts.get(a["category_id"], 0) + 1
    return counts


def _name(category: Mapping[str, Any]) -> str:
    return str(category.get("name", category["id"]))


def compare_categories(
    model: Sequence[Mapping[str, Any]],
    val: Sequence[Mapping[str, Any]],
    val_used: Mapping[int, int],
    model_source: str,
    val_source: str,
) -> list[Mapping[str, Any]]:
    """Raise :class:`CategoryMismatch` when ``val`` (the validation file's categories, ``val_used`` its
    annotations' counts by id) contradicts ``model`` (the model's categories): an id named differently,
    or annotations of a category the model was not trained on. Return the model's categories without
    annotations in the validation file (COCOeval skips them; the caller says so)."""
    known = {c["id"]: c for c in model}
    renamed = [(c, known[c["id"]]) for c in val if c["id"] in known and _name(c) != _name(known[c["id"]])]
    if renamed:
        pairs = "; ".join(
            f"id {v['id']} is {_name(v)!r} there, {_name(m)!r} in the model" for v, m in renamed
        )
        raise CategoryMismatch(
            f"{val_source} and {model_source} disagree on what a category id means: {pairs}. Labels map to "
            "categories by id, so the two files must name each id alike (rename it in one of them, or "
            "give the validation file the training file's ids)"
        )
    names = {c["id"]: _name(c) for c in val}
    unknown = sorted(i for i in val_used if i not in known)
    if unknown:
        listed = ", ".join(f"id {i} {names.get(i, '?')!r} ({val_used[i]} annotation(s))" for i in unknown)
        raise CategoryMismatch(
            f"{val_source}: annotations use categories the model was not trained on ({model_source} does not "
            f"list them): {listed}. The model cannot predict them, so their AP could only be 0 and would "
            "pull the mean down; leave them out of the validation file, or train on them"
        )
    return [c for c in model if c["id"] not in val_used]
