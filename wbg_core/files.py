"""Writing a file so that a reader never sees half of it: the one atomic writer of the package;
and reading a JSON object whose every failure names the file.

Torch-free, so the job runner and the campaign store use it as the checkpoints do.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a unique hidden temporary file beside `path`, then rename it into place (a kill
    leaves the old file or the new one, never a mix; two writers never share a temporary)."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """atomic_write_text for bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def read_json_object(path: Path, error: type[Exception], what: str, remedy: str = "") -> dict:
    """The JSON object in `path`; a missing, unreadable or non-object file raises `error` naming
    `what` it is, the path and the `remedy` (e.g. ": rerun ...")."""
    if not path.exists():
        raise error(f"{what} {path} is missing{remedy}")
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{what} {path} is corrupt: {exc}{remedy}") from exc
    if not isinstance(value, dict):
        raise error(f"{what} {path} is corrupt: it holds a JSON {type(value).__name__}, not an object{remedy}")
    return value
