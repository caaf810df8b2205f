"""Retraining jobs and checkpoint switching, server-side: public mode, limits, cancel, confirmation.

Jobs here run small stand-in commands through the real runner (wbg_core.services.jobs.start_job), so
no model is trained: a sleeper to cancel, a writer of a card.json that "finishes"."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from wbg_core.services import jobs
from wbg_core.services.jobs import JobError, PublicModeError
from wbg_core.services.status import active_set, checkpoint_sets, choose_set, switch_set
from wbg_core.settings import get_settings

SLEEPER = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)"
FINISHER = ("import pathlib, sys; d = pathlib.Path(sys.argv[1]) / 'autoencoder'; d.mkdir(); "
            "(d / 'card.json').write_text('{}'); print('1/1 [')")


@pytest.fixture
def env(monkeypatch):
    """Set WBG_* variables for one test (settings re-read before and after)."""
    def set_(**values):
        for k, v in values.items():
            monkeypatch.setenv(f"WBG_{k.upper()}", str(v))
        get_settings.cache_clear()

    get_settings.cache_clear()
    yield set_
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def runs(tmp_path):
    started: list[jobs.TrainJob] = []
    yield tmp_path / "runs", started
    for job in started:  # nothing left running whatever a test asserted
        try:
            os.killpg(job.pid, 9)
        except ProcessLookupError:
            pass
        proc = jobs._OWNED.pop(str(job.out), None)
        if proc is not None:
            proc.wait()


def _start(runs, code: str, *args: str, model: str = "autoencoder") -> jobs.TrainJob:
    root, started = runs
    out = jobs.new_run_folder(root)
    job = jobs.start_job([sys.executable, "-c", code, *[a.replace("{out}", str(out)) for a in args]],
                         out, model, "cpu")
    started.append(job)
    return job


def _wait_ended(job: jobs.TrainJob, timeout: float = 60) -> jobs.JobStatus:
    t0 = time.time()
    while (s := jobs.job_status(job)).state == "running" and time.time() - t0 < timeout:
        time.sleep(0.1)
    return s


def _wait_file(path: Path, timeout: float = 30) -> str:
    t0 = time.time()
    while not path.exists() or not path.read_text():
        assert time.time() - t0 < timeout, f"{path} never written"
        time.sleep(0.05)
    return path.read_text()


def _dead(pid: int, timeout: float = 5) -> bool:
    """Whether the process is gone, or a zombie, within `timeout` s (a killed process takes a moment)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":  # reaped by nobody, but not running
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_public_mode_refuses_a_job_start(env, runs):
    env(public=1)
    with pytest.raises(PublicModeError, match="public mode: retraining is turned off"):
        jobs.start_training("autoencoder", "cpu", runs[0], epochs=1, limit=300)
    assert not runs[0].exists() or not any(runs[0].iterdir())


def test_public_mode_refuses_checkpoint_switching(env, runs, tmp_path):
    done = _start(runs, FINISHER, "{out}")
    assert _wait_ended(done).state == "finished"
    jobs.confirm_job(runs[0], done.id)  # chosen by its starter while the server was not public
    assert done.id in checkpoint_sets(tmp_path, runs[0])
    env(public=1)
    assert list(checkpoint_sets(tmp_path, runs[0])) == ["shipped"]
    with pytest.raises(PublicModeError, match="switching checkpoints is turned off"):
        choose_set(done.id, tmp_path, runs[0])
    with pytest.raises(PublicModeError):
        choose_set("shipped", tmp_path, runs[0])
    with pytest.raises(PublicModeError):
        jobs.confirm_job(runs[0], done.id)


def test_epoch_and_row_limits_are_refused(env, runs):
    env(train_max_epochs=5, train_max_rows=1000)
    with pytest.raises(JobError, match="6 epochs asked: this server allows at most 5 epochs"):
        jobs.start_training("oracle", "cpu", runs[0], epochs=6, limit=300)
    with pytest.raises(JobError, match=r"the default of 30 epochs \(autoencoder\)"):
        jobs.start_training("autoencoder", "cpu", runs[0], epochs=None, limit=300)
    with pytest.raises(JobError, match="the default of 200 epochs"):  # "all" counts the GAN's default
        jobs.start_training("all", "cpu", runs[0], epochs=None, limit=300)
    with pytest.raises(JobError, match="1,001 rows asked: this server allows at most 1,000 rows"):
        jobs.start_training("oracle", "cpu", runs[0], epochs=1, limit=1001)
    with pytest.raises(JobError, match="all 89,885 rows asked"):
        jobs.start_training("oracle", "cpu", runs[0], epochs=1, limit=None)
    with pytest.raises(JobError, match="at least 1"):
        jobs.start_training("oracle", "cpu", runs[0], epochs=0, limit=300)
    with pytest.raises(JobError, match="unknown model"):
        jobs.start_training("everything", "cpu", runs[0], epochs=1, limit=300)
    assert not runs[0].exists() or not any(runs[0].iterdir()), "a refused job makes no run folder"


def test_cancel_kills_the_process_and_marks_the_job(runs, tmp_path):
    pidfile = tmp_path / "pid"
    job = _start(runs, SLEEPER, str(pidfile))
    child = int(_wait_file(pidfile))  # the training command itself, below the runner
    assert jobs.job_status(job).state == "running"
    (job.out / "autoencoder").mkdir()  # a partial checkpoint, as an interrupted training leaves
    (job.out / "autoencoder" / "card.json").write_text("{}")
    t0 = time.time()
    status = jobs.cancel_job(job, grace=5)
    assert time.time() - t0 < 10
    assert status.state == "cancelled"
    assert _dead(child) and _dead(job.pid)
    assert "partial" in (job.out / jobs.CANCELLED_FILE).read_text()
    assert json.loads((job.out / jobs.JOB_FILE).read_text())["state"] == "cancelled"
    # never offered, even from another server process (no Popen there)
    jobs._OWNED.pop(str(job.out)).wait()
    assert jobs.job_status(jobs.load_job(job.out)).state == "cancelled"
    assert not jobs.offered(job.out)
    assert list(checkpoint_sets(tmp_path, runs[0])) == ["shipped"]
    with pytest.raises(JobError):
        choose_set(job.id, tmp_path, runs[0])
    with pytest.raises(JobError, match="not running"):
        jobs.cancel_job(job)
    with pytest.raises(JobError, match="cancelled"):
        jobs.confirm_job(runs[0], job.id)


def test_a_finished_job_is_not_switched_in_until_confirmed(runs, tmp_path):
    job = _start(runs, FINISHER, "{out}")
    status = _wait_ended(job)
    assert status.state == "finished" and status.models == ("autoencoder",), status
    assert json.loads((job.out / jobs.EXIT_FILE).read_text())["exit_code"] == 0
    assert list(checkpoint_sets(tmp_path, runs[0])) == ["shipped"]  # offered to nobody yet
    with pytest.raises(JobError, match="not a checkpoint set this server offers"):
        choose_set(job.id, tmp_path, runs[0])
    jobs.confirm_job(runs[0], job.id)
    assert list(checkpoint_sets(tmp_path, runs[0])) == ["shipped", job.id]
    assert choose_set(job.id, tmp_path, runs[0]) == job.out
    assert jobs.progress_bar(jobs.job_log(job)[1], status.state) == (1.0, "finished")
    # the switch is recorded on disk: every server process (and a restarted one) reads the same set
    assert active_set(tmp_path, runs[0]) == ("shipped", tmp_path)
    assert switch_set(job.id, tmp_path, runs[0]) == job.out
    assert active_set(tmp_path, runs[0]) == (job.id, job.out)
    import shutil

    shutil.rmtree(job.out)  # the chosen set deleted by hand: back to the shipped one, no error
    assert active_set(tmp_path, runs[0]) == ("shipped", tmp_path)
    (runs[0] / "active_set.json").write_text("{damaged")
    assert active_set(tmp_path, runs[0]) == ("shipped", tmp_path)


def test_status_without_the_popen_reads_the_marker_and_the_pid(runs, tmp_path):
    """Another server process (or this one restarted) has only job.json, the pid and exit.json."""
    done = _start(runs, FINISHER, "{out}")
    _wait_ended(done)
    jobs._OWNED.pop(str(done.out))
    assert jobs.job_status(jobs.load_job(done.out)).state == "finished"
    failed = _start(runs, "import sys; sys.exit(3)")
    _wait_ended(failed)
    jobs._OWNED.pop(str(failed.out))
    s = jobs.job_status(jobs.load_job(failed.out))
    assert (s.state, s.exit_code) == ("failed", 3) and not jobs.offered(failed.out)
    pidfile = tmp_path / "pid"
    live = _start(runs, SLEEPER, str(pidfile))
    _wait_file(pidfile)
    proc = jobs._OWNED.pop(str(live.out))
    assert jobs.job_status(jobs.load_job(live.out)).state == "running"
    jobs._OWNED[str(live.out)] = proc
    jobs.cancel_job(live)


def test_one_job_at_a_time_and_ids_are_folder_names(runs, tmp_path):
    pidfile = tmp_path / "pid"
    busy = _start(runs, SLEEPER, str(pidfile))
    _wait_file(pidfile)
    with pytest.raises(JobError, match=f"{busy.id} is already running"):
        jobs.start_training("autoencoder", "cpu", runs[0], epochs=1, limit=300)
    jobs.cancel_job(busy)
    for bad in ("../x", "", ".hidden", "a/b"):
        with pytest.raises(JobError):
            jobs.find_job(runs[0], bad)


def test_two_simultaneous_starts_give_one_job(runs):
    """Two Start clicks at the same instant: the start lock makes the second see the first job."""
    import threading

    barrier, results = threading.Barrier(2), []

    def click():
        barrier.wait()
        try:
            results.append(jobs.start_training("autoencoder", "cpu", runs[0], epochs=1, limit=300))
        except JobError as exc:
            results.append(exc)

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    started = [r for r in results if isinstance(r, jobs.TrainJob)]
    runs[1].extend(started)
    assert len(started) == 1 and len(results) == 2, results
    assert "already running" in str(next(r for r in results if isinstance(r, JobError)))
    assert len(jobs.list_jobs(runs[0])) == 1
    jobs.cancel_job(started[0])
