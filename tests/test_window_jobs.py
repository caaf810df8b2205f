"""Large band-gap window screenings in the background (services.window_jobs) and on the page."""
import json
import os
import signal
import time

import pytest

from app_testing import app, need_models, no_exception, texts
from wbg_core.services import window_jobs
from wbg_core.services.window_query import WindowQuery
from wbg_core.settings import get_settings

MODELS = get_settings().models_dir
GEN, ORACLE = str(MODELS / "gan"), str(MODELS / "oracle")


def _wait(run, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout:
        st = window_jobs.status(run)
        if st.state != "running":
            return st
        time.sleep(0.5)  # polling a background process's files
    raise TimeoutError(f"{run} still running after {timeout} s: {(run / window_jobs.LOG_FILE).read_text()[-2000:]}")


def test_background_result_equals_the_page_run(tmp_path):
    """The background process screens exactly what the page computes in-process."""
    need_models()
    from wbg_core.models.gan import load as load_gan
    from wbg_core.models.oracle import load as load_oracle
    from wbg_core.services.window import screen_window

    q = WindowQuery(gap_min=2.0, gap_max=5.0, pool=2000, seed=4)
    run = window_jobs.start(q, generator_dir=GEN, oracle_dir=ORACLE, root=tmp_path)
    assert window_jobs.start(q, generator_dir=GEN, oracle_dir=ORACLE, root=tmp_path) == run  # same inputs, same run
    st = _wait(run)
    assert st.state == "finished", (st, (run / window_jobs.LOG_FILE).read_text()[-2000:])
    cand, pool, funnel = window_jobs.load_result(run)
    pid = json.loads((run / window_jobs.REQUEST_FILE).read_text())["pid"]
    assert window_jobs.start(q, generator_dir=GEN, oracle_dir=ORACLE, root=tmp_path) == run  # finished: not rerun
    assert json.loads((run / window_jobs.REQUEST_FILE).read_text())["pid"] == pid
    from pathlib import Path

    ref_cand, ref_pool, ref_funnel = screen_window(
        load_gan(Path(GEN)), load_oracle(Path(ORACLE)), min_gap=2.0, max_gap=5.0, pool=2000, seed=4,
        p_threshold=q.p_min, max_atoms=q.max_atoms, max_elements=q.max_elements, novel_only=q.novel,
        valid_only=q.valid_only)
    assert funnel == ref_funnel and len(cand) > 0
    assert list(cand["formula"]) == list(ref_cand["formula"])
    assert cand["p_in_window"].tolist() == pytest.approx(ref_cand["p_in_window"].tolist(), abs=1e-6)
    assert len(pool) == len(ref_pool)
    other = window_jobs.job_dir(WindowQuery(gap_min=2.0, gap_max=5.0, pool=2000, seed=5), GEN, ORACLE, root=tmp_path)
    assert other != run


def test_killed_job_is_reported_and_restarts(tmp_path):
    need_models()
    q = WindowQuery(pool=2000, seed=7)
    run = window_jobs.start(q, generator_dir=GEN, oracle_dir=ORACLE, root=tmp_path)
    pid = json.loads((run / window_jobs.REQUEST_FILE).read_text())["pid"]
    with pytest.raises(window_jobs.WindowJobError, match="another large screening .*2,000 samples"):
        window_jobs.start(WindowQuery(pool=2000, seed=8), generator_dir=GEN, oracle_dir=ORACLE, root=tmp_path)
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    st = window_jobs.status(run)
    assert st.state == "failed" and "killed" in st.message
    again = window_jobs.start(q, generator_dir=GEN, oracle_dir=ORACLE, root=tmp_path)  # the same run, anew
    assert again == run and json.loads((run / window_jobs.REQUEST_FILE).read_text())["pid"] != pid
    assert _wait(run).state == "finished"


def test_failures_are_named(tmp_path):
    need_models()
    run = window_jobs.start(WindowQuery(pool=2000), generator_dir=GEN, oracle_dir=str(tmp_path / "no_oracle"),
                            root=tmp_path)
    st = _wait(run)
    assert st.state == "failed" and "no_oracle" in st.message
    good = window_jobs.start(WindowQuery(pool=2000, seed=1), generator_dir=GEN, oracle_dir=ORACLE, root=tmp_path)
    assert _wait(good).state == "finished"
    (good / "candidates.parquet").write_bytes(b"PAR1 not a parquet file")
    with pytest.raises(window_jobs.WindowJobError, match="candidates.parquet|cannot be read"):
        window_jobs.load_result(good)


def test_page_runs_a_large_pool_in_the_background(monkeypatch, tmp_path):
    """Above the background size the page starts a job, shows its progress, and opens the
    result when it is done (the size is lowered here so that 2,000 samples count as large)."""
    need_models()
    monkeypatch.setattr(window_jobs, "BACKGROUND_POOL", 1000)
    monkeypatch.setenv("WBG_RUNS_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        at = app("4_Band_gap_window", {"gap_min": "1", "gap_max": "6", "pool": "2000", "seed": "11"}).run()
        no_exception(at)
        assert not at.error, [e.value for e in at.error]
        assert "2,000 samples:" in " ".join(p.proto.text for p in at.get("progress"))
        assert "runs in the background" in texts(at)
        run, _ = at.session_state["window_job"]
        assert str(tmp_path / "window") in run
        _wait(window_jobs.Path(run))
        at.run()
        no_exception(at)
        assert not at.error, [e.value for e in at.error]
        assert "Funnel: generated 2,000" in texts(at)
        assert len(at.session_state["screen_result"]["cand"]) > 0
    finally:
        get_settings.cache_clear()
