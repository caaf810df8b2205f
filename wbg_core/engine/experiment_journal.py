"""Finished repeats of an experiment, kept one file each, so a killed run loses one repeat at most.

Why: Exp 2-4 run 10 repeats of 3-4 minutes each (about 35 min per experiment on 2 cores), and a
session, a shared server or a user's Ctrl-C ends runs that long. The journal's folder name
hashes the experiment's settings (all but the number of repeats, so a 3-repeat run can grow to
10) and the config.json of each checkpoint it uses, whose sha256 list names every weight and
head file: repeats of another oracle, generator or autoencoder never mix in.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from ..files import atomic_write_text
from ..models.registry import MODEL_NAMES, CheckpointSet


def journal_dir(cfg, models: CheckpointSet, root: Path) -> Path:
    """root/experiments/<name>-<12 hex digits of the settings and the checkpoints>."""
    settings = {k: v for k, v in asdict(cfg).items() if k != "repeats"}
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for name in MODEL_NAMES:
        config = models.path(name) / "config.json"
        h.update(config.read_bytes() if config.is_file() else b"-")
    return Path(root) / "experiments" / f"{cfg.name}-{h.hexdigest()[:12]}"


def _path(directory: Path, r: int) -> Path:
    return Path(directory) / f"repeat_{r:03d}.json"


def read_repeats(directory: Path, repeats: int, warn: Callable[[str], None] = print) -> dict[int, dict]:
    """The repeats 0..repeats-1 already finished; a damaged file is named and its repeat runs again."""
    done = {}
    for r in range(repeats):
        path = _path(directory, r)
        if not path.is_file():
            continue
        try:
            row = json.loads(path.read_text())
            if not isinstance(row, dict) or row.get("repeat") != r:
                raise ValueError(f"it does not hold repeat {r}")
        except (ValueError, UnicodeDecodeError) as exc:
            warn(f"{path} is damaged ({exc}); repeat {r} runs again")
            continue
        done[r] = row
    return done


def write_repeat(directory: Path, row: dict) -> Path:
    """Atomically, so a kill mid-write leaves the old file or none, never half of one."""
    path = _path(directory, int(row["repeat"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(row, default=float) + "\n")
    return path
