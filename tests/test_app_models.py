"""AppTest: the models page (cards, diagnostics, retraining job helpers)."""
import time

from app_testing import app, empty_models, need_models, no_exception, texts  # noqa: F401


def test_cards_and_figures():
    need_models()
    at = app("6_Models").run()
    no_exception(at)
    assert not at.error
    t = texts(at)
    assert "Training command" in t
    assert len(at.tabs) == 4


def test_missing_models_are_errors(empty_models):
    at = app("6_Models").run()
    no_exception(at)
    assert len(at.error) >= 3


def test_training_job_runs_and_is_followed(tmp_path):
    from wbg_core.app_support import job_running, read_log, start_training, train_command

    cmd = train_command("oracle", "cpu", tmp_path / "x", epochs=1, limit=200, members=1, threads=1)
    assert cmd[-10:-8] == ["--device", "cpu"] or "--device" in cmd
    job = start_training("autoencoder", "cpu", tmp_path, epochs=1, limit=300, threads=1)
    t0 = time.time()
    while job_running(job.pid) and time.time() - t0 < 240:  # the map build imports umap (numba JIT)
        time.sleep(0.5)
    log, frac = read_log(job.log)
    assert not job_running(job.pid), log
    assert (job.out / "autoencoder" / "card.json").exists(), log
    assert frac == 1.0
