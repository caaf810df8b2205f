"""AppTest: the models page (cards, diagnostics, retraining jobs, public mode)."""
import sys
import time

import pytest

from app_testing import app, empty_models, need_models, no_exception, texts  # noqa: F401

FINISHER = ("import pathlib, sys; d = pathlib.Path(sys.argv[1]) / 'autoencoder'; d.mkdir(); "
            "(d / 'card.json').write_text('{\"epochs\": 1}'); print('1/1 [')")  # stands in for `wbg train`


@pytest.fixture
def runs(empty_models, tmp_path, monkeypatch):
    """A server with no checkpoints of its own and a temp runs folder; jobs killed afterwards."""
    from wbg_core.services import jobs
    from wbg_core.settings import get_settings

    root = tmp_path / "runs"
    monkeypatch.setenv("WBG_APP_RUNS_DIR", str(root))
    get_settings.cache_clear()
    yield root
    for job in jobs.list_jobs(root):
        if jobs.job_running(job):
            jobs.cancel_job(job, grace=2)


def _settings(monkeypatch, **values):
    from wbg_core.settings import get_settings

    for k, v in values.items():
        monkeypatch.setenv(f"WBG_{k.upper()}", str(v))
    get_settings.cache_clear()


def _button(at, label: str):
    hits = [b for b in at.button if b.label == label]
    assert hits, f"no button {label!r}: {[b.label for b in at.button]}"
    return hits[0]


def _retrain(at, model="autoencoder", epochs=1, rows=300):
    at.selectbox(key="train_model").set_value(model)
    at.radio(key="train_device").set_value("cpu")
    at.number_input(key="train_epochs").set_value(epochs)
    at.number_input(key="train_limit").set_value(rows)
    return _button(at, "Start training").click().run()


def test_cards_and_figures():
    need_models()
    at = app("6_Models").run()
    no_exception(at)
    assert not at.error
    t = texts(at)
    assert "Training command" in t
    # an oracle assembled from another run's members names that run's command too
    from wbg_core.models import load_oracle
    full_from = load_oracle().card.get("full_members_from")
    if full_from:
        assert "Full members trained by" in t and full_from["command"] in t
    # which head turns the members' outputs into the shown gap, from the shipped calibration
    assert "mean of 5 LightGBM regressors cross-fitted on the validation split" in t
    assert "shown gap: P(non-metal) × the mean of the non-metal gap's calibrated distribution" in t
    assert len(at.tabs) == 4
    assert "/models/" not in t.replace("`models/`", "")  # card directories shown relative to the repository
    # the classic compounds say where each label comes from: most are the largest gap over polymorphs
    classics = next(df.value for df in at.dataframe if "label from" in df.value.columns).set_index("formula")
    assert classics.loc["MgO", "label from"] == "largest gap over MP polymorphs, ground state unknown"
    assert classics.loc["Al2O3", "label from"] == "MP ground state, mp-1143"
    assert "largest gap over MP polymorphs" in t  # and the page explains it


def test_missing_models_are_errors(empty_models):
    at = app("6_Models").run()
    no_exception(at)
    assert len(at.error) >= 3
    assert str(empty_models) not in texts(at), "no server path on the page"


def test_public_mode_hides_retraining_and_switching(runs, monkeypatch):
    _settings(monkeypatch, public=1)
    at = app("6_Models", {"tab": "Retrain"})
    at.session_state["train_job"] = "20260101-000000"  # a crafted job id changes nothing
    at.run()
    no_exception(at)
    assert [t.label for t in at.tabs] == ["Oracle", "Autoencoder", "Generator"]
    assert not [b.label for b in at.button]  # no Start, Cancel, Use this set, Use … for the whole app
    assert not [s.label for s in at.selectbox]
    assert [i.value for i in at.info if "public mode" in i.value] == [
        "This server is in public mode: every page uses the shipped checkpoints, and retraining and switching "
        "checkpoints are turned off."]


def test_retrain_start_follow_and_cancel(runs):
    """Start a real `wbg train` (1 epoch, 300 rows) from the form, then cancel it before it ends."""
    from wbg_core.services import jobs

    at = _retrain(app("6_Models", {"tab": "Retrain"}).run())
    no_exception(at)
    job_id = at.session_state["train_job"]
    job = jobs.find_job(runs, job_id)
    assert job.command[-4:] == ["--epochs", "1", "--limit", "300"]  # --members is the oracle's
    t = texts(at)
    assert f"**autoencoder** on `cpu` → `runs/{job_id}` · running" in t
    assert str(runs) not in t
    at = _button(at, "Cancel training").click().run()
    no_exception(at)
    assert any(f"Cancelled: the partial output in `runs/{job_id}`" in w.value for w in at.warning)
    assert jobs.job_status(job).state == "cancelled" and (job.out / jobs.CANCELLED_FILE).exists()
    assert "Cancel training" not in [b.label for b in at.button]
    assert at.selectbox(key="set").options == ["shipped"]


def test_limits_are_refused_with_a_message(runs, monkeypatch):
    _settings(monkeypatch, train_max_epochs=5)
    at = app("6_Models", {"tab": "Retrain"}).run()
    assert at.number_input(key="train_epochs").max == 5  # the widget says so, the service enforces it
    at = _retrain(at, epochs=0)  # 0: the model's default, 30 for the autoencoder
    no_exception(at)
    assert [e.value for e in at.error if "training" in e.value] == [
        "Could not start training: the default of 30 epochs (autoencoder) asked: this server allows at most 5 "
        "epochs per retraining job"]
    assert "train_job" not in at.session_state
    assert not runs.exists() or not any(runs.iterdir())


def test_a_finished_job_is_offered_to_its_session_only(runs):
    """Session A's job has ended: A is offered its checkpoints, B sees nothing new and the app keeps
    the shipped set until A confirms; then every session uses it."""
    from wbg_core.services import jobs

    out = jobs.new_run_folder(runs)
    job = jobs.start_job([sys.executable, "-c", FINISHER, str(out)],
                         out, "autoencoder", "cpu")
    t0 = time.time()
    while jobs.job_running(job) and time.time() - t0 < 60:
        time.sleep(0.2)
    assert jobs.job_status(job).state == "finished"

    a = app("6_Models", {"tab": "Retrain"})
    a.session_state["train_job"] = job.id
    a.run()
    b = app("6_Models", {"tab": "Retrain"}).run()
    for at in (a, b):
        no_exception(at)
        assert "In use: **shipped**" in texts(at)
        assert at.selectbox(key="set").options == ["shipped"]
    assert any(f"Finished: `{job.id}` holds new checkpoints (autoencoder)" in s.value for s in a.success)
    assert any(c.value.startswith("**autoencoder** (default epochs, all rows): ") for c in a.caption)
    assert "No training job started from this browser session." in texts(b)
    assert f"Use {job.id} for the whole app" not in [x.label for x in b.button]

    a = _button(a, f"Use {job.id} for the whole app").click().run()
    no_exception(a)
    assert f"In use: **{job.id}**" in texts(a)
    assert any(f"Finished: the app now uses `{job.id}`" in s.value for s in a.success)
    b.run()
    assert f"In use: **{job.id}**" in texts(b) and b.selectbox(key="set").options == ["shipped", job.id]


def test_training_job_runs_and_is_followed(tmp_path):
    """The real runner and `wbg train` end to end: exit marker, checkpoint, progress from the log."""
    from wbg_core.services import jobs
    from wbg_core.services.jobs import read_log, start_training, train_command

    cmd = train_command("oracle", "cpu", tmp_path / "x", epochs=1, limit=200, members=1, threads=1)
    assert cmd[cmd.index("--device") + 1] == "cpu"
    job = start_training("autoencoder", "cpu", tmp_path, epochs=1, limit=300, threads=1)
    t0 = time.time()
    while jobs.job_running(job) and time.time() - t0 < 240:  # the map build imports umap (numba JIT)
        time.sleep(0.5)
    log = read_log(job.log)
    status = jobs.job_status(job)
    assert status.state == "finished" and status.exit_code == 0, (status, log)
    assert (job.out / "autoencoder" / "card.json").exists(), log
    shown, prog = jobs.job_log(job)
    # the Trainer's JSON line, not tqdm's text: which model, which epoch of how many, its losses
    assert prog["label"] == "autoencoder" and prog["epoch"] == prog["epochs"] == 1 and prog["val_bce"] > 0
    assert jobs.progress_bar(prog, "running") == (1.0, "autoencoder: epoch 1 of 1 · about 0 s left for it")
    assert str(tmp_path) not in shown and f"--out runs/{job.id}" in shown
