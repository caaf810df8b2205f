import json

import numpy as np
import pandas as pd
import pytest

from wbg_core.engine.campaign import Campaign, CampaignConfig, CampaignError, clean_seeds, pick_seeds


@pytest.fixture(scope="module")
def seeds():
    return pick_seeds(60, seed=3)


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
def test_degenerate_seed_sets_are_refused(tmp_path, formulas, gaps, match):
    with pytest.raises(CampaignError, match=match):
        Campaign.new(tmp_path / "c", _cfg(), formulas, gaps)


def test_clean_seeds_merges_duplicates_and_drops_bad_gaps():
    df = clean_seeds(["NaCl", "ClNa", "MgO", "SiO2"], [5.0, 5.2, float("nan"), -1.0])
    assert df["formula"].tolist() == ["NaCl"] and np.isclose(df["band_gap"].iloc[0], 5.1)


@pytest.mark.slow
def test_short_campaign_end_to_end(tmp_path, seeds):
    d = tmp_path / "camp"
    camp = Campaign.new(d, _cfg(), seeds["formula"], seeds["band_gap"])
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
    # on disk: JSON, CSV and .npy only
    files = sorted(p.name for p in d.rglob("*") if p.is_file())
    assert {"config.json", "state.json", "seeds.csv", "seeds_z.npy", "proposals.csv", "z.npy", "gp.json"} >= set(files)
    state = json.loads((d / "state.json").read_text())
    assert state["rounds_done"] == 3 and state["gp"]["lengthscale"] > 0
    out = camp.export(tmp_path / "export.csv")
    df = pd.read_csv(out)
    assert {"formula", "band_gap", "in_window", "novel", "compound_valid", "round"} <= set(df.columns)
    assert len(df) == len(seeds) + 30
    hist = Campaign.load(d).history()
    assert hist["round"].tolist() == [1, 2, 3]


@pytest.mark.slow
def test_resume_after_an_interrupted_round_matches_an_uninterrupted_run(tmp_path, seeds):
    from wbg_core.engine.campaign import default_labeller

    ref = Campaign.new(tmp_path / "ref", _cfg(), seeds["formula"], seeds["band_gap"])
    ref.run(2)
    calls = {"n": 0}

    def dying_labeller(formulas):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while labelling round 2
        return default_labeller(formulas)

    d = tmp_path / "killed"
    camp = Campaign.new(d, _cfg(), seeds["formula"], seeds["band_gap"], labeller=dying_labeller)
    camp.step()
    with pytest.raises(KeyboardInterrupt):
        camp.step()
    (d / "rounds" / "0002").mkdir()  # debris a kill between rename and state.json leaves
    resumed = Campaign.load(d)
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
def test_window_objective_and_paper_penalty_mode(tmp_path, seeds, kw):
    camp = Campaign.new(None, _cfg(budget=20, **kw), seeds["formula"], seeds["band_gap"])
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


def test_the_argmax_rule_wastes_fewer_decodes_than_the_strict_one(tmp_path, seeds):
    """Same seeds, same GP, same candidates: the rules differ only in how a proposal decodes."""
    rates = {}
    for rule in ("strict", "argmax"):  # proposal_rule "any": only the decode rule differs
        camp = Campaign.new(None, _cfg(decode_rule=rule, budget=20, proposal_rule="any"), seeds["formula"],
                            seeds["band_gap"])
        r = camp.step()
        assert r.labelled == 10
        rates[rule] = r.valid_decode_rate
    assert rates["argmax"] >= rates["strict"] and rates["argmax"] > 0.9


def test_cli_campaign_records_the_decode_rule(tmp_path):
    from wbg_core.cli import main

    d = tmp_path / "c"
    assert main(["campaign", "new", str(d), "--random-seeds", "40", "--decode-rule", "argmax", "--json"]) == 0
    assert json.loads((d / "config.json").read_text())["decode_rule"] == "argmax"


def test_default_proposals_are_compounds_and_the_paper_rule_is_selectable(seeds):
    from wbg_core.composition import compound_valid

    camp = Campaign.new(None, _cfg(budget=20), seeds["formula"], seeds["band_gap"])
    assert camp.config.proposal_rule == "compound"
    r = camp.step()
    got = camp.rounds[-1]
    labelled = got.loc[got["valid"], "formula"].to_numpy(dtype=object)
    assert r.labelled == len(labelled) > 0
    assert compound_valid(labelled).all()  # no H, Hf, Br8F8 spends a label
    assert r.rule_rejected > 0  # the rule had something to turn away on this pool
    anyrule = Campaign.new(None, _cfg(budget=20, proposal_rule="any", objective="window", window_min=0.0,
                                      window_max=20.0), seeds["formula"], seeds["band_gap"])
    assert anyrule.step().rule_rejected == 0
    last = anyrule.rounds[-1]
    comp = compound_valid(last["formula"].where(last["valid"], None).to_numpy(dtype=object))
    assert (~comp & last["valid"]).any()  # the paper's rule labels non-compounds ...
    assert (last["in_window"] == (last["valid"] & comp)).all()  # ... but only compounds are hits
    with pytest.raises(CampaignError, match="proposal_rule"):
        CampaignConfig(proposal_rule="smact").validate()
