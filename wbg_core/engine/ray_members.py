"""The oracle's members trained as Ray tasks: each member is independent, so they spread over
cores, nodes or GPUs (one GPU per member where the cluster has GPUs).

Each task is `oracle_training.train(..., only_member=k)`, which writes that member's
per-epoch resume state under OUT; a lost worker's task is retried and resumes from its last
epoch. The caller then assembles the ensemble with the same `train` call without a member
(it finds every member finished), exactly as with members trained in separate processes.
OUT must be on a file system every node sees.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

Progress = Callable[[float, str], None] | None


def _member_task(out: str, cfg, device_name: str, limit: int | None, member: int, nonmetal_members: int,
                 init_from: str | None, nonmetal_from: str | None = None) -> dict:
    from ..models.oracle_training import train
    from ..models.training import pick_device
    from ..settings import set_torch_threads

    set_torch_threads(1)
    return train(Path(out), cfg, pick_device(device_name), limit=limit, only_member=member,
                 nonmetal_members=nonmetal_members, init_from=Path(init_from) if init_from else None,
                 nonmetal_from=Path(nonmetal_from) if nonmetal_from else None)


def train_members(out: Path, cfg, device_name: str = "auto", *, limit: int | None = None, nonmetal_members: int = 0,
                  init_from: Path | None = None, nonmetal_from: Path | None = None, address: str | None = None,
                  progress_callback: Progress = None) -> list[dict]:
    """Train every member still to train (the full ones unless init_from gives them, the non-metal
    ones unless nonmetal_from does) as Ray tasks;
    returns each task's summary in member order."""
    from .ray_screening import gather, start_ray

    ray = start_ray(address)
    has_gpu = ray.cluster_resources().get("GPU", 0) > 0
    gpus = 1 if device_name == "cuda" or (device_name == "auto" and has_gpu) else 0
    task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=2)(_member_task)
    first = cfg.members if init_from is not None else 0
    members = range(first, cfg.members + (0 if nonmetal_from is not None else nonmetal_members))
    # non-metal members that start from this run's full members wait for them (a second wave)
    waves = [members]
    if cfg.nonmetal_from_full and first == 0 and nonmetal_members and nonmetal_from is None:
        waves = [range(0, cfg.members), range(cfg.members, members.stop)]
    done: dict = {}
    for wave in waves:
        pending = {task.remote(str(out), cfg, "cuda" if gpus else "cpu", limit, k, nonmetal_members,
                               str(init_from) if init_from is not None else None,
                               str(nonmetal_from) if nonmetal_from is not None else None): k for k in wave}
        done.update(gather(ray, pending, progress_callback, "member", already=len(done)))
    return [done[k] for k in members]
