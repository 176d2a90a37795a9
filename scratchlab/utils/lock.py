"""One process at a time in a run or study directory.

``DIR/.scratchlab.lock`` records the holder (pid, host); the exclusion itself is an ``flock`` on that file,
which the kernel drops when the holder dies, so a lock left by a killed process is stale by construction:
the next process takes it over (and says so) instead of refusing forever. Under ``torchrun`` rank 0 holds
it for the whole job and tells the other ranks whether it got it, so every rank of a refused job stops.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["DirectoryInUseError", "LOCK_NAME", "exclusive_directory"]

log = logging.getLogger(__name__)
LOCK_NAME = ".scratchlab.lock"
_RECORD_BYTES = 512  # a lock file is a short JSON record: never read (or print) more of a hostile one


class DirectoryInUseError(RuntimeError):
    """Another live process holds the directory's lock (or the directory cannot be made or locked)."""


def _holder(fd: int) -> str:
    """The lock file's record as ``pid N on host H``, or what is there instead (bounded)."""
    raw = os.pread(fd, _RECORD_BYTES, 0).decode("utf-8", "replace")
    try:
        record = json.loads(raw)
        return f"pid {int(record['pid'])} on host {str(record['host'])[:100]}"
    except (ValueError, KeyError, TypeError):
        return "another process (no readable holder record)" if raw else ""


def _acquire(directory: Path) -> int:
    """The lock file's descriptor, locked and holding this process's record."""
    path = directory / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd) or "another process"
            os.close(fd)
            raise DirectoryInUseError(
                f"{directory} is in use by {holder} (lock file {path}): wait for it to end or stop it, "
                "or give another --out"
            ) from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:  # not a file its holder removed between our open and our lock: it is ours
            break
        os.close(fd)
    if stale := _holder(fd):
        log.warning("%s: stale lock of %s (no longer running) taken over", path, stale)
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, record, 0)
    return fd


def _release(directory: Path, fd: int) -> None:
    (directory / LOCK_NAME).unlink(missing_ok=True)  # removed while still locked: see _acquire's inode check
    os.close(fd)


@contextmanager
def exclusive_directory(directory: str | Path) -> Iterator[None]:
    """Hold ``directory``'s lock (creating the folder) for the ``with`` block; raise
    :class:`DirectoryInUseError`, naming the holder, when another live process has it. A collective under
    ``torchrun``: every rank enters it, rank 0 takes the lock."""
    from .dist import all_gather_objects, is_main_process  # torch: kept out of the CLI's error handling

    directory = Path(directory)
    fd, refused = None, None
    if is_main_process():
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = _acquire(directory)
        except OSError as exc:  # an --out naming a file, no permission: every rank must hear of it
            refused = (
                f"{directory}: {exc.strerror or exc}" if not isinstance(exc, BlockingIOError) else str(exc)
            )
        except DirectoryInUseError as exc:
            refused = str(exc)
    refused = all_gather_objects(refused)[0]
    if refused is not None:
        raise DirectoryInUseError(refused)
    try:
        yield
    finally:
        if fd is not None:
            _release(directory, fd)
