import random

import numpy as np
import pytest
import torch

from scratchlab.engine.checkpoint import (
    BackgroundCheckpointer,
    UnreadableCheckpointsError,
    capture_rng,
    load_latest,
    restore_rng,
    save_checkpoint,
)


def test_rng_roundtrip_through_weights_only_load(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_checkpoint({"rng": capture_rng(), "iteration": 5}, tmp_path)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    ckpt, _ = load_latest(tmp_path)  # weights_only=True inside
    restore_rng(ckpt["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_previous_is_kept_and_used_when_last_is_corrupt(tmp_path, caplog):
    save_checkpoint({"iteration": 1}, tmp_path)
    save_checkpoint({"iteration": 2}, tmp_path)
    assert load_latest(tmp_path)[0]["iteration"] == 2
    (tmp_path / "last.pth").write_bytes(b"\x00garbage")
    ckpt, path = load_latest(tmp_path)
    assert ckpt["iteration"] == 1 and path.name == "previous.pth"
    assert "unreadable" in caplog.text


def test_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    save_checkpoint({"iteration": 1}, tmp_path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint({"iteration": 2}, tmp_path)
    monkeypatch.undo()
    assert load_latest(tmp_path)[0]["iteration"] == 1
    assert not list(tmp_path.glob("*.tmp")), "temporary files are cleaned up"


def test_no_checkpoint_gives_none(tmp_path):
    assert load_latest(tmp_path) is None


def test_weights_only_refuses_pickled_code(tmp_path):
    import argparse

    torch.save({"x": argparse.Namespace(cmd="rm -rf /")}, tmp_path / "last.pth")
    with pytest.raises(UnreadableCheckpointsError, match=r"last\.pth \(UnpicklingError"):
        load_latest(tmp_path)
    assert (tmp_path / "last.pth").is_file()


def test_interrupt_during_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    save_checkpoint({"iteration": 1}, tmp_path)
    real_save = torch.save

    def interrupted(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"iteration": 2}, tmp_path)
    monkeypatch.undo()
    ckpt, path = load_latest(tmp_path)
    assert ckpt["iteration"] == 1 and path.name == "last.pth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]


def test_resume_falls_back_when_last_is_corrupt(tmp_path, caplog):
    save_checkpoint({"iteration": 4}, tmp_path)
    save_checkpoint({"iteration": 6}, tmp_path)
    (tmp_path / "last.pth").write_bytes((tmp_path / "last.pth").read_bytes()[:100])  # torn file
    ckpt, path = load_latest(tmp_path)
    assert (ckpt["iteration"], path.name) == (4, "previous.pth")
    assert "falling back" in caplog.text


def test_background_checkpoints_hold_the_state_of_their_call_in_order(tmp_path):
    weights = torch.zeros(3)
    state = {"model": {"w": weights}, "optimizer": {"state": [{"m": weights * 2}]}, "iteration": 1}
    writer = BackgroundCheckpointer(tmp_path)
    writer.save(state)
    weights.add_(1.0)  # training goes on changing its tensors in place
    writer.save({**state, "iteration": 2})
    writer.close()
    last, path = load_latest(tmp_path)
    assert (
        path.name == "last.pth" and last["iteration"] == 2 and torch.equal(last["model"]["w"], torch.ones(3))
    )
    first = torch.load(tmp_path / "previous.pth", weights_only=True)
    assert first["iteration"] == 1 and torch.equal(first["model"]["w"], torch.zeros(3))


def test_background_write_errors_reach_the_caller(tmp_path, monkeypatch):
    save_checkpoint({"iteration": 1}, tmp_path)
    writer = BackgroundCheckpointer(tmp_path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    writer.save({"iteration": 2})
    with pytest.raises(OSError, match="No space"):
        writer.close()
    monkeypatch.undo()
    assert load_latest(tmp_path)[0]["iteration"] == 1


@pytest.mark.parametrize("failure", ["torch-writer", "enospc"])
def test_a_full_disk_names_the_path_and_the_space_needed(tmp_path, monkeypatch, failure):
    import errno
    import shutil
    from collections import namedtuple

    from scratchlab.engine import checkpoint

    save_checkpoint({"iteration": 1, "w": torch.zeros(4)}, tmp_path)
    before = (tmp_path / "last.pth").read_bytes()

    def full(obj, f):
        f.write(b"partial")
        if failure == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise RuntimeError(
            "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: file write failed"
        )

    monkeypatch.setattr(checkpoint.torch, "save", full)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1024))
    with pytest.raises(checkpoint.DiskFullError) as full_disk:
        save_checkpoint({"iteration": 2, "w": torch.zeros(1 << 20)}, tmp_path)
    message = str(full_disk.value)
    assert str(tmp_path / "last.pth.new") in message and "4.0 MiB" in message and "\n" not in message
    assert (tmp_path / "last.pth").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]
