"""What every trainer shares: device choice, seeding, per-epoch resumable state, progress, cards.

Determinism: each epoch reseeds torch and numpy from (seed, epoch), so a run resumed from
the state of epoch k continues exactly as the uninterrupted run would have.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .checkpoint import (
    atomic_save_tensors,
    atomic_write_text,
    flatten_optimizer,
    load_tensors,
    read_json,
    restore_optimizer,
)

STATE_DIR = "train_state"
DATA_FILE = "mp_bandgap.csv"  # what every model trains on (data/registry.json names its checksum)


def data_checksum() -> str:
    """The training data's sha256 from the registry: part of every resume signature and card."""
    from ..data.registry import load_registry

    return load_registry()["files"][DATA_FILE]["sha256"]


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def seed_epoch(seed: int, epoch: int) -> np.random.Generator:
    torch.manual_seed(seed * 100_003 + epoch)
    return np.random.default_rng([seed, epoch])


def autocast(device: torch.device):
    """bf16 mixed precision on CUDA; plain fp32 on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class TrainState:
    """Per-epoch state on disk: modules, optimisers, schedulers, history, best so far."""

    directory: Path
    signature: dict  # what must match to resume (hyper-parameters, data checksum)
    epoch: int = 0  # epochs completed
    history: list[dict] = field(default_factory=list)
    best: float = float("inf")
    elapsed_s: float = 0.0

    @property
    def path(self) -> Path:
        return self.directory / STATE_DIR

    def save(self, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
             extra_tensors: dict[str, torch.Tensor] | None = None, extra: dict | None = None) -> None:
        tensors: dict[str, torch.Tensor] = {}
        meta = {"signature": self.signature, "epoch": self.epoch, "history": self.history,
                "best": self.best, "elapsed_s": self.elapsed_s, "optimizers": {}, "extra": extra or {}}
        for name, mod in modules.items():
            tensors.update({f"{name}.{k}": v for k, v in mod.state_dict().items()})
        for name, opt in optimizers.items():
            t, m = flatten_optimizer(opt, f"opt_{name}")
            tensors.update(t)
            meta["optimizers"][name] = m
        tensors.update(extra_tensors or {})
        atomic_save_tensors(tensors, self.path / "state.safetensors")
        atomic_write_text(self.path / "state.json", json.dumps(meta, default=float) + "\n")

    def try_resume(self, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict[str, torch.Tensor], dict] | None:
        meta_path = self.path / "state.json"
        if not meta_path.exists():
            return None
        meta = read_json(meta_path)
        if meta["signature"] != self.signature:
            print(f"note: {self.path} is from a different configuration; starting afresh", file=sys.stderr)
            return None
        tensors = load_tensors(self.path / "state.safetensors")
        for name, mod in modules.items():
            head = f"{name}."
            mod.load_state_dict({k[len(head):]: v for k, v in tensors.items() if k.startswith(head)})
        for name, opt in optimizers.items():
            restore_optimizer(opt, f"opt_{name}", tensors, meta["optimizers"][name])
        self.epoch, self.history, self.best, self.elapsed_s = meta["epoch"], meta["history"], meta["best"], meta["elapsed_s"]
        return tensors, meta["extra"]


def progress(total: int, start: int, desc: str) -> Iterator[int]:
    """Epoch iterator with a progress bar and ETA on stderr (tqdm)."""
    from tqdm import tqdm

    bar = tqdm(range(start, total), total=total, initial=start, desc=desc, file=sys.stderr,
               dynamic_ncols=True, mininterval=1.0)
    return bar


def card_base(kind: str, device: torch.device, seed: int, epochs: int, hyper: dict, data_sha: str, command: str | None) -> dict:
    from ..data.splits import FRACTIONS
    from .checkpoint import git_commit

    return {
        "model": kind,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device.type + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f" ({torch.get_num_threads()} threads)"),
        "torch": torch.__version__,
        "seed": seed,
        "epochs": epochs,
        "hyper_parameters": hyper,
        "data": {"file": f"data/{DATA_FILE}", "sha256": data_sha},
        "split": {"seed": seed, "fractions": list(FRACTIONS), "unit": "reduced formula"},
        "git_commit": git_commit(),
        "command": command,
    }


class Timer:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0


def batches(n: int, batch_size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    idx = rng.permutation(n) if rng is not None else np.arange(n)
    for s in range(0, n, batch_size):
        yield idx[s : s + batch_size]

