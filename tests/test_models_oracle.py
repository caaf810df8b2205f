from dataclasses import replace

import json

import numpy as np
import pytest
import torch

from wbg_core.models import ModelError, load_oracle
from wbg_core.composition.featurize import embedding_table, featurise
from wbg_core.models.oracle import OracleConfig, RoostGap, load, robust_l1
from wbg_core.models.oracle_training import train
from wbg_core.models.training import pick_device


def test_featurise_takes_formulas_the_matrix_cannot_hold():
    z, w, errors = featurise(["Rb2Fe2(SO4)3", "NaCl", "Xx", "Fe9O"])
    assert errors[0] is None and errors[3] is None
    assert np.isclose(w[0].sum(), 1.0)
    assert "not an element" in errors[2]


def test_member_is_permutation_invariant():
    torch.manual_seed(0)
    net = RoostGap(torch.from_numpy(embedding_table())).eval()
    z, w, _ = featurise(["SrYF5", "F5YSr"])
    out = net(torch.from_numpy(z[:, :3]), torch.from_numpy(w[:, :3]))
    assert torch.allclose(out[0], out[1], atol=1e-5)


def test_a_few_steps_reduce_the_robust_loss(bandgaps):
    torch.manual_seed(0)
    rows = bandgaps.iloc[:512]
    z, w, _ = featurise(rows["formula"])
    m = int((z > 0).sum(1).max())
    zt, wt = torch.from_numpy(z[:, :m]), torch.from_numpy(w[:, :m])
    y = torch.from_numpy(rows["band_gap"].to_numpy(np.float32))
    net = RoostGap(torch.from_numpy(embedding_table()))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    first = robust_l1(net(zt, wt), y).item()
    for _ in range(40):
        loss = robust_l1(net(zt, wt), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert robust_l1(net(zt, wt), y).item() < first - 0.3


def test_tiny_training_writes_a_loadable_checkpoint(tmp_path):
    card = train(tmp_path, OracleConfig(members=2, epochs=1), pick_device("cpu"), limit=400)
    oracle = load(tmp_path)
    assert len(oracle.members) == 2
    pred = oracle.predict(["NaCl", "bad formula!"]).frame()
    assert pred["band_gap_mean"].iloc[0] >= 0 and np.isnan(pred["band_gap_mean"].iloc[1])
    assert "unexpected character" in pred["error"].iloc[1]
    assert oracle.head is not None and 0 <= pred["p_nonmetal"].iloc[0] <= 1
    m = card["metrics"]
    assert m["sample"]["n"] == 400 and len(m["by_predicted_gap"]) == 6 and len(m["windows"]) == 5
    assert card["ensemble_alone"]["test_full"]["n"] == 400


def test_shipped_oracle_matches_its_card_on_the_whole_test_split(bandgaps):
    from wbg_core.models.oracle_eval import evaluate_model, model_predictor

    oracle = load_oracle()
    card = oracle.card
    m, frame = evaluate_model(model_predictor(oracle), bandgaps, split_seed=card["seed"])
    assert m["sample"]["n"] == card["metrics"]["sample"]["n"] == len(frame) > 17_000
    assert m["test_full"]["mae"] == pytest.approx(card["metrics"]["test_full"]["mae"], abs=1e-4)
    for ours, theirs in zip(m["by_predicted_gap"], card["metrics"]["by_predicted_gap"]):
        assert ours["n"] == theirs["n"] and ours["within_1_sigma"] == pytest.approx(theirs["within_1_sigma"], abs=1e-3)


def test_shipped_oracle_is_a_real_model():
    # The MAE targets are judged in bench_models; here: far better than predicting the mean.
    m = load_oracle().card["metrics"]
    assert m["test_full"]["r2"] > 0.6
    assert 0.5 < m["test_full"]["within_2_sigma"] <= 1.0


@pytest.mark.parametrize("formula, low, high", [("LiF", 4.0, 14.0), ("CaF2", 4.0, 14.0), ("Cu", 0.0, 0.3), ("Si", 0.0, 1.5)])
def test_shipped_oracle_knows_classic_compounds(formula, low, high):
    pred = load_oracle().predict([formula]).frame()
    assert low <= pred["band_gap_mean"].iloc[0] <= high
    assert pred["band_gap_std"].iloc[0] > 0


def test_corrupt_oracle_checkpoint_is_named(tmp_path):
    (tmp_path / "config.json").write_text('{"class": "RoostGapEnsemble", "members": 1, "kwargs": {}}')
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ModelError, match="model.safetensors"):
        load(tmp_path)


def test_members_trained_in_separate_runs_assemble_to_the_same_ensemble(tmp_path):
    cfg = OracleConfig(members=2, epochs=1)
    whole = train(tmp_path / "whole", cfg, pick_device("cpu"), limit=300)
    for k in (1, 0):  # any order, as parallel processes would finish
        part = train(tmp_path / "parts", cfg, pick_device("cpu"), limit=300, only_member=k)
        assert part["member"] == k and part["epochs"] == 1
    assert not (tmp_path / "parts" / "model.safetensors").exists()  # nothing assembled yet
    assembled = train(tmp_path / "parts", cfg, pick_device("cpu"), limit=300)
    assert assembled["history"] == whole["history"]
    a, b = load(tmp_path / "whole"), load(tmp_path / "parts")
    for ma, mb in zip(a.members, b.members):
        for (k, va), (_, vb) in zip(ma.state_dict().items(), mb.state_dict().items()):
            assert torch.equal(va, vb), k


def test_a_member_outside_the_ensemble_is_refused(tmp_path):
    with pytest.raises(ModelError, match="member 5 is out of range"):
        train(tmp_path, OracleConfig(members=5, epochs=1), pick_device("cpu"), limit=100, only_member=5)
    with pytest.raises(ModelError, match="member 7 is out of range: the ensemble has members 0-6"):
        train(tmp_path, OracleConfig(members=5, epochs=1), pick_device("cpu"), limit=100, only_member=7,
              nonmetal_members=2)


def test_nonmetal_members_learn_only_non_metals_and_feed_the_head(tmp_path, bandgaps):
    from wbg_core.data import split

    cfg = OracleConfig(members=1, epochs=1)
    card = train(tmp_path / "a", cfg, pick_device("cpu"), limit=300, nonmetal_members=2)
    oracle = load(tmp_path / "a")
    assert len(oracle.members) == 1 and len(oracle.nonmetal_members) == 2
    assert card["hyper_parameters"]["nonmetal_members"] == 2
    # each non-metal member's validation MAE is on the gap > 0 rows of the validation split
    val_nm = split(bandgaps, seed=0, subset="nonmetal")["val"].iloc[:300]
    member = oracle.nonmetal_members[0]
    z, w, _ = featurise(val_nm["formula"])
    with torch.no_grad():
        pred = member(torch.from_numpy(z), torch.from_numpy(w))[:, 0].clamp(min=0).numpy()
    mae = float(np.abs(pred - val_nm["band_gap"].to_numpy()).mean())
    assert min(h["val_mae"] for h in card["history"][1]) == pytest.approx(mae, abs=1e-4)
    # the head reads 2 x (1 + 2) member columns before the descriptor
    assert oracle.head.calibration["classifier_first_column"] == 6 + oracle.descriptor_len
    e = oracle.ensemble_outputs(z[:5], w[:5])
    assert e.nonmetal_means.shape == (2, 5) and np.allclose(e.nonmetal_means[0], member(
        torch.from_numpy(z[:5]), torch.from_numpy(w[:5]))[:, 0].detach().numpy(), atol=1e-5)
    # the full member taken from that checkpoint, only the non-metal members trained anew
    card_b = train(tmp_path / "b", cfg, pick_device("cpu"), limit=300, nonmetal_members=1, init_from=tmp_path / "a")
    b = load(tmp_path / "b")
    assert card_b["full_members_from"]["directory"] == str(tmp_path / "a") and len(card_b["history"]) == 1
    for (k, va), (_, vb) in zip(oracle.members[0].state_dict().items(), b.members[0].state_dict().items()):
        assert torch.equal(va, vb), k
    with pytest.raises(ModelError, match="are not the 2 of"):
        train(tmp_path / "c", OracleConfig(members=2, epochs=1), pick_device("cpu"), limit=300, init_from=tmp_path / "a")
    # the other way round: the non-metal members taken from it, only the full member trained anew
    cfg_c = replace(cfg, seed=1)
    card_c = train(tmp_path / "c", cfg_c, pick_device("cpu"), limit=300, nonmetal_members=2, nonmetal_from=tmp_path / "a")
    c = load(tmp_path / "c")
    assert card_c["nonmetal_members_from"]["directory"] == str(tmp_path / "a") and len(card_c["history"]) == 1
    assert len(c.nonmetal_members) == 2 and "nonmetal_kwargs" not in c.config
    for mine, theirs in zip(c.nonmetal_members, oracle.nonmetal_members):
        for (k, va), (_, vb) in zip(theirs.state_dict().items(), mine.state_dict().items()):
            assert torch.equal(va, vb), k
    assert not torch.equal(next(iter(c.members[0].parameters())), next(iter(oracle.members[0].parameters())))
    with pytest.raises(ModelError, match="holds 2 non-metal members, this run asks for 1"):
        train(tmp_path / "d", cfg_c, pick_device("cpu"), limit=300, nonmetal_members=1, nonmetal_from=tmp_path / "a")
    with pytest.raises(ModelError, match="this run trains the full members 0-0"):
        train(tmp_path / "d", cfg_c, pick_device("cpu"), limit=300, nonmetal_members=2, nonmetal_from=tmp_path / "a",
              only_member=1)
    with pytest.raises(ModelError, match="give one"):
        train(tmp_path / "d", cfg_c, pick_device("cpu"), limit=300, nonmetal_members=2, nonmetal_from=tmp_path / "a",
              init_from=tmp_path / "a")


def test_pretraining_learns_formation_energies_of_train_and_val_only_then_starts_the_gap_stage(tmp_path, bandgaps):
    import json

    from wbg_core.data import split
    from wbg_core.models.checkpoint import load_tensors
    from wbg_core.models.oracle_training import _formation_features

    parts = split(bandgaps, seed=0)
    feats = _formation_features(bandgaps, OracleConfig(), limit=None)
    assert set(feats) == {"train", "val"}  # no test formula's energy
    assert len(feats["train"][2]) == parts["train"]["formation_energy_per_atom"].notna().sum() > 45_000
    assert np.isfinite(feats["val"][2]).all()

    cfg = OracleConfig(members=1, epochs=1, pretrain_epochs=2)
    train(tmp_path / "pre", cfg, pick_device("cpu"), limit=300, nonmetal_members=1, with_head=False)
    state_dir = tmp_path / "pre" / "nonmetal_member_0" / "pretrain" / "train_state"
    meta = json.loads((state_dir / "state.json").read_text())
    assert meta["epoch"] == 2 and meta["signature"]["stage"] == "formation energy"
    # the pre-training's best validation MAE is on formation energies (eV/atom), not gaps
    best = {k[len("best."):]: v for k, v in load_tensors(state_dir / "state.safetensors").items() if k.startswith("best.")}
    net = RoostGap(torch.from_numpy(embedding_table()), heads=cfg.heads, hidden=cfg.hidden)
    net.load_state_dict(best)
    val = parts["val"].dropna(subset=["formation_energy_per_atom"]).iloc[:300]
    z, w, _ = featurise(val["formula"])
    with torch.no_grad():
        pred = net(torch.from_numpy(z), torch.from_numpy(w))[:, 0].numpy()
    mae = float(np.abs(pred - val["formation_energy_per_atom"].to_numpy()).mean())
    assert meta["best"] == pytest.approx(mae, abs=1e-4)
    # the gap stage starts from those weights: its members differ from ones trained from random weights
    train(tmp_path / "plain", OracleConfig(members=1, epochs=1), pick_device("cpu"), limit=300, nonmetal_members=1,
          with_head=False)
    pre, plain = load(tmp_path / "pre", with_head=False), load(tmp_path / "plain", with_head=False)
    assert not torch.equal(pre.members[0].embed.weight, plain.members[0].embed.weight)
    assert not torch.equal(pre.nonmetal_members[0].embed.weight, plain.nonmetal_members[0].embed.weight)
    assert json.loads((tmp_path / "pre" / "config.json").read_text())["train"]["pretrain_epochs"] == 2


def test_weights_with_a_nonmetal_member_the_config_does_not_name_are_refused(tmp_path):
    import json
    import shutil

    train(tmp_path / "a", OracleConfig(members=1, epochs=1), pick_device("cpu"), limit=200, nonmetal_members=1)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    cfg["nonmetal_members"] = 0
    (tmp_path / "b" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="1 members, 0 non-metal members.*nonmetal_member_0"):
        load(tmp_path / "b", with_head=False)


def test_a_nonmetal_member_never_trains_an_unfinished_full_member(tmp_path):
    """With --nonmetal-from-full, `--member K` for a non-metal member reads full member K's finished
    resume state. A state that another process may still be writing, or one saved with other
    settings, is refused by name and left as it is: two processes never write one state."""
    cpu = pick_device("cpu")
    one = OracleConfig(members=1, epochs=1, nonmetal_from_full=True)
    train(tmp_path, one, cpu, limit=300, nonmetal_members=1, only_member=0)
    state = tmp_path / "member_0" / "train_state" / "state.json"
    before = state.read_bytes()
    with pytest.raises(ModelError, match=r"oracle member 1 is not finished: .*member_0 holds 0 of its 2 epochs"):
        train(tmp_path, replace(one, epochs=2), cpu, limit=300, nonmetal_members=1, only_member=1)
    assert state.read_bytes() == before
    done = train(tmp_path, one, cpu, limit=300, nonmetal_members=1, only_member=1)
    assert done["kind"] == "nonmetal_member" and done["epochs"] == 1
    assert state.read_bytes() == before


def test_nonmetal_members_can_start_from_the_full_members(tmp_path):
    import json

    cpu = pick_device("cpu")
    flagged = OracleConfig(members=1, epochs=1, nonmetal_from_full=True)
    with pytest.raises(ModelError, match="train it first"):
        train(tmp_path / "d", flagged, cpu, limit=300, nonmetal_members=1, only_member=1)
    train(tmp_path / "a", OracleConfig(members=1, epochs=1), cpu, limit=300, with_head=False)
    full = load(tmp_path / "a", with_head=False).members[0]
    # at a learning rate of 1e-9 a member stays where it starts: at the full member with the flag
    still = OracleConfig(members=1, epochs=1, lr=1e-9)
    for name, cfg in (("b", replace(still, nonmetal_from_full=True)), ("c", still)):
        train(tmp_path / name, cfg, cpu, limit=300, nonmetal_members=1, init_from=tmp_path / "a", with_head=False)

    def distance(x, y):
        return sum(float((p - q).detach().norm()) for p, q in zip(x.parameters(), y.parameters()))
    assert distance(load(tmp_path / "b", with_head=False).nonmetal_members[0], full) < 1e-3
    assert distance(load(tmp_path / "c", with_head=False).nonmetal_members[0], full) > 0.1
    state = json.loads((tmp_path / "b" / "nonmetal_member_0" / "train_state" / "state.json").read_text())
    assert state["signature"]["nonmetal_from_full"] is True and len(state["signature"]["start"]) == 64
    assert not (tmp_path / "b" / "nonmetal_member_0" / "pretrain").exists()
    # in one run: the flag leaves the full member as it is without it (its resume state lacks the flag,
    # so the states saved before the flag existed still resume)
    train(tmp_path / "d", flagged, cpu, limit=300, nonmetal_members=1, with_head=False)
    for (k, va), (_, vb) in zip(load(tmp_path / "d", with_head=False).members[0].state_dict().items(),
                                full.state_dict().items()):
        assert torch.equal(va, vb), k
    assert "nonmetal_from_full" not in json.loads(
        (tmp_path / "d" / "member_0" / "train_state" / "state.json").read_text())["signature"]
    with pytest.raises(ModelError, match="not with --nonmetal-from"):
        train(tmp_path / "e", flagged, cpu, limit=300, nonmetal_members=1, nonmetal_from=tmp_path / "d")


def test_the_head_learns_on_validation_with_out_of_fold_calibration(tmp_path, bandgaps):
    """Cross-fitted on the validation split, the regressor's σ and window distribution must come
    from out-of-fold predictions: the fold boosters together have seen every validation non-metal.
    The shown gap is the mean of k fold regressors, P(non-metal) that of k stacked classifiers."""
    from wbg_core.data import split
    from wbg_core.models.forest import statistics_with_ionic
    from wbg_core.models.oracle_head import head_features, regressor_start
    from wbg_core.models.oracle_head_fit import HeadConfig
    from wbg_core.models.oracle_training import calibrate

    train(tmp_path, OracleConfig(members=1, epochs=1), pick_device("cpu"), limit=300, nonmetal_members=1, with_head=False)
    calibrate(tmp_path, HeadConfig(regressor_rounds=30, folds=3), limit=300)
    oracle = load(tmp_path)
    head, cal = oracle.head, oracle.head.calibration
    assert cal["regressor_fit_on"] == cal["classifier_fit_on"] == "validation" and cal["regressor_rounds"] >= 1
    assert len(head.regressors) == len(head.stack) == 3 and cal["point"] == "mean"
    files = json.loads((tmp_path / "config.json").read_text())["head"]["files"]
    assert {"head_gap.2.lgb.txt.gz", "head_nonmetal_stack.2.lgb.txt.gz"} <= set(files)
    assert "head_gap.lgb.txt.gz" not in files
    val = split(bandgaps, seed=0, subset="full")["val"].iloc[:300]
    val = val[val["band_gap"] > 0]
    z, w, _ = featurise(val["formula"])
    detail = oracle.predict_detail(z, w)
    gap = detail["gap_if_nonmetal"].astype(np.float64)
    x = head_features(oracle.ensemble_outputs(z, w), statistics_with_ionic(z, w))
    by_hand = np.mean([b.predict(x) for b in head.regressors], axis=0) + regressor_start(x, cal)
    assert np.allclose(gap, np.clip(by_hand, 0, None), atol=1e-5)
    in_sample = float(np.abs(gap - val["band_gap"].to_numpy()).mean())
    assert in_sample < cal["regressor_out_of_fold_mae"], (in_sample, cal["regressor_out_of_fold_mae"])
    # and σ was scaled on those wider out-of-fold residuals, not on the boosters' own
    from wbg_core.models.oracle_head_fit import conformal_scales
    own = conformal_scales(gap, oracle.ensemble_outputs(z, w).regressor_std(), val["band_gap"].to_numpy())
    assert np.mean(cal["regressor_scales"]) > np.mean(own), (cal["regressor_scales"], own)
    # the point prediction is P x the mean of the gap's distribution, not x its median
    assert not np.allclose(detail["mean"], detail["p_nonmetal"] * detail["gap_if_nonmetal"], atol=1e-3)
    with pytest.raises(ValueError, match="regressor_fit_on must be 'train' or 'validation'"):
        calibrate(tmp_path, HeadConfig(regressor_fit_on="test"), limit=300)
    with pytest.raises(ValueError, match="folds must be at least 2"):
        calibrate(tmp_path, HeadConfig(folds=1), limit=300)
    assert load(tmp_path).head.calibration == cal  # the refused fit left the head as it was
