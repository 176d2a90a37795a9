"""Atomic writes: a file is either its old content or its complete new content, never half-written
(a crash mid-write, or a reader polling the file, sees one or the other)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["write_text", "write_json"]


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: concurrent writers never share it
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_json(path: str | Path, data: Any, **dumps_kwargs: Any) -> Path:
    """``data`` as JSON (``json.dumps`` keyword arguments pass through; NaN is refused) written atomically."""
    return write_text(path, json.dumps(data, allow_nan=False, **dumps_kwargs))
