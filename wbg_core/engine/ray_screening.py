"""Screening beyond one process: the same funnel as screening.screen, as Ray tasks over shards.

Why this shape: at 10^8-10^9 samples the unique set no longer fits one process, and a run of
hours must survive a killed driver or a lost worker. So the pool is cut into shards of
`cfg.chunk` samples, each seeded by (seed, shard) exactly as the local engine seeds its chunks,
so the result does not depend on how many workers there are:

1. one Ray task per shard: sample, decode, reduce, filter, de-duplicate within the shard, then
   split the rows by a hash of the reduced formula into P partitions; the rows go to disk
   (`shards/NNNNNN.npz`, sorted by partition) beside a manifest line (rows, sha256).
2. one actor call per partition, in a pool of actors that load the band-gap model once each:
   read that partition's rows from every shard, de-duplicate (identical formulas always share a
   partition, so no process ever holds the global set), then the local engine's own labelling
   (screening.label_pool: novelty, the model, P(in window), the compound rule); the passing
   rows go to `parts/NNNN.parquet` with a manifest line.
3. the driver reads the passing rows only, orders them by their first appearance in the sample
   stream (the local engine's order) and ranks them with screening.rank_candidates; the top rows
   also go to `top.csv`.

Memory per process is one shard or one partition, whatever the pool; a shard worker is replaced
after SHARDS_PER_WORKER shards, so what it caches cannot grow with the pool either. A restart with the same
command skips every shard and partition whose manifest line matches its file; a file whose rows
or checksum disagree is computed again. Ray retries a task whose worker died. Disk holds the
shards (about 1-2 MB per 65,536 samples) until the run is deleted.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..files import atomic_write_bytes, atomic_write_text
from .screening import (ScreenConfig, ScreenError, ScreenResult, first_occurrences, generate_chunk, label_pool,
                        rank_candidates, written)

RUN_FILE = "run.json"
SHARD_DIR, PART_DIR = "shards", "parts"
TOP_FILE = "top.csv"
# samples per labelling partition, which bound the unique rows one labelling call holds: small
# enough that two actors are busy from 10^6 samples on and hold the same amount whatever the
# pool (2,000,000 let the peak grow from 2.5 GB at 10^6 to 3.3 GB at 10^7; docs/scale.md)
ROWS_PER_PARTITION = 500_000
# shards one worker process computes before Ray replaces it with a fresh one: a long-lived
# worker's caches (formula parses, compound verdicts) and heap grew with the pool (1.68 -> 2.14 GB
# for two workers from 10^6 to 10^7 samples, bench scale_memory), so a worker never does more
# than it does at 10^6 (16 shards on 2 cores); a fresh worker costs its imports and the
# generator's load, a few seconds
SHARDS_PER_WORKER = 8
_HASH = np.random.default_rng(20211).integers(1, 2 ** 61, size=256, dtype=np.int64).astype(np.uint64)

Progress = Callable[[float, str], None] | None


class RayEngineError(ScreenError):
    """The Ray engine cannot run as asked; the message says why."""


def partition_of(rows: np.ndarray, partitions: int) -> np.ndarray:
    """A partition per count row from its reduced formula alone (a fixed random projection)."""
    h = rows.astype(np.uint64) @ _HASH[: rows.shape[1]]
    h ^= h >> np.uint64(29)
    return (h % np.uint64(partitions)).astype(np.int64)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npz_bytes(**arrays) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _done(path: Path, manifest: dict | None) -> bool:
    """The file is there and is what its manifest line says (else it is computed again)."""
    if not manifest or not path.is_file():
        return False
    return _sha(path.read_bytes()) == manifest.get("sha256")


def _finished(folder: Path, name: str, n: int) -> tuple[dict[int, dict], list[int]]:
    """({k: manifest} of the files 0..n-1 already done, [k still to compute]): what a restart reuses."""
    done, todo = {}, []
    for k in range(n):
        path = folder / name.format(k)
        m = _read_manifest(path.with_suffix(".json"))
        if _done(path, m):
            done[k] = m
        else:
            todo.append(k)
    return done, todo


def _read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _shard_task(models_dir: str, cfg_dict: dict, shard: int, samples: int, partitions: int, out: str) -> dict:
    """Stage 1 for one shard (runs in a Ray worker; the generator loads once per process)."""
    from ..models.registry import CheckpointSet
    from ..settings import set_torch_threads

    set_torch_threads(1)
    cfg = ScreenConfig(**cfg_dict)
    gan = CheckpointSet(Path(models_dir)).generator(cfg.generator)
    rows, counts = generate_chunk(gan, cfg, cfg.seed, shard, samples)
    part = partition_of(rows, partitions)
    order = np.argsort(part, kind="stable")  # by partition, first appearance kept within each
    first = shard * cfg.chunk + order  # position in the sample stream: the local engine's order
    data = _npz_bytes(rows=rows[order], first=first.astype(np.int64),
                      offsets=np.searchsorted(part[order], np.arange(partitions + 1)))
    path = Path(out) / SHARD_DIR / f"{shard:06d}.npz"
    atomic_write_bytes(path, data)
    manifest = {"shard": shard, "rows": int(len(rows)), "sha256": _sha(data), **counts}
    atomic_write_text(path.with_suffix(".json"), json.dumps(manifest))
    return manifest


class _Labeller:
    """Stage 2: one partition at a time, with the band-gap model loaded once per actor."""

    def __init__(self, models_dir: str):
        from ..models.registry import CheckpointSet
        from ..settings import set_torch_threads

        set_torch_threads(1)
        self.model = CheckpointSet(Path(models_dir)).oracle()

    def label(self, cfg_dict: dict, partition: int, shards: list[int], out: str) -> dict:
        cfg = ScreenConfig(**cfg_dict)
        rows, first = [], []
        for k in shards:
            with np.load(Path(out) / SHARD_DIR / f"{k:06d}.npz") as z:
                a, b = z["offsets"][partition], z["offsets"][partition + 1]
                rows.append(z["rows"][a:b])
                first.append(z["first"][a:b])
        rows = np.concatenate(rows) if rows else np.zeros((0, 87), np.int8)
        first = np.concatenate(first) if first else np.zeros(0, np.int64)
        order = np.argsort(first, kind="stable")
        rows, first = rows[order], first[order]
        idx = first_occurrences(rows)  # each formula's first appearance, in stream order
        pool, keep_first = rows[idx], first[idx]
        funnel: dict[str, int] = {}
        df = label_pool(pool, self.model, cfg, funnel=funnel)
        df = df.assign(first=keep_first[df.index.to_numpy()]).reset_index(drop=True)
        path = Path(out) / PART_DIR / f"{partition:04d}.parquet"
        import io

        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(path, buf.getvalue())
        manifest = {"partition": partition, "rows": int(len(df)), "sha256": _sha(buf.getvalue()),
                    "unique": int(len(pool)), **funnel}
        atomic_write_text(path.with_suffix(".json"), json.dumps(manifest))
        return manifest


def check_address(address: str, timeout: float = 3.0) -> None:
    """A cluster address that does not answer is an error within seconds, not a hang in ray.init."""
    if address == "auto":  # ray looks for a cluster started on this machine
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not port.isdigit():
        raise RayEngineError(f"--address {address!r}: give host:port of the head node (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise RayEngineError(f"cannot reach the Ray cluster at {address} ({exc}); start it with "
                             "`ray start --head`, or leave out --address to run a local Ray") from None


def start_ray(address: str | None = None, num_cpus: int | None = None):
    """Join the cluster at `address` (or RAY_ADDRESS), else start a local Ray on this machine's cores."""
    import ray

    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        check_address(address)
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 object_store_memory=256 * 2 ** 20)
    return ray


def screen_ray(cfg: ScreenConfig, models_dir: Path, out: Path, *, address: str | None = None,
               num_cpus: int | None = None, progress_callback: Progress = None,
               rows_per_partition: int = ROWS_PER_PARTITION) -> ScreenResult:
    """screen() on Ray: the same candidates in the same order for the same cfg (chunk = shard size),
    written under `out` and resumable there; a ScreenResult as screen()'s, with engine 'ray' and out."""
    cfg.validate()
    cb = progress_callback or (lambda f, m: None)
    out = Path(out)
    n_shards = -(-cfg.pool // cfg.chunk)
    partitions = max(1, -(-cfg.pool // rows_per_partition))  # samples bound the unique rows
    run = {"config": asdict(cfg), "models_dir": str(Path(models_dir).resolve()), "partitions": partitions}
    prev = _read_manifest(out / RUN_FILE)
    if prev is not None and prev != json.loads(json.dumps(run)):
        raise RayEngineError(f"{out} holds a run with other settings ({RUN_FILE}); give a new --out "
                             "or the same command as before to resume it")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / RUN_FILE, json.dumps(run, indent=2))
    t_all = time.perf_counter()
    ray = start_ray(address, num_cpus)
    cfg_dict = asdict(cfg)
    stage: dict[str, float] = {}

    t = time.perf_counter()
    manifests, todo = _finished(out / SHARD_DIR, "{:06d}.npz", n_shards)
    task = ray.remote(num_cpus=1, max_retries=3, max_calls=SHARDS_PER_WORKER)(_shard_task)
    pending = {task.remote(str(models_dir), cfg_dict, k, min(cfg.chunk, cfg.pool - k * cfg.chunk), partitions,
                           str(out)): k for k in todo}
    manifests.update(gather(ray, pending, lambda f, m: cb(0.6 * f, m), "shard"))
    print(f"shards: {len(todo)} computed, {n_shards - len(todo)} reused", file=sys.stderr)
    stage["generate_shards"] = time.perf_counter() - t

    t = time.perf_counter()
    parts, todo = _finished(out / PART_DIR, "{:04d}.parquet", partitions)
    if todo:
        from ray.util import ActorPool

        cpus = int(ray.cluster_resources().get("CPU", 1))
        actor = ray.remote(num_cpus=1, max_restarts=2, max_task_retries=2)(_Labeller)
        pool = ActorPool([actor.remote(str(models_dir)) for _ in range(max(1, min(cpus, len(todo))))])
        shards = list(range(n_shards))
        for m in pool.map_unordered(lambda a, p: a.label.remote(cfg_dict, p, shards, str(out)), todo):
            parts[m["partition"]] = m
            cb(0.6 + 0.35 * len(parts) / partitions, f"labelled partition {len(parts)} of {partitions}")
    stage["label_partitions"] = time.perf_counter() - t

    t = time.perf_counter()
    frames = [pd.read_parquet(out / PART_DIR / f"{p:04d}.parquet") for p in range(partitions)]
    df = pd.concat(frames, ignore_index=True).sort_values("first", kind="stable")
    df = rank_candidates(df.drop(columns="first").reset_index(drop=True), cfg.window)
    if cfg.top:
        df = df.head(cfg.top)
    df = df.reset_index(drop=True)
    atomic_write_text(out / TOP_FILE, written(df).to_csv(index=False))
    stage["rank"] = time.perf_counter() - t
    stage["total"] = time.perf_counter() - t_all
    keys = ("generated", "decoded_valid", "compound_readings", "structure_filter")
    funnel = {k: int(sum(m[k] for m in manifests.values())) for k in keys}
    funnel["unique"] = int(sum(m["unique"] for m in parts.values()))
    for k in ("after_novelty", "in_window", "passed"):
        funnel[k] = int(sum(m.get(k, 0) for m in parts.values()))
    cb(1.0, f"{len(df):,} candidates pass")
    return ScreenResult(df, funnel, {k: round(v, 3) for k, v in stage.items()}, asdict(cfg), "Oracle",
                        engine="ray", out=str(out))


def gather(ray, pending: dict, progress_callback: Progress = None, what: str = "tasks",
           on_result: Callable[[object, object], None] | None = None, already: int = 0) -> dict:
    """{key: result} of Ray tasks given as {ref: key}, taken as they finish, with progress and an
    ETA after each; the one wait loop of the shards, the experiments' repeats and the members.
    on_result(key, result) runs as each one arrives (a journal keeps it before the next wait);
    `already`: results kept from an earlier run, counted in the progress but not in the ETA."""
    cb = progress_callback or (lambda f, m: None)
    done: dict = {}
    total, t0 = len(pending) + already, time.perf_counter()
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            key = pending.pop(ref)
            done[key] = ray.get(ref)
            if on_result is not None:
                on_result(key, done[key])
            eta = (time.perf_counter() - t0) / len(done) * len(pending)
            n = len(done) + already
            cb(n / total, f"{what}: {key} done, {n} of {total} · ETA {eta:.0f} s")
    return done
