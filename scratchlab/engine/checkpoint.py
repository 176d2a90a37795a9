"""Checkpoints that lose nothing: written atomically, the previous one kept, every RNG state saved,
loaded with ``weights_only=True``.

``save_checkpoint`` writes ``<dir>/last.pth.tmp``, fsyncs it, moves the old ``last.pth`` to
``previous.pth`` and renames the new file into place. A crash or a full disk at any point leaves
either the old ``last.pth`` or ``previous.pth`` intact; ``load_latest`` falls back to ``previous.pth``
with a warning when ``last.pth`` is missing or corrupt. ``BackgroundCheckpointer`` does the same writes
on a thread (the fsync is most of a save's time), from a copy of the state taken when it is called.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..run_dir import LAST, PREVIOUS, branch_checkpoints

__all__ = [
    "save_checkpoint",
    "keep_copy",
    "BackgroundCheckpointer",
    "load_latest",
    "UnreadableCheckpointsError",
    "discard_checkpoints",
    "capture_rng",
    "restore_rng",
    "atomic_torch_save",
    "DiskFullError",
]

log = logging.getLogger(__name__)


class DiskFullError(OSError):
    """A checkpoint or weights file did not fit on its disk (what was there before is intact)."""


def _tensor_bytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temp file in the same folder, fsync, then rename over ``path``. A full disk
    raises :class:`DiskFullError` naming the path and the space it needs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        # torch's writer reports a full disk as a RuntimeError ("file write failed"), not as ENOSPC
        full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
        if full or (isinstance(exc, RuntimeError) and "write failed" in str(exc)):
            need, free = _tensor_bytes(obj), shutil.disk_usage(path.parent).free
            if full or free < need:
                raise DiskFullError(
                    errno.ENOSPC,
                    f"No space left on the disk of {path}: writing it needs about {need / 2**20:.1f} MiB, "
                    f"{free / 2**20:.1f} MiB are free (the files written before are intact)",
                ) from None
        raise


def save_checkpoint(state: dict[str, Any], ckpt_dir: str | Path) -> Path:
    """Write ``state`` as ``ckpt_dir/last.pth``, keeping the one before as ``previous.pth``."""
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tmp = ckpt_dir / (LAST + ".new")
    atomic_torch_save(state, tmp)  # the full new state is on disk before anything old is touched
    last = ckpt_dir / LAST
    if last.exists():
        os.replace(last, ckpt_dir / PREVIOUS)
    os.replace(tmp, last)
    return last


def keep_copy(src: str | Path, dst: str | Path) -> None:
    """Copy ``src`` to ``dst`` atomically (a temp file, fsynced, renamed): a kept checkpoint is whole."""
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _save_and_keep(state: dict[str, Any], ckpt_dir: Path, keep_as: Path | None) -> None:
    last = save_checkpoint(state, ckpt_dir)
    if keep_as is not None:
        keep_copy(last, keep_as)


def _copied(obj: Any) -> Any:
    """``obj`` with every tensor copied to the CPU: a snapshot training can no longer change."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _copied(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_copied(v) for v in obj)
    return obj


class BackgroundCheckpointer:
    """``save_checkpoint`` off the training loop's path. ``save`` copies the state now and writes the copy
    on one background thread, after the write before it has finished: checkpoints land whole and in
    order, with ``save_checkpoint``'s guarantee. ``wait`` returns once the last write is on disk and
    raises what it raised; ``close`` waits and stops the thread."""

    def __init__(self, ckpt_dir: str | Path) -> None:
        self.ckpt_dir = Path(ckpt_dir)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: Future | None = None

    def save(self, state: dict[str, Any], keep_as: Path | None = None) -> None:
        """``keep_as``: also keep a copy of this checkpoint there (a branch point's state)."""
        self.wait()
        self._pending = self._thread.submit(_save_and_keep, _copied(state), self.ckpt_dir, keep_as)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._thread.shutdown()


class UnreadableCheckpointsError(ValueError):
    """Checkpoints exist but none of them loads: resuming cannot continue the run, and starting over
    would discard what may still be recovered."""


def load_latest(ckpt_dir: str | Path) -> tuple[dict[str, Any], Path] | None:
    """Load ``last.pth``, falling back to ``previous.pth`` (with a warning) if it is missing or corrupt.
    Returns ``None`` when there is no checkpoint; raises :class:`UnreadableCheckpointsError` (touching
    no file) when every checkpoint there is unreadable."""
    ckpt_dir = Path(ckpt_dir)
    unreadable = []
    for name in (LAST, PREVIOUS):
        path = ckpt_dir / name
        if not path.exists():
            continue
        try:
            return torch.load(path, map_location="cpu", weights_only=True), path
        except Exception as exc:  # noqa: BLE001 - any unreadable file means: try the older one
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            log.warning("checkpoint %s is unreadable (%s); falling back to the previous one", path, why)
            unreadable.append(f"{name} ({why})")
    if unreadable:
        raise UnreadableCheckpointsError(
            f"--resume: no readable checkpoint in {ckpt_dir}: {'; '.join(unreadable)}; every file was kept. "
            "Restore a readable last.pth or previous.pth to continue, or move them away (or train without "
            "--resume) to start over"
        )
    return None


def discard_checkpoints(ckpt_dir: str | Path) -> None:
    """Remove ``last.pth``, ``previous.pth`` and the kept branch checkpoints (a run starting over in
    ``ckpt_dir``'s run folder: until its first save, ``--resume`` would otherwise continue the earlier run,
    and a fork would start from the earlier run's branch state)."""
    for name in (LAST, PREVIOUS):
        Path(ckpt_dir, name).unlink(missing_ok=True)
    for kept in branch_checkpoints(Path(ckpt_dir).parent):
        kept.unlink()


def capture_rng() -> dict[str, Any]:
    """Every RNG state the training touches, in types ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
