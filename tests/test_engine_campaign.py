import json

import numpy as np
import pandas as pd
import pytest

from wbg_core.engine.campaign import Campaign, CampaignConfig, CampaignError, clean_seeds, model_labeller, pick_seeds
from wbg_core.models.registry import CheckpointSet


@pytest.fixture(scope="module")
def seeds():
    return pick_seeds(60, seed=3)


@pytest.fixture(scope="module")
def models():
    """What a campaign is handed: the shipped autoencoder, and the shipped oracle as labeller."""
    shipped = CheckpointSet.shipped()
    return {"autoencoder": shipped.autoencoder(), "labeller": model_labeller(shipped.oracle())}


def _cfg(**kw):
    base = dict(budget=30, batch_size=10, n_candidates=400, seed=7)
    base.update(kw)
    return CampaignConfig(**base)


@pytest.mark.parametrize("kw,match", [
    ({"objective": "window", "window_min": 3.0, "window_max": 2.0}, "inverted"),
    ({"objective": "window", "window_min": 3.0, "window_max": 3.0}, "empty"),
    ({"objective": "window", "window_min": 3.0, "window_max": None}, "both"),
    ({"kappa": -1.0}, "kappa"),
    ({"batch_size": 0}, "batch_size"),
    ({"invalid": "ignore"}, "invalid"),
    ({"decode_rule": "round"}, "decode_rule"),
])
def test_bad_config_is_refused(kw, match):
    with pytest.raises(CampaignError, match=match):
        CampaignConfig(**kw).validate()


@pytest.mark.parametrize("formulas,gaps,match", [
    (["NaCl"], [5.0], "at least 2"),
    (["NaCl", "ClNa"], [5.0, 5.2], "at least 2"),  # one formula written twice
    (["Xx2", "Qq"], [1.0, 2.0], "no usable seed"),
])
def test_degenerate_seed_sets_are_refused(tmp_path, formulas, gaps, match, models):
    with pytest.raises(CampaignError, match=match):
        Campaign.new(tmp_path / "c", _cfg(), formulas, gaps, **models)


def test_clean_seeds_merges_duplicates_and_drops_bad_gaps():
    df = clean_seeds(["NaCl", "ClNa", "MgO", "SiO2"], [5.0, 5.2, float("nan"), -1.0])
    assert df["formula"].tolist() == ["NaCl"] and np.isclose(df["band_gap"].iloc[0], 5.1)


@pytest.mark.slow
def test_short_campaign_end_to_end(tmp_path, seeds, models):
    d = tmp_path / "camp"
    camp = Campaign.new(d, _cfg(), seeds["formula"], seeds["band_gap"], **models)
    reports = camp.run(5)  # stops at the budget: 3 rounds of 10
    assert [r.round for r in reports] == [1, 2, 3] and camp.done()
    for r in reports:
        assert r.proposals == 10 and r.labelled == 10
        assert 0 < r.valid_decode_rate <= 1 and r.best_gap >= max(seeds["band_gap"].max(), 0)
        assert set(r.stage_s) == {"gp_fit", "acquisition", "decode", "label"}
    lab = camp.labelled()
    assert lab["formula"].is_unique  # duplicates of known formulas are skipped
    assert len(lab) == len(seeds) + 30 and np.isfinite(lab["band_gap"]).all()
    with pytest.raises(CampaignError, match="budget"):
        camp.step()
    # on disk: JSON, CSV and .npy only, beside the lock file (the pid of the last runner)
    files = sorted(p.name for p in d.rglob("*") if p.is_file() and p.name != ".lock")
    assert (d / ".lock").read_text().isdigit()
    assert {"config.json", "state.json", "seeds.csv", "seeds_z.npy", "proposals.csv", "z.npy", "gp.json"} >= set(files)
    state = json.loads((d / "state.json").read_text())
    assert state["rounds_done"] == 3 and state["gp"]["lengthscale"] > 0
    out = camp.export(tmp_path / "export.csv")
    df = pd.read_csv(out)
    assert {"formula", "band_gap", "in_window", "novel", "compound_valid", "round"} <= set(df.columns)
    assert len(df) == len(seeds) + 30
    hist = Campaign.load(d, **models).history()
    assert hist["round"].tolist() == [1, 2, 3]


@pytest.mark.slow
def test_resume_after_an_interrupted_round_matches_an_uninterrupted_run(tmp_path, seeds, models):
    ref = Campaign.new(tmp_path / "ref", _cfg(), seeds["formula"], seeds["band_gap"], **models)
    ref.run(2)
    calls = {"n": 0}

    def dying_labeller(formulas):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while labelling round 2
        return models["labeller"](formulas)

    d = tmp_path / "killed"
    camp = Campaign.new(d, _cfg(), seeds["formula"], seeds["band_gap"], autoencoder=models["autoencoder"],
                        labeller=dying_labeller)
    camp.step()
    with pytest.raises(KeyboardInterrupt):
        camp.step()
    (d / "rounds" / "0002").mkdir()  # debris a kill between rename and state.json leaves
    resumed = Campaign.load(d, **models)
    assert resumed.state["rounds_done"] == 1
    r2 = resumed.step()
    assert r2.round == 2
    assert resumed.rounds[1]["formula"].tolist() == ref.rounds[1]["formula"].tolist()
    assert np.allclose(resumed.rounds[1]["band_gap"], ref.rounds[1]["band_gap"])


@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    {"objective": "window", "window_min": 2.0, "window_max": 4.0},
    {"invalid": "penalty", "decode_rule": "strict"},
])
def test_window_objective_and_paper_penalty_mode(tmp_path, seeds, kw, models):
    camp = Campaign.new(None, _cfg(budget=20, **kw), seeds["formula"], seeds["band_gap"], **models)
    reports = camp.run(2)
    assert len(reports) == 2
    # penalty mode proposes the batch as drawn; decodes that repeat a known formula are skipped
    assert 10 <= sum(r.proposals for r in reports) <= 20
    last = camp.rounds[-1]
    if kw.get("invalid") == "penalty":
        assert (last.loc[~last["valid"], "band_gap"] == 0).all()
        assert all(r.proposals == r.labelled + r.invalid_penalised for r in reports)
    else:
        hits = last["in_window"]
        assert (last.loc[hits, "band_gap"].between(2.0, 4.0)).all()


def test_the_argmax_rule_wastes_fewer_decodes_than_the_strict_one(tmp_path, seeds, models):
    """Same seeds, same GP, same candidates: the rules differ only in how a proposal decodes."""
    rates = {}
    for rule in ("strict", "argmax"):  # proposal_rule "any": only the decode rule differs
        camp = Campaign.new(None, _cfg(decode_rule=rule, budget=20, proposal_rule="any"), seeds["formula"],
                            seeds["band_gap"], **models)
        r = camp.step()
        assert r.labelled == 10
        rates[rule] = r.valid_decode_rate
    assert rates["argmax"] >= rates["strict"] and rates["argmax"] > 0.9


def test_cli_campaign_records_the_decode_rule(tmp_path):
    from wbg_core.cli import main

    d = tmp_path / "c"
    assert main(["campaign", "new", str(d), "--random-seeds", "40", "--decode-rule", "argmax", "--json"]) == 0
    assert json.loads((d / "config.json").read_text())["decode_rule"] == "argmax"


def test_default_proposals_are_compounds_and_the_paper_rule_is_selectable(seeds, models):
    from wbg_core.composition import compound_valid

    camp = Campaign.new(None, _cfg(budget=20), seeds["formula"], seeds["band_gap"], **models)
    assert camp.config.proposal_rule == "compound"
    r = camp.step()
    got = camp.rounds[-1]
    labelled = got.loc[got["valid"], "formula"].to_numpy(dtype=object)
    assert r.labelled == len(labelled) > 0
    assert compound_valid(labelled).all()  # no H, Hf, Br8F8 spends a label
    assert r.rule_rejected > 0  # the rule had something to turn away on this pool
    anyrule = Campaign.new(None, _cfg(budget=20, proposal_rule="any", objective="window", window_min=0.0,
                                      window_max=20.0), seeds["formula"], seeds["band_gap"], **models)
    assert anyrule.step().rule_rejected == 0
    last = anyrule.rounds[-1]
    comp = compound_valid(last["formula"].where(last["valid"], None).to_numpy(dtype=object))
    assert (~comp & last["valid"]).any()  # the paper's rule labels non-compounds ...
    assert (last["in_window"] == (last["valid"] & comp)).all()  # ... but only compounds are hits
    with pytest.raises(CampaignError, match="proposal_rule"):
        CampaignConfig(proposal_rule="smact").validate()


# ---- on disk: schema, lock, overwrite (issue #16.2) ------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory, seeds, models):
    """A real campaign with 3 rounds on disk; tests damage copies of it."""
    d = tmp_path_factory.mktemp("saved") / "camp"
    camp = Campaign.new(d, _cfg(budget=None, batch_size=3, n_candidates=60), seeds["formula"], seeds["band_gap"],
                        **models)
    camp.run(3)
    return d


def _copy(src, tmp_path):
    import shutil

    return shutil.copytree(src, tmp_path / "camp")


def _files(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _edit_state(d, **kw):
    state = json.loads((d / "state.json").read_text())
    state.update(kw)
    (d / "state.json").write_text(json.dumps(state))


def _drop_column(d, col, r=2):
    p = d / "rounds" / f"{r:04d}" / "proposals.csv"
    pd.read_csv(p).drop(columns=[col]).to_csv(p, index=False)


def _text_gap(d):
    p = d / "rounds" / "0002" / "proposals.csv"
    df = pd.read_csv(p)
    df["band_gap"] = df["band_gap"].astype(object)
    df.loc[0, "band_gap"] = "wide"
    df.to_csv(p, index=False)


def _shrink_history(d):
    state = json.loads((d / "state.json").read_text())
    state.update(rounds_done=1, history=state["history"][:1])
    (d / "state.json").write_text(json.dumps(state))


def _remove_round3(d):
    import shutil

    shutil.rmtree(d / "rounds" / "0003")


@pytest.mark.parametrize("damage,match", [
    (lambda d: _edit_state(d, rounds_done="abc"), r'state\.json: rounds_done = "abc": Input should be a valid integer'),
    (lambda d: _edit_state(d, rounds_done=2), r"rounds_done is 2 but its history lists rounds \[1, 2, 3\]"),
    (_shrink_history, r"says 1 rounds are done but rounds/ holds rounds up to 0003"),  # rounds_done below the disk
    (_remove_round3, r"says 3 rounds are done but rounds/0003 is missing"),  # rounds_done above the disk
    (lambda d: _drop_column(d, "band_gap"), r"rounds/0002/proposals\.csv has no column band_gap"),
    (lambda d: _drop_column(d, "valid", r=1), r"rounds/0001/proposals\.csv has no column valid"),
    (_text_gap, r"rounds/0002/proposals\.csv: column band_gap is not numeric"),
    (lambda d: np.save(d / "rounds" / "0001" / "z.npy", np.zeros((2, 5), np.float32)), r"rounds/0001/z\.npy holds"),
    (lambda d: (d / "config.json").write_text('{"batch_size": "ten"}'), r"config\.json: batch_size"),
    (lambda d: (d / "state.json").write_text('{"rounds_done": 3'), r"state\.json: "),
    (lambda d: (d / "seeds.csv").write_text("formula\nNaCl\n"), r"seeds\.csv has no column band_gap"),
])
def test_damaged_campaigns_are_refused_on_load_and_nothing_is_written(saved, tmp_path, capsys, damage, match,
                                                                      models):
    from wbg_core.cli import main
    from wbg_core.engine.campaign import CampaignDamaged

    d = _copy(saved, tmp_path)
    damage(d)
    before = _files(d)
    with pytest.raises(CampaignDamaged, match=match) as info:
        Campaign.load(d, **models)
    assert str(info.value).startswith(f"campaign {d} is damaged: ")
    assert main(["campaign", "run", str(d), "--rounds", "1"]) == 2  # one line, no traceback, no round
    err = capsys.readouterr().err
    assert "is damaged" in err and "Traceback" not in err
    assert _files(d) == before


def test_one_round_past_the_state_is_the_debris_of_a_kill_and_is_replaced(saved, tmp_path, models):
    d = _copy(saved, tmp_path)
    _edit_state(d, rounds_done=2, history=json.loads((d / "state.json").read_text())["history"][:2])
    camp = Campaign.load(d, **models)  # rounds/0003 is what a kill between its rename and state.json leaves
    assert camp.state["rounds_done"] == 2
    assert camp.step().round == 3
    assert Campaign.load(d, **models).state["rounds_done"] == 3


def test_a_runner_with_stale_state_never_overwrites_a_round(saved, tmp_path, models):
    """Two runners loaded the same state: the second one steps after the first, so it must read
    the first one's round under the lock instead of writing round 4 again."""
    d = _copy(saved, tmp_path)
    first, second = Campaign.load(d, **models), Campaign.load(d, **models)
    a = first.step()
    round4 = (d / "rounds" / "0004" / "proposals.csv").read_bytes()
    b = second.step()
    assert (a.round, b.round) == (4, 5)
    assert (d / "rounds" / "0004" / "proposals.csv").read_bytes() == round4
    back = Campaign.load(d, **models)
    assert back.state["rounds_done"] == 5 and [h["round"] for h in back.state["history"]] == [1, 2, 3, 4, 5]
    assert back.labelled()["formula"].is_unique  # round 5 did not repeat round 4's formulas


def test_a_second_runner_is_refused_while_the_lock_is_held(saved, tmp_path, models):
    import os

    from wbg_core.engine.campaign import CampaignBusy, campaign_lock

    d = _copy(saved, tmp_path)
    camp = Campaign.load(d, **models)
    with campaign_lock(d):
        before = _files(d)
        for attempt in (camp.step, lambda: camp.run(2), lambda: Campaign.new(d, _cfg(), ["NaCl", "MgO"], [5.0, 6.0],
                                                                            overwrite=True, **models)):
            with pytest.raises(CampaignBusy, match=rf"campaign {d} is being run by another process \(pid "
                                                    rf"{os.getpid()}\); wait for it or stop it"):
                attempt()
        assert _files(d) == before
    assert camp.step().round == 4  # released: the next step goes ahead


def test_overwrite_replaces_only_a_campaign(saved, tmp_path, seeds, capsys, models):
    from wbg_core.cli import main

    other = tmp_path / "mine"
    (other / "sub").mkdir(parents=True)
    (other / "notes.txt").write_text("keep me")
    (other / "sub" / "data.csv").write_text("a,b\n")
    with pytest.raises(CampaignError, match="not a campaign"):
        Campaign.new(other, _cfg(), seeds["formula"], seeds["band_gap"], overwrite=True, **models)
    assert main(["campaign", "new", str(other), "--random-seeds", "40", "--overwrite"]) == 2
    assert f"{other} is not a campaign (no state.json)" in capsys.readouterr().err
    assert (other / "notes.txt").read_text() == "keep me" and (other / "sub" / "data.csv").exists()
    assert sorted(p.name for p in other.rglob("*")) == ["data.csv", "notes.txt", "sub"]  # not even a lock file

    d = _copy(saved, tmp_path)
    (d / "notes.txt").write_text("mine")
    (d / "rounds" / "0001" / "plot.png").write_bytes(b"x")
    with pytest.raises(CampaignError, match=r"files a campaign never writes \(notes\.txt, rounds/0001/plot\.png\)"):
        Campaign.new(d, _cfg(), seeds["formula"], seeds["band_gap"], overwrite=True, **models)
    assert (d / "notes.txt").exists() and (d / "rounds" / "0003").exists()
    with pytest.raises(CampaignError, match="already holds"):
        Campaign.new(d, _cfg(), seeds["formula"], seeds["band_gap"], **models)

    (d / "notes.txt").unlink()
    (d / "rounds" / "0001" / "plot.png").unlink()
    (d / "export.csv").write_text("x")  # the app's export and label are a campaign's own
    camp = Campaign.new(d, _cfg(seed=8), seeds["formula"], seeds["band_gap"], overwrite=True, **models)
    assert camp.state["rounds_done"] == 0 and not (d / "rounds").exists() and not (d / "export.csv").exists()
    assert Campaign.load(d, **models).config.seed == 8
    empty = tmp_path / "empty"
    empty.mkdir()
    Campaign.new(empty, _cfg(), seeds["formula"], seeds["band_gap"], overwrite=True, **models)
    assert (empty / "state.json").exists()


def test_oracle_campaigns_keep_their_files_and_tables(saved, models):
    """The external labeller (issue #17) adds nothing to an oracle campaign's files or rounds."""
    from wbg_core.engine.campaign_store import ROUND_COLUMNS

    for r in (1, 2, 3):
        assert (saved / "rounds" / f"{r:04d}" / "proposals.csv").read_text().splitlines()[0] == ",".join(ROUND_COLUMNS)
    assert set(json.loads((saved / "state.json").read_text())) == {"version", "rounds_done", "gp", "history"}
    camp = Campaign.load(saved, **models)
    assert camp.config.labeller == "oracle" and list(camp.rounds[0].columns) == list(ROUND_COLUMNS)
    st = camp.status()
    assert (st["labeller"], st["pending"], st["dft_labelled"]) == ("oracle", 0, 0)
    assert [h["pending"] for h in camp.state["history"]] == [0, 0, 0]
    assert [h["trained_on"] for h in camp.state["history"]] == [60, 63, 66]  # every oracle label is used
    assert len(camp.data()[0]) == len(camp.points()[0]) == 69


# ---- models are handed in (issue #14) -----------------------------------------------------------------------------
def test_model_labeller_gives_the_models_own_values(models, seeds):
    """The oracle's mean and sigma as float64, exactly what its predict() says (the campaign clips at 0)."""
    from wbg_core.engine.experiments import train_forest

    formulas = ["MgO", "NaCl", "SrYF5", "Cu", "Xx2"]
    for model in (CheckpointSet.shipped().oracle(), train_forest(seeds["formula"].tolist(), seeds["band_gap"], 0)):
        mean, std = model_labeller(model)(formulas)
        pred = model.predict(formulas)
        assert mean.dtype == std.dtype == np.float64
        assert np.array_equal(mean, pred.mean.astype(np.float64), equal_nan=True)
        assert np.array_equal(std, pred.std.astype(np.float64), equal_nan=True)
        assert np.isnan(mean[-1]) and np.isfinite(mean[:-1]).all()
    with pytest.raises(TypeError, match="needs a model"):
        model_labeller(None)


def test_a_campaign_loads_no_model_of_its_own(saved, tmp_path, seeds, models):
    with pytest.raises(TypeError, match="autoencoder"):
        Campaign.new(None, _cfg(), seeds["formula"], seeds["band_gap"])  # the keywords are required
    with pytest.raises(TypeError, match="needs the autoencoder"):
        Campaign.new(None, _cfg(), seeds["formula"], seeds["band_gap"], autoencoder=None, labeller=None)
    with pytest.raises(TypeError, match="labeller"):
        Campaign.load(saved, autoencoder=None)
    d = _copy(saved, tmp_path)
    before = _files(d)
    read_only = Campaign.load(d, autoencoder=None, labeller=None)  # reading needs no model
    assert read_only.status()["rounds_done"] == 3 and len(read_only.labelled()) == 69
    with pytest.raises(CampaignError, match="without an autoencoder"):
        read_only.step()
    with pytest.raises(CampaignError, match="without a labeller"):
        Campaign.load(d, autoencoder=models["autoencoder"], labeller=None).run(1)
    assert _files(d) == before  # refused before any work or write
