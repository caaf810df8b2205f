"""Screening on Ray against the local engine, side by side in one run (issue #15).

Each size runs both engines in fresh child processes on the same cores: throughput (samples
per second, model loading included, since a Ray worker loads its models too), peak resident
memory (the local engine's process; for Ray the driver plus every Ray process, sampled every
0.5 s from /proc), and a Ray run killed (SIGKILL of the driver and its Ray) at about half its
shards, then restarted with the same command: total time against an uninterrupted run, and the
same result. Sizes: 10^6 and 10^7 (about an hour on 2 cores; docs/scale.md says what was run).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (1_000_000, 10_000_000)  # the two sizes; `run(sizes=...)` measures others
WINDOW = ("--min-gap", "5")
THROUGHPUT_TARGET = 0.8  # Ray's samples/s at least this fraction of the local engine's
MEMORY_TARGET_GB = 4.0
RESTART_TARGET = 1.1
FLAT_TARGET = 1.15  # Ray's peak at the largest size at most this times its peak at the smallest


def _role(cmd: bytes, mine: bool) -> str | None:
    if mine:
        return "driver"
    for key, role in ((b"ray::_shard_task", "shard workers"), (b"ray::_Labeller", "labelling actors"),
                      (b"ray::", "idle Ray workers"), (b"raylet", "Ray system"), (b"gcs_server", "Ray system"),
                      (b"ray/_private", "Ray system")):
        if key in cmd:
            return role
    return None


def _rss_by_role(root_pid: int) -> dict[str, float]:
    """Resident memory (GB) of a process tree plus every Ray process on this machine, by role."""
    out: dict[str, float] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        role = _role(cmd, int(pid) == root_pid or ppid == root_pid)
        if role is not None:
            rss = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), "0")
            out[role] = out.get(role, 0.0) + int(rss) * 1024 / 2 ** 30
    return out


def _screen(n: int, engine: str, run_dir: Path | None, kill_at: float | None = None) -> dict:
    cmd = [sys.executable, "-m", "wbg_core", "screen", *WINDOW, "--pool", str(n), "--top", "1000", "--json",
           "--engine", engine]
    if run_dir is not None:
        cmd += ["--run-dir", str(run_dir)]
    t0 = time.perf_counter()
    # stdout to a file, not a pipe: a pipe nobody reads until the end blocks the child once its JSON
    # outgrows the pipe's buffer (64 KB), and the run hangs in json.dump (seen at 10^7)
    out_file = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=out_file, stderr=subprocess.DEVNULL, start_new_session=True)
    peak, roles = 0.0, {}
    while proc.poll() is None:
        by_role = _rss_by_role(proc.pid)
        peak = max(peak, sum(by_role.values()))
        roles = {k: max(roles.get(k, 0.0), by_role.get(k, 0.0)) for k in {*roles, *by_role}}
        if kill_at is not None and run_dir is not None:
            done = len(list((run_dir / "shards").glob("*.json"))) if (run_dir / "shards").exists() else 0
            if done >= kill_at:
                os.killpg(proc.pid, signal.SIGKILL)
                subprocess.run([str(Path(sys.executable).parent / "ray"), "stop", "--force"], capture_output=True)
                proc.wait()
                return {"killed_after_s": time.perf_counter() - t0, "shards_done": done}
        time.sleep(0.5)
    out_file.seek(0)
    out = out_file.read()
    if proc.returncode != 0:
        raise RuntimeError(f"wbg screen --engine {engine} failed ({proc.returncode})")
    rows = json.loads(out)["candidates"]
    return {"seconds": time.perf_counter() - t0, "peak_gb": peak, "peak_gb_by_role": roles,
            "formulas": [r["formula"] for r in rows]}


def run(repeats: int = 1, sizes: tuple[int, ...] = SIZES) -> dict:
    rows, ok = [], True
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            local = _screen(n, "local", None)
            ray_run = _screen(n, "ray", Path(tmp) / "whole")
            shards = -(-n // 65_536)
            killed = _screen(n, "ray", Path(tmp) / "killed", kill_at=shards / 2)
            resumed = _screen(n, "ray", Path(tmp) / "killed")
        restart = (killed["killed_after_s"] + resumed["seconds"]) / ray_run["seconds"]
        row = {"samples": n, "local_s": local["seconds"], "ray_s": ray_run["seconds"],
               "throughput_ratio": local["seconds"] / ray_run["seconds"], "local_peak_gb": local["peak_gb"],
               "ray_peak_gb": ray_run["peak_gb"], "restart_ratio": restart,
               "same_result": ray_run["formulas"] == local["formulas"] == resumed["formulas"],
               "killed_after_s": killed["killed_after_s"], "shards_done_at_kill": killed["shards_done"]}
        ok &= (row["throughput_ratio"] >= THROUGHPUT_TARGET and row["ray_peak_gb"] < MEMORY_TARGET_GB
               and restart <= RESTART_TARGET and row["same_result"])
        rows.append(row)
    flat = rows[-1]["ray_peak_gb"] / rows[0]["ray_peak_gb"]
    ok &= flat <= FLAT_TARGET
    table = "".join(
        f"| {r['samples']:,} | {r['local_s']:.0f} s | {r['ray_s']:.0f} s | {r['throughput_ratio']:.2f} | "
        f"{r['local_peak_gb']:.2f} GB | {r['ray_peak_gb']:.2f} GB | {r['restart_ratio']:.2f} "
        f"(killed at {r['shards_done_at_kill']} shards) | {'yes' if r['same_result'] else 'NO'} |\n" for r in rows)
    return {
        "title": "Screening on Ray (local Ray, all cores) vs the local engine, same run",
        "target": f"Ray throughput >= {THROUGHPUT_TARGET}x local; Ray peak < {MEMORY_TARGET_GB} GB, flat with size "
                  f"(largest <= {FLAT_TARGET}x smallest); "
                  f"kill at half + restart <= {RESTART_TARGET}x uninterrupted; same top-1,000",
        "passed": bool(ok), "rows": rows, "ray_peak_growth": round(flat, 3),
        "markdown": "| samples | local | Ray | throughput Ray/local | local peak | Ray peak (all processes) | "
                    "kill + restart / whole | same top 1,000 |\n|---|---|---|---|---|---|---|---|\n" + table
                    + f"\nRay's peak at the largest size is {flat:.2f}x its peak at the smallest. One run per size "
                      "(each is minutes); model loading counted for both engines.\n",
    }


def memory_run(sizes: tuple[int, ...] = SIZES) -> dict:
    """Ray alone at each size (no local engine, no kill): the peak of all Ray processes together
    and of each role, to see whether it is flat with the pool and which process grows if not."""
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            r = _screen(n, "ray", Path(tmp) / "whole")
        rows.append({"samples": n, "ray_s": r["seconds"], "ray_peak_gb": r["peak_gb"],
                     "peak_gb_by_role": {k: round(v, 3) for k, v in sorted(r["peak_gb_by_role"].items())}})
    return {"rows": rows, "ray_peak_growth": round(rows[-1]["ray_peak_gb"] / rows[0]["ray_peak_gb"], 3)}
