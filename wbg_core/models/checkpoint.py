"""Checkpoints: weights as safetensors (never pickle), config.json to rebuild, card.json to judge.

A checkpoint directory holds `model.safetensors`, `config.json` (class name and constructor
arguments: the model is rebuilt from the directory alone) and `card.json` (data checksum,
split seed, hyper-parameters, epochs, wall time, device, metrics, git commit, command line).
Training state for resuming after a kill lives in `<dir>/train_state/` in the same formats.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import ModelError  # noqa: F401  (re-exported: models raise it from here)

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "card.json"


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise ModelError(f"checkpoint file {path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"checkpoint file {path} is corrupt: {exc}") from exc


def read_json(path: Path) -> dict:
    if not path.exists():
        raise ModelError(f"checkpoint file {path} is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"checkpoint file {path} is corrupt: {exc}") from exc


def save_checkpoint(directory: Path, tensors: dict[str, torch.Tensor], config: dict, card: dict) -> None:
    directory = Path(directory)
    atomic_save_tensors(tensors, directory / WEIGHTS)
    atomic_write_text(directory / CONFIG, json.dumps(config, indent=2) + "\n")
    atomic_write_text(directory / CARD, json.dumps(card, indent=2, default=_jsonable) + "\n")


def load_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelError(f"checkpoint directory {directory} is missing")
    config = read_json(directory / CONFIG)
    card = read_json(directory / CARD) if (directory / CARD).exists() else {}
    return load_tensors(directory / WEIGHTS), config, card


def load_module_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{source} does not match its config.json: {str(exc)[:300]}") from exc


def _jsonable(o: Any):
    import numpy as np

    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parents[2])
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# Optimiser state <-> safetensors + JSON (resume without pickle).
def flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            name = f"{prefix}.state.{pid}.{key}"
            if torch.is_tensor(val):
                tensors[name] = val
            else:
                scalars[name] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    head = f"{prefix}.state."
    for name, val in tensors.items():
        if name.startswith(head):
            pid, key = name[len(head):].split(".", 1)
            state.setdefault(int(pid), {})[key] = val
    for name, val in meta["scalars"].items():
        pid, key = name[len(head):].split(".", 1)
        state.setdefault(int(pid), {})[key] = val
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def restamp_card(card: dict, metrics: dict, command: str | None) -> dict:
    """A card carrying re-measured metrics: the old ones and who measured them go to
    earlier_metrics, the new ones say which command and commit measured them."""
    import datetime as dt

    card = dict(card)
    card.setdefault("earlier_metrics", []).append(
        {"metrics": card.get("metrics"),
         "evaluation": card.get("evaluation", {"command": card.get("command"), "git_commit": card.get("git_commit")})})
    card["metrics"] = metrics
    card["evaluation"] = {"command": command, "git_commit": git_commit(),
                          "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    return card
