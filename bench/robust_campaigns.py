"""Campaigns under SIGKILL and a second runner (issue #16.2), on a real campaign run by the CLI.

A small campaign (40 seeds, batches of 3, 60 candidates, the shipped autoencoder, the oracle as
labeller) is created once and copied for each run:
  - uninterrupted: `python -m wbg_core campaign run DIR --rounds N` in one process (the reference);
  - determinism: the same rounds in two processes (N/2, then the rest); equal to the reference
    means a campaign is a function of its seed and its files, so the comparisons below are exact;
  - kills: the runner is SIGKILLed at random moments (after a random number of its progress
    lines, 4 a round, plus a random delay) and restarted until N rounds are done; rounds lost
    per kill = rounds committed before the kill (progress seen, state.json) minus rounds_done
    after it, read by the validated Campaign.load;
  - concurrency: two runners started together on one directory; one must refuse at once with
    the lock's message and the other complete every round.
"""
from __future__ import annotations

import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_SEEDS = 40
CONFIG = {"batch_size": 3, "n_candidates": 60, "seed": 7}
COMMITTED = re.compile(r"round (\d+): best ")  # printed after state.json is replaced
BUSY = "is being run by another process"


def make_template(directory: Path) -> Path:
    """A fresh campaign, no rounds yet (in this process: the autoencoder encodes the seeds)."""
    from wbg_core.engine.campaign import Campaign, CampaignConfig, pick_seeds
    from wbg_core.models.registry import CheckpointSet

    seeds = pick_seeds(N_SEEDS, seed=3)
    Campaign.new(directory, CampaignConfig(**CONFIG), seeds["formula"], seeds["band_gap"],
                 autoencoder=CheckpointSet.shipped().autoencoder(), labeller=None)  # the CLI runners label
    return Path(directory)


class Runner:
    """`python -m wbg_core campaign run DIR --rounds N`, its progress lines read as they come."""

    def __init__(self, directory: Path, rounds: int):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.setdefault("WBG_TORCH_THREADS", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wbg_core", "campaign", "run", str(directory), "--rounds", str(rounds)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def _drain(self, timeout: float) -> bool:
        """Take the next line (False at the end of the output)."""
        line = self._q.get(timeout=timeout)
        if line is None:
            self._q.put(None)
            return False
        self.lines.append(line)
        return True

    def progress_lines(self) -> int:
        return sum(1 for x in self.lines if x.startswith("["))

    def wait_progress(self, n: int, timeout: float = 300) -> bool:
        """Until n progress lines are out: True, or False when the runner ended first."""
        end = time.monotonic() + timeout
        while self.progress_lines() < n:
            if not self._drain(max(0.01, end - time.monotonic())):
                return False
        return True

    def committed(self) -> int:
        return max([int(m.group(1)) for x in self.lines if (m := COMMITTED.search(x))], default=0)

    def kill(self) -> bool:
        """SIGKILL; False when the runner had already exited."""
        if self.proc.poll() is not None:
            return False
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return self.proc.returncode == -signal.SIGKILL

    def finish(self, timeout: float = 600) -> int:
        rc = self.proc.wait(timeout=timeout)
        while self._drain(10):
            pass
        return rc

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def rounds_on_disk(directory: Path) -> int:
    """rounds_done as state.json says it now (raw: what a kill can have left)."""
    try:
        return int(json.loads((Path(directory) / "state.json").read_text())["rounds_done"])
    except (OSError, ValueError, KeyError):
        return 0


def compare(a: Path, b: Path, rounds: int) -> tuple[bool, str]:
    """(equal, what differs): labelled formulas and gaps of every round, read by the validated load."""
    import numpy as np

    from wbg_core.engine.campaign import Campaign

    ca, cb = Campaign.load(a, autoencoder=None, labeller=None), Campaign.load(b, autoencoder=None, labeller=None)
    for c, d in ((ca, a), (cb, b)):
        if c.state["rounds_done"] != rounds:
            return False, f"{d.name} has {c.state['rounds_done']} rounds, not {rounds}"
    for r, (x, y) in enumerate(zip(ca.rounds, cb.rounds), start=1):
        if x["formula"].tolist() != y["formula"].tolist():
            return False, f"round {r}: formulas {x['formula'].tolist()} vs {y['formula'].tolist()}"
        gx, gy = x["band_gap"].to_numpy(np.float64), y["band_gap"].to_numpy(np.float64)
        if not np.allclose(gx, gy, rtol=0, atol=1e-9):
            return False, f"round {r}: gaps differ by up to {np.abs(gx - gy).max():.3g} eV"
    return True, "equal"


def _kill_cycles(directory: Path, kills: int, rounds: int, rng: random.Random) -> tuple[list[dict], list[str]]:
    from wbg_core.engine.campaign import Campaign, CampaignError

    log, problems = [], []
    while True:
        done = rounds_on_disk(directory)
        left, kills_left = rounds - done, kills - len(log)
        if left <= 0:
            return log, problems
        run = Runner(directory, left)
        if kills_left <= 0:
            if run.finish() != 0:
                problems.append(f"the last runner failed: {run.output[-300:]}")
                return log, problems
            continue
        # spread the kills over the rounds left: about left / (kills_left + 1) rounds per kill
        span = max(2, min(8, round(8 * left / (kills_left + 1))))
        alive = run.wait_progress(rng.randint(1, span))
        if alive:
            time.sleep(rng.uniform(0, 0.25))
        before = max(run.committed(), rounds_on_disk(directory))
        killed = run.kill()
        if not killed:
            if run.finish() != 0:
                problems.append(f"a runner failed: {run.output[-300:]}")
                return log, problems
            continue
        run.finish()  # the lines it wrote before it died
        before = max(before, run.committed())
        try:
            after = Campaign.load(directory, autoencoder=None, labeller=None).state["rounds_done"]
        except CampaignError as exc:
            problems.append(f"after kill {len(log) + 1}: {exc}")
            return log, problems
        last = [x for x in run.lines if x.startswith("[")]
        at = re.sub(r"^\[[ \d.]+%\] ", "", last[-1])[:60] if last else "before the first round"
        log.append({"before": before, "after": after, "lost": max(0, before - after), "killed_after": at})


def _concurrent(directory: Path, rounds: int) -> tuple[bool, str]:
    a, b = Runner(directory, rounds), Runner(directory, rounds)
    rcs = sorted([a.finish(), b.finish()])
    refused = [r for r in (a, b) if BUSY in r.output]
    if rcs != [0, 2] or len(refused) != 1:
        return False, f"exit codes {rcs}, {len(refused)} refused"
    return True, refused[0].output.strip().splitlines()[-1][:200]


def measure(kills: int = 20, rounds: int = 20, seed: int = 0) -> dict:
    from wbg_core.engine.campaign import Campaign

    t0 = time.perf_counter()
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="wbg-robust-") as tmp:
        tmp = Path(tmp)
        template = make_template(tmp / "template")
        copy = lambda name: Path(shutil.copytree(template, tmp / name))  # noqa: E731

        ref = copy("uninterrupted")
        t = time.perf_counter()
        rc = Runner(ref, rounds).finish()
        uninterrupted_s = time.perf_counter() - t
        if rc != 0:
            raise RuntimeError(f"the uninterrupted run failed (exit {rc})")

        split = copy("two_processes")
        for n in (rounds // 2, rounds - rounds // 2):
            if n and Runner(split, n).finish() != 0:
                raise RuntimeError("the resumed reference run failed")
        deterministic, det_detail = compare(ref, split, rounds)

        killed = copy("killed")
        log, problems = _kill_cycles(killed, kills, rounds, rng)
        final_equal, final_detail = (False, "; ".join(problems)) if problems else compare(ref, killed, rounds)

        conc = copy("concurrent")
        refused, conc_detail = _concurrent(conc, rounds)
        conc_equal, conc_eq_detail = compare(ref, conc, rounds)
        hist = Campaign.load(ref, autoencoder=None, labeller=None).history()
    return {
        "kills": len(log),
        "rounds": rounds,
        "max_rounds_lost_per_kill": max((k["lost"] for k in log), default=0),
        "rounds_lost_total": sum(k["lost"] for k in log),
        "final_equal_to_uninterrupted": bool(final_equal),
        "final_detail": final_detail,
        "deterministic": bool(deterministic),
        "deterministic_detail": det_detail,
        "concurrent_refused": bool(refused and conc_equal),
        "concurrent_detail": f"{conc_detail}; final state {conc_eq_detail}",
        "kill_log": log,
        "uninterrupted_s": round(uninterrupted_s, 2),
        "round_s_median": round(float(hist["time_s"].iloc[1:].median()), 3) if len(hist) > 1 else None,
        "seconds": round(time.perf_counter() - t0, 1),
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(measure(*args), indent=2))
