"""Checkpoints: weights as safetensors (never pickle), config.json to rebuild, card.json to judge.

A checkpoint directory holds `model.safetensors`, `config.json` (class name and constructor
arguments: the model is rebuilt from the directory alone) and `card.json` (data checksum,
split seed, hyper-parameters, epochs, wall time, device, metrics, git commit, command line,
and `weights_sha256`, the sha256 of the weights file).
Training state for resuming after a kill lives in `<dir>/train_state/` in the same formats.

Why the checks on load: garbled weights used to load and predict blanks or wrong numbers, and a
hostile config.json grew the process by gigabytes before failing. Now the config is validated
(config_bounds.py) before the weights are read, the weights are checked against the card's
sha256 (Settings.verify_checksums), and the model is built on the meta device first, so a
config that does not describe these weights fails before any memory is allocated.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..data.registry import sha256_of
from .config_bounds import validate_config, validate_weights_sha256
from ..files import atomic_write_text  # noqa: F401  (re-exported: the trainers write cards with it)
from .errors import ModelError  # noqa: F401  (re-exported: models raise it from here)

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "card.json"
WEIGHTS_SHA256 = "weights_sha256"  # card.json: {file name: sha256}
log = logging.getLogger(__name__)


def verify_file(path: Path, expected: str | None, recorded_in: Path | str) -> None:
    """The one check of a model file against the sha256 recorded for it (the weights' in
    card.json, the oracle head's in config.json); skipped when Settings.verify_checksums is off."""
    from ..settings import get_settings

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint file {path} is missing")
    if not get_settings().verify_checksums:
        return
    digest = sha256_of(path)
    if digest != expected:
        recorded = f"the {expected[:12]}... that {recorded_in} records" if expected else f"{recorded_in}, which records none"
        raise ModelError(f"{path} is corrupt or was changed: its sha256 {digest[:12]}... does not match {recorded}")


def require_finite(values: np.ndarray, directory: Path | None, model: str) -> np.ndarray:
    """A model's outputs (rows first), or ModelError naming its weights: a NaN would otherwise
    print as a blank or decode to nothing."""
    finite = np.isfinite(values).reshape(len(values), -1).all(axis=1) if np.size(values) else np.ones(0, bool)
    if not finite.all():
        source = Path(directory) / WEIGHTS if directory is not None else f"the {model}"
        raise ModelError(f"non-finite outputs for {int((~finite).sum())} of {len(values)} rows from {source}: "
                         "the weights are damaged")
    return values


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
    from ..files import read_json_object

    return read_json_object(path, ModelError, "checkpoint file")


def save_checkpoint(directory: Path, tensors: dict[str, torch.Tensor], config: dict, card: dict) -> None:
    """Writes the three files; `card` gains weights_sha256 (the caller's dict too, so it matches the file)."""
    directory = Path(directory)
    atomic_save_tensors(tensors, directory / WEIGHTS)
    card[WEIGHTS_SHA256] = {WEIGHTS: sha256_of(directory / WEIGHTS)}
    atomic_write_text(directory / CONFIG, json.dumps(config, indent=2) + "\n")
    atomic_write_text(directory / CARD, json.dumps(card, indent=2, default=_jsonable) + "\n")


def stamp_weights_sha256(directory: Path) -> dict[str, str]:
    """Record the sha256 of a checkpoint's weights in its card, as it is now (for checkpoints
    saved before cards carried it; the weights are only read)."""
    directory = Path(directory)
    card = read_json(directory / CARD)
    card[WEIGHTS_SHA256] = {WEIGHTS: sha256_of(directory / WEIGHTS)}
    atomic_write_text(directory / CARD, json.dumps(card, indent=2, default=_jsonable) + "\n")
    return card[WEIGHTS_SHA256]


def load_checkpoint(directory: Path, kind: str | None = None) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """(weights, config, card). `kind` ('oracle', 'autoencoder', 'gan') validates config.json
    first; the weights are checked against the card's sha256 before they are read (a card
    without one, from before checksums, loads with a logged warning)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelError(f"checkpoint directory {directory} is missing")
    config = read_json(directory / CONFIG)
    if kind is not None:
        validate_config(kind, config, directory / CONFIG)
    card = read_json(directory / CARD) if (directory / CARD).exists() else {}
    sums = validate_weights_sha256(card, directory / CARD)
    if sums is None:
        if (directory / WEIGHTS).exists():
            log.warning("%s has no %s: %s is loaded unverified (a checkpoint from before checksums; "
                        "record them with checkpoint.stamp_weights_sha256)", directory / CARD, WEIGHTS_SHA256, WEIGHTS)
    else:
        verify_file(directory / WEIGHTS, sums.get(WEIGHTS), directory / CARD)
    tensors = load_tensors(directory / WEIGHTS)
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ModelError(f"checkpoint file {directory / WEIGHTS} is corrupt: tensor {name} holds non-finite values")
    return tensors, config, card


def build_module(factory, tensors: dict[str, torch.Tensor], source: Path) -> torch.nn.Module:
    """factory() loaded with `tensors`; built on the meta device, so weights that its config does
    not describe fail before any memory is allocated, and the loaded tensors become the module's
    own (assign=True): no random initialisation of weights that are overwritten at once, which was
    a tenth of a second of every cold start (12 modules)."""
    with torch.device("meta"):
        module = factory()
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in tensors.items()}
    if want != have:
        diff = sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have[k]]
        k = diff[0]
        raise ModelError(f"{source} does not match its config.json: {len(diff)} tensors differ, e.g. {k} "
                         f"(config: {want.get(k, 'absent')}, file: {have.get(k, 'absent')})")
    load_module_state(module, tensors, source, assign=True)
    if any(t.is_meta for t in (*module.parameters(), *module.buffers())):  # state outside the state dict
        module = factory()
        load_module_state(module, tensors, source)
    return module


def load_module_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path,
                      assign: bool = False) -> None:
    try:
        module.load_state_dict(tensors, strict=True, assign=assign)
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
