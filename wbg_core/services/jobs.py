"""Background retraining jobs of the app: `wbg train` in a process group of its own.

A job's metadata lives in job.json in its run folder, so any server process (a restarted one
too) can read it; the process that started it polls its Popen, others read the exit marker
the runner writes when the training ends. In public mode (Settings.public) nothing starts.

Progress comes from the JSON lines the Trainer appends per epoch (models.progress_log:
model, epoch of epochs, ETA); train.log is shown as text only.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..files import atomic_write_text
from ..models.progress_log import FILE_NAME as PROGRESS_FILE, read_progress  # torch-free
from ..models.registry import MODEL_NAMES as MODELS  # torch-free

JOB_FILE = "job.json"
EXIT_FILE = "exit.json"  # written by the runner (this module's __main__) when the training ends
CANCELLED_FILE = "CANCELLED.txt"
LOG_FILE = "train.log"

_OWNED: dict[str, subprocess.Popen] = {}  # run folder -> the runner's Popen, for jobs this process started


class JobError(ValueError):
    """A job request that cannot be honoured; the message is meant for the visitor."""


class PublicModeError(PermissionError):
    """Refused because the server runs in public mode (WBG_PUBLIC=1)."""


def refuse_in_public(what: str) -> None:
    """Raise PublicModeError when the server is public: called by every service that changes
    what other visitors get, so a forced call is refused, not only a hidden button."""
    from ..settings import get_settings

    if get_settings().public:
        raise PublicModeError(f"This server is in public mode: {what} is turned off.")


@dataclass
class TrainJob:
    id: str  # the run folder's name
    model: str
    device: str
    out: Path
    pid: int  # the runner's pid, also its process group id
    command: list[str]
    started: str  # ISO time
    args: dict = field(default_factory=dict)
    state: str = "running"  # as recorded: running, or cancelled (job_status gives the live state)
    confirmed: bool = False  # its starter chose it for the whole app

    @property
    def log(self) -> Path:
        return self.out / LOG_FILE

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        return d

    def save(self) -> None:
        _write_json(self.out / JOB_FILE, self.to_dict())


@dataclass
class JobStatus:
    state: str  # running, finished, failed, cancelled
    exit_code: int | None = None
    models: tuple[str, ...] = ()  # models whose card.json the run folder holds
    message: str = ""


def _write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> dict | None:
    """A JSON object from a file; None when it is missing, damaged or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def load_job(directory: Path) -> TrainJob | None:
    """The job of a run folder, or None (no job.json, or one written before jobs had ids)."""
    d = read_json(Path(directory) / JOB_FILE)
    if not d or "id" not in d:
        return None
    try:
        return TrainJob(id=d["id"], model=d["model"], device=d["device"], out=Path(directory), pid=int(d["pid"]),
                        command=list(d["command"]), started=d["started"], args=dict(d.get("args") or {}),
                        state=d.get("state", "running"), confirmed=bool(d.get("confirmed")))
    except (KeyError, TypeError, ValueError):
        return None


def find_job(runs_dir: Path, job_id: str) -> TrainJob:
    """The job with this id in runs_dir; JobError when there is none (ids are folder names only)."""
    if not job_id or not re.fullmatch(r"[\w.-]+", job_id) or job_id.startswith("."):
        raise JobError(f"{job_id!r} is not a training job id")
    job = load_job(Path(runs_dir) / job_id)
    if job is None:
        raise JobError(f"no training job {job_id!r} on this server")
    return job


def pid_alive(pid: int) -> bool:
    """Whether a process of this pid exists (another user's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def job_status(job: TrainJob) -> JobStatus:
    """Live state: from the Popen when this process started the job, else from the exit marker
    and whether the pid is alive."""
    models = tuple(m for m in MODELS if (job.out / m / "card.json").exists())
    recorded = read_json(job.out / JOB_FILE) or {}  # job.json is the truth: another session may have cancelled
    job.state, job.confirmed = recorded.get("state", job.state), bool(recorded.get("confirmed", job.confirmed))
    if job.state == "cancelled":
        return JobStatus("cancelled", None, models, "cancelled; its partial output is not offered as a checkpoint set")
    proc = _OWNED.get(str(job.out))
    if proc is not None:
        ended = proc.poll() is not None
    else:
        ended = (job.out / EXIT_FILE).exists() or not pid_alive(job.pid)
    if not ended:
        return JobStatus("running", None, models)
    code = (read_json(job.out / EXIT_FILE) or {}).get("exit_code")
    if code is None:
        return JobStatus("failed", None, models, "its process ended without recording an exit code (killed?)")
    if code != 0:
        return JobStatus("failed", code, models, f"training exited with code {code}")
    if not models:
        return JobStatus("failed", 0, models, "training ended without writing a checkpoint")
    return JobStatus("finished", 0, models)


def job_running(job: TrainJob) -> bool:
    return job_status(job).state == "running"


def list_jobs(runs_dir: Path) -> list[TrainJob]:
    """Jobs of runs_dir, oldest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    return [j for d in sorted(root.iterdir()) if d.is_dir() and (j := load_job(d)) is not None]


def running_job(runs_dir: Path) -> TrainJob | None:
    return next((j for j in reversed(list_jobs(runs_dir)) if job_running(j)), None)


# ---------------------------------------------------------------- starting

def train_command(model: str, device: str, out: Path, epochs: int | None = None, limit: int | None = None,
                  members: int | None = None, threads: int | None = None) -> list[str]:
    if model not in (*MODELS, "all"):
        raise JobError(f"unknown model {model!r}")
    if device not in ("auto", "cpu", "cuda"):
        raise JobError(f"unknown device {device!r}")
    cmd = [sys.executable, "-m", "wbg_core", "train", model, "--device", device, "--out", str(out),
           "--progress-file", str(Path(out) / PROGRESS_FILE)]
    if epochs:
        cmd += ["--epochs", str(int(epochs))]
    if limit:
        cmd += ["--limit", str(int(limit))]
    if members:
        cmd += ["--members", str(int(members))]
    if threads:
        cmd += ["--threads", str(int(threads))]
    return cmd


def default_epochs(model: str) -> int:
    """The epochs `wbg train` runs when none are given (for "all": the most of the three)."""
    from dataclasses import fields

    from ..models.autoencoder import AEConfig
    from ..models.gan import GANConfig
    from ..models.oracle import OracleConfig

    cfgs = {"autoencoder": AEConfig, "oracle": OracleConfig, "gan": GANConfig}
    picked = MODELS if model == "all" else (model,)
    return max(next(f.default for f in fields(cfgs[m]) if f.name == "epochs") for m in picked)


def data_rows() -> int | None:
    """Rows of the band-gap data (`--limit` absent trains on all of them), from the data registry."""
    from ..settings import get_settings

    reg = read_json(Path(get_settings().data_dir) / "registry.json") or {}
    rows = (reg.get("files") or {}).get("mp_bandgap.csv", {}).get("rows")
    return int(rows) if isinstance(rows, int) else None


def check_limits(model: str, epochs: int | None, limit: int | None) -> None:
    """JobError unless the epochs and rows are within Settings.train_max_epochs and train_max_rows
    (None: the model's default epochs, all rows; both count against the limits)."""
    from ..settings import get_settings

    s = get_settings()
    if epochs is not None and int(epochs) < 1:
        raise JobError("epochs must be at least 1 (or none for the model's default)")
    if limit is not None and int(limit) < 1:
        raise JobError("rows must be at least 1 (or none for all rows)")
    n = int(epochs) if epochs is not None else default_epochs(model)
    if n > s.train_max_epochs:
        asked = f"{n:,} epochs" if epochs is not None else f"the default of {n:,} epochs ({model})"
        raise JobError(f"{asked} asked: this server allows at most {s.train_max_epochs:,} epochs per "
                       "retraining job")
    rows = int(limit) if limit is not None else data_rows()
    if rows is None or rows > s.train_max_rows:
        asked = f"{rows:,} rows" if limit is not None else (f"all {rows:,} rows" if rows else "all rows")
        raise JobError(f"{asked} asked: this server allows at most {s.train_max_rows:,} rows per retraining job")


def new_run_folder(runs_dir: Path) -> Path:
    """A new, empty folder of runs_dir named by the time (the job's id)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    for i in range(1, 100):
        out = Path(runs_dir) / (stamp if i == 1 else f"{stamp}-{i}")
        try:
            out.mkdir()
            return out
        except FileExistsError:
            continue
    raise JobError("could not make a run folder")


def start_job(command: list[str], out: Path, model: str, device: str, args: dict | None = None) -> TrainJob:
    """Run `command` through the runner with run folder `out` (log, job.json, exit marker there).
    No checks: start_training is the service the app calls."""
    log = out / LOG_FILE
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(shlex.quote(c) for c in command) + "\n")
        fh.flush()
        proc = subprocess.Popen([sys.executable, "-m", "wbg_core.services.jobs", str(out), *command], stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    _OWNED[str(out)] = proc
    job = TrainJob(out.name, model, device, out, proc.pid, list(command),
                   dt.datetime.now().isoformat(timespec="seconds"), dict(args or {}))
    job.save()
    return job


def start_training(model: str, device: str, runs_dir: Path, epochs: int | None = None, limit: int | None = None,
                   members: int | None = None, threads: int | None = None) -> TrainJob:
    """Launch `wbg train` in the background into a new folder of runs_dir. Refused in public mode,
    beyond the server's epoch and row limits, and while another job of runs_dir is running."""
    refuse_in_public("retraining")
    kw = dict(epochs=epochs, limit=limit, members=members, threads=threads)
    train_command(model, device, Path(runs_dir), **kw)  # an unknown model or device: refused before the limits
    check_limits(model, epochs, limit)
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(runs_dir) / ".start.lock", "w") as lock:
        # two Start clicks at the same instant: the second waits here, then sees the first job
        fcntl.flock(lock, fcntl.LOCK_EX)
        busy = running_job(runs_dir)
        if busy is not None:
            raise JobError(f"training job {busy.id} is already running on this server; wait for it to end")
        out = new_run_folder(runs_dir)
        return start_job(train_command(model, device, out, **kw), out, model, device,
                         {k: v for k, v in kw.items() if v is not None})


# ---------------------------------------------------------------- cancelling, confirming

def cancel_job(job: TrainJob, grace: float = 5.0) -> JobStatus:
    """Stop a running job: SIGTERM to its process group, SIGKILL after `grace` s; the job is
    recorded as cancelled and its folder marked so its partial checkpoints are never offered."""
    if job_status(job).state != "running":
        raise JobError(f"training job {job.id} is not running")
    job.state = "cancelled"
    job.save()
    (job.out / CANCELLED_FILE).write_text(
        f"Training job {job.id} was cancelled on {dt.datetime.now().isoformat(timespec='seconds')}.\n"
        "The checkpoints in this folder are partial: the app does not offer them as a checkpoint set.\n")
    try:
        os.killpg(job.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    proc = _OWNED.get(str(job.out))
    deadline = time.monotonic() + grace
    if proc is not None:
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    else:
        while pid_alive(job.pid) and time.monotonic() < deadline:
            time.sleep(0.1)  # another process's child: no Popen to wait on
    try:  # whatever of the group is left (the training process itself, if it outlived the runner)
        os.killpg(job.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc is not None:
        proc.wait()
    return job_status(job)


def confirm_job(runs_dir: Path, job_id: str) -> TrainJob:
    """Mark a finished job's checkpoints as chosen by its starter, so the whole app may use them."""
    refuse_in_public("switching checkpoints")
    job = find_job(runs_dir, job_id)
    st = job_status(job)
    if st.state != "finished":
        raise JobError(f"training job {job_id} is {st.state}: only a finished job's checkpoints can be used")
    job.confirmed = True
    job.save()
    return job


def offered(directory: Path) -> bool:
    """Whether a run folder may be offered as a checkpoint set to every visitor: a confirmed
    finished job, or a folder placed there by hand (no job record); never a cancelled one."""
    d = Path(directory)
    if (d / CANCELLED_FILE).exists() or not any((d / m / "card.json").exists() for m in MODELS):
        return False
    job = load_job(d)
    if job is None:  # no job record, or one from before jobs had ids: offered as before
        return True
    return job.confirmed and job_status(job).state == "finished"


# ---------------------------------------------------------------- log

def read_log(path: Path, tail: int = 40, replace: dict[str, str] | None = None) -> str:
    """Last lines of a training log (tqdm redraws split on carriage returns); `replace`
    rewrites substrings (server paths) before they are shown."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    lines = [seg for line in text.split("\n") for seg in line.split("\r") if seg.strip()]
    return "\n".join(lines[-tail:])


def progress_bar(progress: dict | None, state: str) -> tuple[float, str]:
    """(fraction, words) for the page's bar from a progress line: which model, which epoch, how long left."""
    if state == "finished":
        return 1.0, "finished"
    if not progress:
        return 0.0, "starting (loading data; the first epoch has not ended yet)"
    eta = progress.get("eta_s")
    left = f" · about {eta / 60:.0f} min left for it" if isinstance(eta, (int, float)) and eta >= 90 else \
        (f" · about {eta:.0f} s left for it" if isinstance(eta, (int, float)) else "")
    return (min(progress["epoch"] / max(progress["epochs"], 1), 1.0),
            f"{progress.get('label', 'training')}: epoch {progress['epoch']} of {progress['epochs']}{left}")


def job_log(job: TrainJob, tail: int = 40) -> tuple[str, dict | None]:
    """(read_log of the job with its folder shown as runs/<id> and the interpreter as python,
    the last progress line: label, epoch, epochs, elapsed_s, eta_s, losses; None before the first epoch)."""
    text = read_log(job.log, tail, {str(job.out): f"runs/{job.id}", sys.executable: "python"})
    return text, read_progress(job.out / PROGRESS_FILE)


# ---------------------------------------------------------------- the runner

def _run(argv: list[str]) -> int:
    """`python -m wbg_core.services.jobs OUT CMD...`: run CMD, then record its exit code in OUT/exit.json."""
    out, cmd = Path(argv[0]), argv[1:]
    code = subprocess.call(cmd, stdin=subprocess.DEVNULL)
    _write_json(out / EXIT_FILE, {"exit_code": code, "ended": dt.datetime.now().isoformat(timespec="seconds")})
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(_run(sys.argv[1:]))
