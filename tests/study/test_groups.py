"""Grouping arms into seeds of one configuration: arms of different detectors never share a group."""

from __future__ import annotations

from scratchlab.study.groups import group_arms


def _arm(name: str, model: str | None, seed: int = 0) -> dict:
    arm = {
        "name": name,
        "init": "random",
        "norm": "GN",
        "schedule": 1.0,
        "data": "100%",
        "seed": seed,
        "status": "finished",
        "final": {"bbox": {"AP": 10.0}},
    }
    if model is not None:
        arm["model"] = model
    return arm


def test_arms_of_different_models_form_separate_named_groups():
    groups = group_arms(
        [
            _arm("a", "Mask R-CNN R50-FPN"),
            _arm("b", "Cascade Mask R-CNN X152-32x8d-FPN"),
            _arm("c", "Mask R-CNN R50-FPN", seed=1),
        ]
    )
    assert [g.names for g in groups] == [["a", "c"], ["b"]]
    assert groups[1].label() == "random init (Cascade Mask R-CNN X152-32x8d-FPN, GN, 1x)"
    assert groups[1].key()["model"] == "Cascade Mask R-CNN X152-32x8d-FPN"


def test_one_model_keeps_the_short_label_and_old_records_still_group():
    assert (
        group_arms([_arm("a", "Mask R-CNN R50-FPN"), _arm("b", "Mask R-CNN R50-FPN", 1)])[0].label()
        == "random init (GN, 1x, 2 seeds)"
    )
    assert len(group_arms([_arm("a", None), _arm("b", None, 1)])) == 1
