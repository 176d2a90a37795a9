"""Evidence: an arm's estimate and its paired resamples, from one rebuild of its per-image results."""

from __future__ import annotations

import numpy as np

import scratchlab.evaluation.bootstrap as bootstrap
from scratchlab.evaluation.bootstrap import BOOTSTRAP_METRICS, ap_on_images, bootstrap_ap, resample_indices
from scratchlab.study.evidence import Evidence
from tests.study.conftest import predictions


def test_an_arm_rebuilds_its_per_image_results_once(make_arm, score, monkeypatch):
    arm = score(make_arm("classify_gn_1x", "classify", 1.0), predictions(2.0))
    built = []
    real_table = bootstrap._table
    monkeypatch.setattr(bootstrap, "_table", lambda data: built.append(data) or real_table(data))
    ev = Evidence(resamples=20, seed=5)
    ev.arm(arm, "bbox")
    ev.arm(arm, "bbox")
    assert len(built) == 1


def test_arm_samples_equal_the_standalone_functions_to_the_bit(make_arm, score):
    arm = score(make_arm("classify_gn_1x", "classify", 1.0), predictions(3.0, miss=0.2))
    data = arm["per_image"]["bbox"]
    images, samples = Evidence(resamples=30, seed=7).arm(arm, "bbox")
    assert images == tuple(data["image_ids"])
    estimate = ap_on_images(data, range(len(images)))
    draws = bootstrap_ap(data, resample_indices(len(images), 30, 7))
    for m in BOOTSTRAP_METRICS:
        assert samples[m].estimate == estimate[m]
        np.testing.assert_array_equal(samples[m].draws, draws[m])
