"""AppTest: the active-learning page (start, step, the link reopens it, isolation, cleanup, bad inputs)."""
import os
import time
from pathlib import Path

import pytest

from app_testing import app, need_models, no_exception, texts


@pytest.fixture
def campaigns(tmp_path, monkeypatch):
    """The campaigns folder is a temp dir (settings and the hourly cleanup's cache reset)."""
    import streamlit as st

    from wbg_core.settings import get_settings

    monkeypatch.setenv("WBG_CAMPAIGNS_DIR", str(tmp_path))
    get_settings.cache_clear()
    st.cache_resource.clear()
    yield tmp_path
    monkeypatch.undo()
    get_settings.cache_clear()


def _qp(at, key):
    v = at.query_params.get(key)
    return v[-1] if isinstance(v, list) and v else v


def _start(at, n_seeds=30, batch=3, n_cand=60):
    at.number_input(key="n_seeds").set_value(n_seeds)
    at.number_input(key="batch").set_value(batch)
    at.number_input(key="n_cand").set_value(n_cand)
    at.button[0].click()  # the form's submit
    return at.run()


def test_campaign_start_step_and_reopen_from_the_link(campaigns):
    need_models()
    at = app("3_Active_learning").run()
    no_exception(at)
    assert "No campaign in this browser yet" in texts(at)
    at = _start(at)
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert "Started" in texts(at)
    cid = _qp(at, "campaign")
    assert cid and len(cid) == 22 and _qp(at, "mine") == cid
    cdir = Path(at.session_state["campaign"])
    assert cdir == campaigns / "app" / cid and (cdir / "state.json").exists()
    at.button(key="step").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert any(m.label == "Rounds" and m.value == "1" for m in at.metric)
    assert at.selectbox(key="show_round").value == 1
    assert (cdir / "rounds" / "0001" / "proposals.csv").exists()
    assert not any(m.delta for m in at.metric)  # the best formula is a caption, not a green arrow
    at.button(key="step").click().run()
    no_exception(at)
    assert at.selectbox(key="show_round").value == 2  # follows the newest round

    again = app("3_Active_learning", {"campaign": cid, "mine": cid}).run()  # F5: a new session, same URL
    no_exception(again)
    assert not again.error, [e.value for e in again.error]
    assert any(m.label == "Rounds" and m.value == "2" for m in again.metric)
    assert again.selectbox(key="reload_pick").options and cid[:6] in again.selectbox(key="reload_pick").options[0]

    other = app("3_Active_learning").run()  # another browser, no link: sees nothing
    no_exception(other)
    assert "campaign" not in other.session_state
    assert "No campaign in this browser yet" in texts(other)


def test_links_to_missing_or_malformed_campaigns_say_so(campaigns):
    need_models()
    at = app("3_Active_learning", {"campaign": "A" * 22}).run()
    no_exception(at)
    assert any("does not exist" in e.value for e in at.error)
    at = app("3_Active_learning", {"campaign": "../../etc/passwd", "mine": "x/y,.."}).run()
    no_exception(at)
    assert any("is not a campaign id" in e.value for e in at.error)
    assert any("mine" in w.value for w in at.warning)
    assert not (campaigns / "etc").exists()


def test_old_empty_campaigns_are_cleaned_up(campaigns):
    from wbg_core.app_campaigns import clean_stale_campaigns

    old = time.time() - 2 * 86400
    empty = campaigns / "app" / ("e" * 22)
    empty.mkdir(parents=True)
    (empty / "state.json").write_text('{"rounds_done": 0}')
    kept = campaigns / "app" / ("k" * 22)
    kept.mkdir()
    (kept / "state.json").write_text('{"rounds_done": 1}')
    fresh = campaigns / "app" / ("f" * 22)
    fresh.mkdir()
    (fresh / "state.json").write_text('{"rounds_done": 0}')
    legacy = campaigns / "session-0123456789ab" / "campaign-1"
    legacy.mkdir(parents=True)
    (legacy / "state.json").write_text('{"rounds_done": 0}')
    cli = campaigns / "my-cli-campaign"
    cli.mkdir()
    for p in (empty, empty / "state.json", kept, kept / "state.json", legacy, legacy / "state.json",
              legacy.parent, cli):
        os.utime(p, (old, old))
    removed = clean_stale_campaigns(campaigns)
    assert sorted(p.name for p in removed) == sorted([empty.name, legacy.parent.name])
    assert kept.exists() and fresh.exists() and cli.exists()


def test_bad_seed_upload_message(campaigns):
    need_models()
    at = app("3_Active_learning").run()
    at.radio(key="seed_kind").set_value("upload CSV")
    at.button[0].click().run()
    no_exception(at)
    assert any("upload a CSV" in e.value for e in at.error)
