"""Per-epoch progress as JSON lines: written by the Trainer, read by the app's job runner.

Why: the Models page used to find a training's progress by matching tqdm's redrawn text
("3/10 [") in the log; a JSON line per epoch says which model, which epoch of how many,
the time spent and the ETA, and survives any change to tqdm's format. Torch-free, so the
app reads it without importing torch.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

FILE_NAME = "progress.jsonl"  # in a training job's output folder
_path: Path | None = None


def set_progress_file(path: Path | None) -> None:
    """Where every Trainer of this process appends its lines (None: nowhere)."""
    global _path
    _path = Path(path) if path is not None else None


def append_progress(record: dict) -> None:
    if _path is None:
        return
    with open(_path, "a") as fh:
        fh.write(json.dumps({**record, "time": round(time.time(), 1)}) + "\n")


def read_progress(path: Path) -> dict | None:
    """The last whole line of a progress file (one being written is skipped), or None."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("epoch"), int) and isinstance(rec.get("epochs"), int):
            return rec
    return None
