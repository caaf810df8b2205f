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


def load_registry(data_dir: Path | None = None) -> dict:
    data_dir = Path(data_dir or get_settings().data_dir)
    path = data_dir / REGISTRY_FILE
    if not path.exists():
        raise DataError(f"data registry {path} is missing")
    return json.loads(path.read_text())


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
