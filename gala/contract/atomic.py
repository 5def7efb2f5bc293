"""Atomic file writes: through a temporary file beside the target and a rename, so that a reader
(another process, or the next part) never sees half a file, whatever way the writer stops."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd


def _tmp(path: Path) -> Path:
    # beside the target (same filesystem, so the rename is atomic) and unique per process
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_text_atomic(path: str | Path, text: str) -> Path:
    path = Path(path)
    tmp = _tmp(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    tmp = _tmp(path)
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """JSON (indented, UTF-8 as is) written atomically; values JSON cannot hold are written with str()."""
    return write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_csv_atomic(path: str | Path, frame: pd.DataFrame, *, decimals: int | None = None) -> Path:
    """A frame as CSV (no index) written atomically, optionally rounded to `decimals`."""
    out = frame.round(decimals) if decimals is not None else frame
    return write_text_atomic(path, out.to_csv(index=False))
