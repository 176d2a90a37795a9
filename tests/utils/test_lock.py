import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from scratchlab.utils.lock import LOCK_NAME, DirectoryInUseError, exclusive_directory


def test_a_second_holder_is_refused_and_the_holder_named(tmp_path):
    with exclusive_directory(tmp_path / "run"):
        with pytest.raises(DirectoryInUseError) as refused:
            with exclusive_directory(tmp_path / "run"):
                pass
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in str(refused.value)
    assert str(tmp_path / "run" / LOCK_NAME) in str(refused.value)


def test_the_lock_is_released_and_its_file_removed(tmp_path):
    with exclusive_directory(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()
    with exclusive_directory(tmp_path):  # free again
        pass


def test_a_lock_left_by_a_dead_process_is_stale_and_taken_over(tmp_path, caplog):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    record = {"pid": int(dead.stdout), "host": socket.gethostname()}
    (tmp_path / LOCK_NAME).write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING), exclusive_directory(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"stale lock of pid {record['pid']}" in caplog.text


def test_a_holder_in_another_process_is_named(tmp_path):
    code = (
        "import sys, time; from scratchlab.utils.lock import exclusive_directory\n"
        f"with exclusive_directory({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DirectoryInUseError, match=f"pid {holder.pid} on host"):
            with exclusive_directory(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with exclusive_directory(tmp_path):  # the kernel dropped the dead holder's lock
        pass


def test_a_hostile_lock_record_is_not_printed_whole(tmp_path):
    with exclusive_directory(tmp_path):
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": os.getpid(), "host": "h" * 10**6}))
        with pytest.raises(DirectoryInUseError) as refused:
            with exclusive_directory(tmp_path):
                pass
    assert len(str(refused.value)) < 1000
