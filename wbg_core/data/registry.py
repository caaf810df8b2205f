"""Every bundled data file, with its source, licence and checksum (data/registry.json)."""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from ..settings import get_settings

REGISTRY_FILE = "registry.json"


class DataError(RuntimeError):
    """A bundled data file is missing, truncated or corrupt; the message names the file."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_npz(path: Path) -> dict:
    """Every array of an .npz, never unpickled; ValueError says what is wrong with the file.

    Why not np.load alone: an empty, truncated or garbled file raises any of six exception types
    (BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError), and a member is checked
    against zip's CRC-32 only when read to its end. Here each member is read whole, so a
    flipped byte anywhere fails the CRC, and every failure is one ValueError."""
    import io
    import zipfile
    import zlib

    import numpy as np

    try:
        with zipfile.ZipFile(path) as zf:
            arrays = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise ValueError(f"member {info.filename!r} is not an array")
                arrays[info.filename[:-4]] = np.load(io.BytesIO(zf.read(info)), allow_pickle=False)
            return arrays
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, NotImplementedError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc


def load_registry(data_dir: Path | None = None) -> dict:
    """data/registry.json, checked for the fields data_path reads; DataError names it if not."""
    data_dir = Path(data_dir or get_settings().data_dir)
    path = data_dir / REGISTRY_FILE
    if not path.exists():
        raise DataError(f"data registry {path} is missing")
    try:
        registry = json.loads(path.read_text())
        files = registry["files"]
        for name, entry in files.items():
            if not (isinstance(entry["bytes"], int) and isinstance(entry["sha256"], str) and len(entry["sha256"]) == 64):
                raise ValueError(f"entry {name!r} lacks an integer 'bytes' or a 64-digit 'sha256'")
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"data registry {path} is corrupt: {type(exc).__name__}: {exc}") from exc
    return registry


@lru_cache(maxsize=32)
def _verified(path_str: str, expected: str, size: int, mtime: float) -> None:
    digest = sha256_of(Path(path_str))
    if digest != expected:
        raise DataError(
            f"{path_str} is corrupt or was changed: sha256 {digest[:12]}... does not match the "
            f"registered {expected[:12]}...; restore it with `git checkout -- {Path(path_str).name}`"
        )


def data_path(name: str, data_dir: Path | None = None, verify: bool | None = None) -> Path:
    """Path of a registered data file, checked against its size and sha256 once per process."""
    data_dir = Path(data_dir or get_settings().data_dir)
    entry = load_registry(data_dir)["files"].get(name)
    if entry is None:
        raise DataError(f"{name} is not a registered data file (see {data_dir / REGISTRY_FILE})")
    path = data_dir / name
    if not path.exists():
        raise DataError(f"data file {path} is missing")
    st = path.stat()
    if st.st_size != entry["bytes"]:
        raise DataError(
            f"{path} is truncated or corrupt: {st.st_size:,} bytes, expected {entry['bytes']:,}"
        )
    if get_settings().verify_checksums if verify is None else verify:
        _verified(str(path), entry["sha256"], st.st_size, st.st_mtime)
    return path
