"""AppTest: the active-learning page (start, step, the link reopens it, isolation, cleanup, bad inputs)."""
import io
import json
import os
import stat
import time
import zipfile
from pathlib import Path

import pandas as pd
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
    from wbg_core.services.campaigns import clean_stale_campaigns

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
    dead_upload = campaigns / "app" / ".upload-dead"  # a server killed while it checked an upload
    (dead_upload / "rounds").mkdir(parents=True)
    live_upload = campaigns / "app" / ".upload-live"
    live_upload.mkdir()
    for p in (empty, empty / "state.json", kept, kept / "state.json", legacy, legacy / "state.json",
              legacy.parent, cli, dead_upload, dead_upload / "rounds"):
        os.utime(p, (old, old))
    removed = clean_stale_campaigns(campaigns)
    assert sorted(p.name for p in removed) == sorted([empty.name, legacy.parent.name, dead_upload.name])
    assert kept.exists() and fresh.exists() and cli.exists() and live_upload.exists()


def test_bad_seed_upload_message(campaigns):
    need_models()
    at = app("3_Active_learning").run()
    at.radio(key="seed_kind").set_value("upload CSV")
    at.button[0].click().run()
    no_exception(at)
    assert any("upload a CSV" in e.value for e in at.error)


# ---------------------------------------------------------------- campaign zips (issue #16.1)
@pytest.fixture(scope="module")
def real_zip(tmp_path_factory):
    """The 'Download campaign' zip of a real one-round campaign."""
    from wbg_core.services.campaigns import campaign_zip, write_campaign_label
    from wbg_core.engine.campaign import Campaign, CampaignConfig, model_labeller, pick_seeds
    from wbg_core.models.registry import CheckpointSet

    need_models()
    d = tmp_path_factory.mktemp("zipsrc") / "camp"
    seeds = pick_seeds(30, seed=1)
    shipped = CheckpointSet.shipped()
    camp = Campaign.new(d, CampaignConfig(batch_size=3, n_candidates=60, seed=2), seeds["formula"], seeds["band_gap"],
                        autoencoder=shipped.autoencoder(), labeller=model_labeller(shipped.oracle()))
    camp.step()
    camp.export(d / "export.csv")
    write_campaign_label(d, "mine")
    data = campaign_zip(d)
    assert ".lock" not in zipfile.ZipFile(io.BytesIO(data)).namelist()  # what only a running server holds
    return data


def _rezip(data: bytes, replace: dict | None = None, add: list | None = None) -> bytes:
    """A copy of a zip with entries replaced (None: dropped) or added ((name or ZipInfo, bytes))."""
    replace = replace or {}
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in src.infolist():
            body = replace.get(info.filename, src.read(info))
            if body is not None:
                zf.writestr(info.filename, body(src.read(info)) if callable(body) else body)
        for name, body in add or []:
            zf.writestr(name, body)
    return buf.getvalue()


def _state_abc(raw: bytes) -> bytes:
    state = json.loads(raw)
    state["rounds_done"] = "abc"
    return json.dumps(state).encode()


def _no_gap_column(raw: bytes) -> bytes:
    return pd.read_csv(io.BytesIO(raw)).drop(columns=["band_gap"]).to_csv(index=False).encode()


def _symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _limits(monkeypatch, **env):
    from wbg_core.settings import get_settings

    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    get_settings.cache_clear()


@pytest.mark.parametrize("make,match", [
    (lambda z: _rezip(z, {"state.json": _state_abc}), r'^the campaign in the zip is damaged: state\.json: rounds_done = '
                                                       r'"abc": Input should be a valid integer'),
    (lambda z: _rezip(z, {"rounds/0001/proposals.csv": _no_gap_column}),
     r"damaged: rounds/0001/proposals\.csv has no column band_gap"),
    (lambda z: _rezip(z, {"state.json": None}), "no state.json"),
    (lambda z: _rezip(z, add=[("../evil.txt", b"x")]), r"unsafe path: '\.\./evil\.txt'"),
    (lambda z: _rezip(z, add=[("rounds/../../evil.txt", b"x")]), "unsafe path"),
    (lambda z: _rezip(z, add=[("/var/evil.txt", b"x")]), "unsafe path"),
    (lambda z: _rezip(z, {"app.json": None}, add=[(_symlink("app.json"), b"/etc/passwd")]), "link or special file"),
    (lambda z: _rezip(z, add=[("notes.txt", b"x")]), "'notes.txt', which a campaign never holds"),
    (lambda z: _rezip(z, add=[("rounds/0001/run.py", b"x")]), "never holds"),
    (lambda z: z[: len(z) // 2], "not a readable zip"),
    (lambda z: b"not a zip at all", "not a readable zip"),
])
def test_bad_campaign_zips_are_refused_and_leave_nothing(campaigns, real_zip, tmp_path, make, match):
    from wbg_core.services.campaigns import import_campaign_zip, new_campaign_id
    from wbg_core.engine.campaign import CampaignError

    cid = new_campaign_id()
    with pytest.raises(CampaignError, match=match) as info:
        import_campaign_zip(make(real_zip), campaigns, cid)
    assert str(campaigns) not in str(info.value) and "/tmp" not in str(info.value)  # no server path
    assert not any((campaigns / "app").iterdir()) if (campaigns / "app").exists() else True
    assert not (campaigns / "evil.txt").exists() and not Path("/var/evil.txt").exists()


def test_zip_size_and_count_limits_are_checked_before_anything_is_written(campaigns, real_zip, monkeypatch):
    """A 362 KB zip once unpacked to 315 MB: the declared sizes are refused before extraction,
    and the bytes actually written are counted too."""
    from wbg_core.services.campaigns import import_campaign_zip, new_campaign_id
    from wbg_core.engine.campaign import CampaignError

    bomb = _rezip(real_zip, {"export.csv": b"0" * 3_000_000})
    assert len(bomb) < 100_000
    _limits(monkeypatch, WBG_UPLOAD_MAX_UNPACKED_MB=1)
    with pytest.raises(CampaignError, match=r"unpacks to 3\.\d MB; a campaign upload may unpack to at most 1 MB"):
        import_campaign_zip(bomb, campaigns, new_campaign_id())
    _limits(monkeypatch, WBG_UPLOAD_MAX_UNPACKED_MB=50, WBG_UPLOAD_MAX_FILES=5)
    n = len(zipfile.ZipFile(io.BytesIO(real_zip)).infolist())
    with pytest.raises(CampaignError, match=rf"holds {n} entries; a campaign upload may hold at most 5"):
        import_campaign_zip(real_zip, campaigns, new_campaign_id())
    assert not (campaigns / "app").exists() or not any((campaigns / "app").iterdir())
    _limits(monkeypatch, WBG_UPLOAD_MAX_FILES=500)
    folder = import_campaign_zip(real_zip, campaigns, cid := new_campaign_id(), label="again")
    assert folder == campaigns / "app" / cid and [p.name for p in (campaigns / "app").iterdir()] == [cid]
    assert json.loads((folder / "app.json").read_text())["name"] == "again"


def test_uploaded_campaign_zips_open_or_say_why_on_the_page(campaigns, real_zip):
    need_models()
    at = app("3_Active_learning").run()
    at.file_uploader(key="camp_zip").upload("bad.zip", _rezip(real_zip, {"state.json": _state_abc}), "application/zip")
    at.run()
    at.button(key="open_zip").click().run()
    no_exception(at)
    assert len(at.error) == 1 and at.error[0].value.startswith(
        'Cannot open the upload: the campaign in the zip is damaged: state.json: rounds_done = "abc": Input should '
        'be a valid integer')
    assert not (campaigns / "app").exists() or not any((campaigns / "app").iterdir())

    at.file_uploader(key="camp_zip").upload("good.zip", real_zip, "application/zip")
    at.run()
    at.button(key="open_zip").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert any(m.label == "Rounds" and m.value == "1" for m in at.metric)
    assert "uploaded good" in texts(at)


def test_a_campaign_being_stepped_elsewhere_is_refused_on_the_page(campaigns):
    from wbg_core.engine.campaign import campaign_lock

    need_models()
    at = _start(app("3_Active_learning").run())
    cdir = Path(at.session_state["campaign"])
    with campaign_lock(cdir):  # another session (or `wbg campaign run`) is stepping it
        at.button(key="step").click().run()
    no_exception(at)
    assert [e.value for e in at.error] == [
        f"This campaign is being run by another process (pid {os.getpid()}); wait for it or stop it"]
    assert not (cdir / "rounds").exists()
    at.button(key="step").click().run()
    assert not at.error and any(m.label == "Rounds" and m.value == "1" for m in at.metric)


# ---------------------------------------------------------------- your own DFT labels (issue #17)
def _files(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _proposals(at):
    """The 'Proposals of round' table (the one with gp_mean; the pending list has none)."""
    return next(df.value for df in at.dataframe if "gp_mean" in df.value.columns)


def test_an_external_campaign_waits_for_dft_labels_imported_on_the_page(campaigns):
    need_models()
    at = app("3_Active_learning").run()
    at.radio(key="labeller").set_value("my own DFT (export, compute, import)")
    at = _start(at)
    no_exception(at)
    cdir = Path(at.session_state["campaign"])
    assert json.loads((cdir / "config.json").read_text())["labeller"] == "external"
    at.button(key="step").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    shown = _proposals(at)
    assert (shown["label_source"] == "pending").all() and shown["band_gap"].isna().all()
    assert shown["provisional_gap"].notna().all()
    assert "3 proposals pending, 0 with imported DFT gaps" in texts(at)
    pend = next(df.value for df in at.dataframe if "gp_mean" not in df.value.columns)
    assert pend["formula"].tolist() == shown["formula"].tolist()
    first = shown["formula"].iloc[0]

    before = _files(cdir)
    at.file_uploader(key="labels_csv").upload("gaps.csv", f"formula,band_gap\n{first},-1\n".encode(), "text/csv")
    at.run()
    at.button(key="import_labels").click().run()
    no_exception(at)
    assert [e.value for e in at.error] == [f"gaps.csv: line 2 ({first}): band_gap -1 is not a finite number >= 0 "
                                           "(eV); a band gap is never negative; nothing was imported"]
    assert _files(cdir) == before

    at.file_uploader(key="labels_csv").upload("gaps.csv", f"formula,band_gap\n{first},3.4\n".encode(), "text/csv")
    at.run()
    at.button(key="import_labels").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert "Imported 1 DFT gap from gaps.csv; 2 pending." in texts(at)
    assert "2 proposals pending, 1 with imported DFT gaps" in texts(at)
    row = _proposals(at).set_index("formula").loc[first]
    assert row["band_gap"] == 3.4 and row["label_source"].startswith("dft (imported ")
    assert [x["formula"] for x in json.loads((cdir / "state.json").read_text())["labels"]] == [first]
    at.button(key="import_labels").click().run()  # the same file again
    assert any("was already imported (3.4 eV" in e.value for e in at.error)

    at.checkbox(key="use_provisional").check()
    at.button(key="step").click().run()
    no_exception(at)
    hist = json.loads((cdir / "state.json").read_text())["history"]
    assert [h["trained_on"] for h in hist] == [30, 33] and hist[1]["provisional_used"] == 2

    at.selectbox(key="export_round").set_value(1)
    at.button(key="prep_export").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    cid, rnd, data, name = at.session_state["_round_zip"]
    assert (rnd, name) == (1, "round-0001.zip") and at.download_button(key="dl_round")
    index = pd.read_csv(io.BytesIO(zipfile.ZipFile(io.BytesIO(data)).read("round-0001/index.csv")))
    assert index["formula"].tolist() == shown["formula"].tolist()
