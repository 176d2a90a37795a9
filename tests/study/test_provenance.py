"""How a study names an arm's pre-training, and the verdict telling published weights apart by source."""

from __future__ import annotations

from scratchlab.study.groups import group_arms
from scratchlab.study.provenance import arm_provenance, external_cost, pretraining_label
from scratchlab.study.verdict import compute_verdict


def _arm(name, init, ap, label=None, weights=None, schedule=1.0):
    prov = {"label": label, "cost": "not counted: external"} if label else None
    arm = {
        "name": name,
        "init": init,
        "norm": "GN",
        "schedule": schedule,
        "data": "100%",
        "seed": 0,
        "status": "finished",
        "final": {"bbox": {"AP": ap, "AP50": ap + 10, "AP75": ap - 5}},
        "curve": [],
        "cost": {"total": {"images_seen": 100, "pixels_seen": 10_000}},
        "provenance": prov,
    }
    return {**arm, "weights": weights} if weights else arm


def test_labels_fall_back_to_what_the_study_asked_for():
    assert pretraining_label({"init": "random"}) == "none (random init)"
    assert (
        pretraining_label({"init": "weights", "weights": "x.pkl", "weights_data": "ImageNet-1k"})
        == "ImageNet-1k (x.pkl)"
    )
    assert pretraining_label({"init": "weights", "provenance": {"label": "L"}}) == "L"
    assert external_cost({"init": "weights", "provenance": {"cost": "not counted: external"}})
    assert not external_cost({"init": "classify", "provenance": {"cost": {"images_seen": 5}}})
    final = {"provenance": {"label": "L", "sha256": "ab", "load": {"missing": 3}}}
    assert arm_provenance(final)["label"] == "L" and "load" not in arm_provenance(final)


def test_each_weights_source_is_its_own_comparison():
    tv, timm = "ImageNet-1k (torchvision IMAGENET1K_V2)", "ImageNet-1k (timm file resnet50_gn.pth)"
    arms = [
        _arm("scratch", "random", 30.0),
        _arm("scratch3", "random", 36.0, schedule=3.0),
        _arm("tv", "weights", 35.0, tv, "ResNet50_Weights.IMAGENET1K_V2"),
        _arm("timm", "weights", 33.0, timm, "resnet50_gn.pth"),
    ]
    assert len(group_arms(arms)) == 4
    verdict = compute_verdict(arms)
    questions = {q["key"]: q["lines"] for q in verdict["questions"]}
    for label in (tv, timm):
        assert any(f"for pre-training on {label} (GN, 1x)" in line for line in questions["catch_up"]), label
        assert any(
            f"pre-training on {label} (GN, 1x) reached" in line and "not counted: external" in line
            for line in questions["cost"]
        ), label
    assert [f["a_group"]["pretrained_on"] for f in verdict["findings"]["cost"]] == [tv, timm]
    assert verdict["headline"].startswith("With data 100%, random init (GN, 3x) reached")
    assert f"The best other start, pre-training on {tv} (GN, 1x)" in verdict["headline"]


def test_classification_pre_training_is_named_with_its_data():
    arm = _arm("cls", "classify", 31.0, "generated shapes, 8 classes (scratchlab pretrain classify)")
    arm["provenance"]["data"] = "generated shapes, 8 classes"
    (group,) = group_arms([arm])
    assert group.label() == "classification pre-training on generated shapes, 8 classes (GN, 1x)"
