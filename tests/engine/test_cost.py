"""The cost block: counts add up with the pre-training's, peak memory takes the larger."""

from __future__ import annotations

import resource

from scratchlab.engine.cost import Cost, cost_block, peak_memory_mb


def _vm_hwm_mb() -> float:
    line = next(x for x in open("/proc/self/status").read().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def test_peak_memory_is_recorded_and_totals_keep_the_larger():
    own = Cost(images_seen=10, instances_seen=30, pixels_seen=1000, wall_s=2.0)
    pre = {"kind": "classify", "images_seen": 5, "pixels_seen": 500, "wall_s": 1.0, "peak_memory_mb": 1e9}
    block = cost_block(own, pre)
    # On this CPU machine: the resident peak since the cost started counting (VmHWM, kB), in MB.
    assert 0 < block["peak_memory_mb"] <= _vm_hwm_mb() + 0.1 and block["peak_memory_scope"] == "run"
    assert block["total"]["images_seen"] == 15 and block["total"]["wall_s"] == 3.0
    assert block["total"]["peak_memory_mb"] == 1e9  # the pre-training's peak is the larger one
    small = cost_block(Cost(peak_memory_mb=42.0), {"peak_memory_mb": 7.0})
    assert small["peak_memory_mb"] == 42.0 and small["total"]["peak_memory_mb"] == 42.0
    assert peak_memory_mb() >= block["peak_memory_mb"]


def _touch(mb: int) -> bytearray:
    """A buffer of ``mb`` MB with every page written, so it is resident."""
    buf = bytearray(mb * 2**20)
    buf[::4096] = b"\x01" * len(buf[::4096])
    return buf


def test_each_run_in_one_process_records_its_own_peak():
    """Two runs one after the other in one process (the inline launcher): the second, which allocates
    little, does not report the first's 300 MB peak."""
    first = Cost()
    assert first.peak_memory_scope == "run"  # Linux with a writable /proc/self/clear_refs
    buf = _touch(300)
    del buf
    big = cost_block(first, None)["peak_memory_mb"]
    second = Cost()
    small = cost_block(second, None)
    assert big - small["peak_memory_mb"] > 250, (big, small)
    assert small["peak_memory_scope"] == "run" and small["total"]["peak_memory_mb"] == small["peak_memory_mb"]
    assert _vm_hwm_mb() < big - 250  # the reset lowered the kernel's own peak, not just ours


def test_without_a_resettable_peak_the_process_maximum_says_so(tmp_path, monkeypatch):
    from scratchlab.engine import cost

    monkeypatch.setattr(cost, "_CLEAR_REFS", tmp_path / "no" / "clear_refs")
    monkeypatch.setattr(cost, "_STATUS", tmp_path / "no" / "status")
    own = Cost()
    assert own.peak_memory_scope == "process"
    block = cost_block(own, None)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert block["peak_memory_mb"] == round(rss_mb, 1) and block["peak_memory_scope"] == "process"


def test_pretraining_cost_keeps_its_peak_memory_scope(tmp_path):
    import json

    from scratchlab import run_dir
    from scratchlab.engine.cost import pretrain_cost

    (tmp_path / "backbone.pth").write_bytes(b"")
    meta = {"images_seen": 5, "pixels_seen": 50, "wall_s": 1.0, "peak_memory_mb": 9.0}
    (tmp_path / run_dir.PRETRAIN_META).write_text(json.dumps({**meta, "peak_memory_scope": "run"}))
    got = pretrain_cost(str(tmp_path / "backbone.pth"))
    assert got == {"kind": "classify", **meta, "peak_memory_scope": "run"}
