"""The cost block: counts add up with the pre-training's, peak memory takes the larger."""

from __future__ import annotations

import resource

from scratchlab.engine.cost import Cost, cost_block, peak_memory_mb


def test_peak_memory_is_recorded_and_totals_keep_the_larger():
    own = Cost(images_seen=10, instances_seen=30, pixels_seen=1000, wall_s=2.0)
    pre = {"kind": "classify", "images_seen": 5, "pixels_seen": 500, "wall_s": 1.0, "peak_memory_mb": 1e9}
    block = cost_block(own, pre)
    # On this CPU machine: the process's peak RSS so far (kilobytes on Linux), in MB.
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert 0 < block["peak_memory_mb"] <= rss_mb + 0.1
    assert block["total"]["images_seen"] == 15 and block["total"]["wall_s"] == 3.0
    assert block["total"]["peak_memory_mb"] == 1e9  # the pre-training's peak is the larger one
    small = cost_block(Cost(peak_memory_mb=42.0), {"peak_memory_mb": 7.0})
    assert small["peak_memory_mb"] == 42.0 and small["total"]["peak_memory_mb"] == 42.0
    assert peak_memory_mb() >= block["peak_memory_mb"]
