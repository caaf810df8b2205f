"""Band-gap window screenings too large for a page run (pools above 200,000): a background process.

Why: 1,000,000 samples take about 80 s on 2 cores and 5,000,000 about 7 min. Run inside the
page, the session would be blocked for that long and a closed tab would lose the work. The
screening runs in `python -m wbg_core.services.window_jobs RUN_DIR` (subprocess.Popen, a
session of its own) and writes its progress and result into its run folder.

A run folder is named by its inputs (the query and the model folders), so the same window
opens the same run: a shared link to a big window finds the running or finished screening, and
so does a restarted server. One large screening runs at a time per server (they would share the
same cores); a second is refused with a message naming the one that runs.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_write_text
from .jobs import pid_alive, read_json
from .window_query import WindowQuery

BACKGROUND_POOL = 200_000  # pools above this run in the background
REQUEST_FILE, PROGRESS_FILE, DONE_FILE, LOG_FILE = "request.json", "progress.json", "done.json", "screen.log"
RESULT_FILES = ("candidates.parquet", "pool.parquet", "funnel.json")


class WindowJobError(ValueError):
    """A background screening that cannot start or whose result cannot be read; the message is for the visitor."""


@dataclass
class WindowJobState:
    state: str  # running, finished, failed
    fraction: float = 0.0
    message: str = ""
    eta_s: float | None = None


def runs_root() -> Path:
    from ..settings import get_settings

    return Path(get_settings().runs_dir) / "window"


def job_dir(query: WindowQuery, generator_dir: str, oracle_dir: str, campaign: tuple | None = None,
            root: Path | None = None) -> Path:
    """The run folder of a query with these models (a campaign's folder and round for its forest)."""
    key = json.dumps({"query": query.to_query(), "generator": str(generator_dir), "oracle": str(oracle_dir),
                      "campaign": list(campaign) if campaign else None}, sort_keys=True)
    return Path(root or runs_root()) / hashlib.sha256(key.encode()).hexdigest()[:16]


def status(run: Path) -> WindowJobState:
    """Live state from the folder alone, so any server process (a restarted one too) reads it."""
    run = Path(run)
    done = read_json(run / DONE_FILE)
    if done is not None:
        if done.get("error"):
            return WindowJobState("failed", 0.0, done["error"])
        if all((run / f).exists() for f in RESULT_FILES):
            return WindowJobState("finished", 1.0, f"finished in {done.get('seconds', 0):.0f} s")
        return WindowJobState("failed", 0.0, "the screening ended without its result files")
    req = read_json(run / REQUEST_FILE)
    if req is None:
        return WindowJobState("failed", 0.0, "no screening was started in this folder")
    if not pid_alive(int(req.get("pid", -1))):
        return WindowJobState("failed", 0.0, "the screening process ended without a result (killed?); start it again")
    prog = read_json(run / PROGRESS_FILE) or {}
    return WindowJobState("running", float(prog.get("fraction", 0.0)), str(prog.get("message", "starting")),
                          prog.get("eta_s"))


def running_jobs(root: Path | None = None) -> list[Path]:
    root = Path(root or runs_root())
    if not root.is_dir():
        return []
    return [d for d in sorted(root.iterdir()) if d.is_dir() and status(d).state == "running"]


def start(query: WindowQuery, *, generator_dir: str, oracle_dir: str, campaign: tuple | None = None,
          root: Path | None = None) -> Path:
    """The run folder of this screening, started now unless it is running or finished already.

    campaign: (campaign folder, rounds done) when the screening model is the campaign's forest.
    A failed run of the same inputs is started again. Another running screening: WindowJobError.
    """
    run = job_dir(query, generator_dir, oracle_dir, campaign, root)
    state = status(run).state if run.exists() else None
    if state in ("running", "finished"):
        return run
    busy = [d for d in running_jobs(root) if d != run]
    if busy:
        req = read_json(busy[0] / REQUEST_FILE) or {}
        raise WindowJobError(f"another large screening ({req.get('pool', '?'):,} samples, started "
                             f"{req.get('started', '?')}) is running on this server; wait for it to end")
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    request = {"query": query.to_query(), "pool": query.pool, "generator_dir": str(generator_dir),
               "oracle_dir": str(oracle_dir), "campaign": list(campaign) if campaign else None,
               "started": dt.datetime.now().isoformat(timespec="seconds")}
    atomic_write_text(run / REQUEST_FILE, json.dumps(request, indent=2))
    with open(run / LOG_FILE, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "wbg_core.services.window_jobs", str(run)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    request["pid"] = proc.pid
    atomic_write_text(run / REQUEST_FILE, json.dumps(request, indent=2))
    return run


def load_result(run: Path):
    """(candidates, pool, funnel) of a finished run; WindowJobError naming a damaged file."""
    import pandas as pd

    run = Path(run)
    try:
        cand = pd.read_parquet(run / "candidates.parquet")
        pool = pd.read_parquet(run / "pool.parquet")
        funnel = json.loads((run / "funnel.json").read_text())
    except Exception as exc:  # noqa: BLE001 - pyarrow and json raise several kinds for a damaged file
        raise WindowJobError(f"the result in {run.name} cannot be read ({type(exc).__name__}: {exc}); "
                             "screen again to recompute it") from exc
    return cand, pool, funnel


def _run(run: Path) -> int:
    """The background process: load the models named in request.json, screen, write the result."""
    from ..models.errors import ModelError
    from ..settings import set_torch_threads
    from .window import screen_query, window_model

    req = read_json(run / REQUEST_FILE) or {}
    t0 = time.perf_counter()

    def progress(fraction: float, message: str) -> None:
        elapsed = time.perf_counter() - t0
        fraction = min(max(float(fraction), 0.0), 1.0)
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.05 else None
        atomic_write_text(run / PROGRESS_FILE, json.dumps({"fraction": fraction, "message": message,
                                                           "elapsed_s": round(elapsed, 1), "eta_s": eta}))

    try:
        q, problems = WindowQuery.from_query(req.get("query") or {})
        if problems:
            raise WindowJobError("; ".join(problems))
        set_torch_threads()
        progress(0.0, "loading the models")
        if q.generator == "gan":
            from ..models.gan import load as load_gan

            gen = load_gan(Path(req["generator_dir"]))
        else:
            from ..models.autoencoder import LatentSampler

            gen = LatentSampler.shipped(req["generator_dir"])
        oracle = None
        if q.model == "oracle":
            from ..models.oracle import load as load_oracle

            oracle = load_oracle(Path(req["oracle_dir"]))
        campaign_dir = (req.get("campaign") or [None])[0]
        model = window_model(q, oracle=oracle, campaign_dir=campaign_dir, progress=progress)
        cand, pool_df, funnel = screen_query(gen, model, q, progress)
        cand.to_parquet(run / "candidates.parquet", index=False)
        pool_df.to_parquet(run / "pool.parquet", index=False)
        atomic_write_text(run / "funnel.json", json.dumps(funnel))
        atomic_write_text(run / DONE_FILE, json.dumps({"seconds": round(time.perf_counter() - t0, 1)}))
        return 0
    except BaseException as exc:  # the page must learn that it failed, whatever the failure
        atomic_write_text(run / DONE_FILE, json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        if isinstance(exc, (ValueError, ModelError, OSError)):  # ScreenError, a bad campaign, a missing checkpoint
            return 1
        raise  # anything else also goes to screen.log with its traceback


if __name__ == "__main__":
    sys.exit(_run(Path(sys.argv[1])))
