import json
import subprocess
import sys

import numpy as np
import pytest

from wbg_core.engine.experiments import ExperimentConfig, run_experiment, save_result
from wbg_core.models.registry import CheckpointSet
from wbg_core.reports.experiments_doc import results_markdown, write_doc


@pytest.mark.parametrize("kw,match", [
    ({"name": "exp9"}, "unknown experiment"),
    ({"repeats": 0}, "repeats"),
    ({"models": ("svm",)}, "screening model"),
    ({"n_seeds": 1}, "2 seeds"),
])
def test_bad_experiment_config(kw, match):
    with pytest.raises(ValueError, match=match):
        ExperimentConfig(**kw).resolved()


def test_exp4_defaults_to_low_gap_seeds():
    cfg = ExperimentConfig(name="exp4").resolved()
    assert cfg.n_seeds == 300 and cfg.max_seed_gap == 3.0
    assert ExperimentConfig(name="exp2").resolved().n_seeds == 1000


@pytest.mark.slow
def test_one_small_repeat_end_to_end(tmp_path):
    cfg = ExperimentConfig(name="exp4", repeats=1, n_seeds=40, budget=20, batch_size=10, pool=60_000,
                           models=("rf",), test_limit=300, generator="gan")
    journal = tmp_path / "journal"
    res = run_experiment(cfg, CheckpointSet.shipped(), journal=journal)
    row = res["repeats"][0]
    assert row["seeds"] == 40 and row["seed_max_gap"] < 3.0
    assert 0 < row["valid_proposals"] <= 20 and row["proposals"] == 20
    for tag in ("bs", "al"):
        rec = row[f"rf_{tag}_recovery"]
        # NaN only when the small pool's Exp 1 list is empty
        assert (0 <= rec <= 1) if res["reference"]["list_size"] else np.isnan(rec)
        top_k = row[f"rf_{tag}_recovery_top_k"]
        if res["reference"]["list_size"] and row[f"rf_{tag}_list"] <= res["reference"]["list_size"]:
            assert rec <= top_k <= 1  # a list no longer than K lies inside the model's top K
        assert 0 < row[f"rf_{tag}_mae"] < 3
    assert res["summary"]["valid_proposals"][1] == 0.0  # one repeat: std 0
    save_result(res, tmp_path)
    md = results_markdown(tmp_path)
    assert "### exp4" in md and "valid AL proposals" in md and "Not run yet" in md
    doc = tmp_path / "experiments.md"
    doc.write_text("# Experiments\n\nhand-written notes\n")
    write_doc(doc, tmp_path)
    write_doc(doc, tmp_path)  # idempotent: the head is kept once
    text = doc.read_text()
    assert text.count("hand-written notes") == 1 and "RF AL recovery" in text
    json.dumps(res, default=float)
    # the finished repeat was kept: the same run again takes it from the journal, not from a new campaign
    said = []
    again = run_experiment(cfg, CheckpointSet.shipped(), journal=journal, progress_callback=lambda f, m: said.append(m))
    assert again["reference"]["repeats_from_journal"] == 1 and res["reference"]["repeats_from_journal"] == 0
    assert json.dumps(again["repeats"], default=float) == json.dumps(res["repeats"], default=float)
    assert any("kept from" in m for m in said)


def test_the_journal_keys_settings_and_checkpoints_and_names_a_damaged_repeat(tmp_path):
    from wbg_core.engine.experiment_journal import journal_dir, read_repeats, write_repeat

    models = CheckpointSet.shipped()
    cfg = ExperimentConfig(name="exp2", repeats=3).resolved()
    key = journal_dir(cfg, models, tmp_path)
    assert journal_dir(ExperimentConfig(name="exp2", repeats=10).resolved(), models, tmp_path) == key  # can grow
    assert journal_dir(ExperimentConfig(name="exp2", repeats=3, budget=500).resolved(), models, tmp_path) != key
    other = tmp_path / "other_models"
    for name in ("oracle", "gan", "autoencoder"):
        (other / name).mkdir(parents=True)
        (other / name / "config.json").write_bytes((models.path(name) / "config.json").read_bytes())
    assert journal_dir(cfg, CheckpointSet(other), tmp_path) == key  # the same checkpoints, elsewhere
    (other / "oracle" / "config.json").write_text("{}")  # another oracle: its repeats never mix in
    assert journal_dir(cfg, CheckpointSet(other), tmp_path) != key
    write_repeat(key, {"repeat": 0, "rf_bs_mae": 0.5, "rf_bs_recovery": float("nan")})
    write_repeat(key, {"repeat": 1, "rf_bs_mae": 0.6})
    (key / "repeat_001.json").write_text('{"repeat": 1, "rf_bs')  # killed mid-write by hand
    (key / "repeat_002.json").write_text('{"repeat": 7}')
    warned = []
    done = read_repeats(key, 3, warn=warned.append)
    assert list(done) == [0] and np.isnan(done[0]["rf_bs_recovery"])
    assert len(warned) == 2 and "repeat_001.json is damaged" in warned[0] and "repeat 1 runs again" in warned[0]
    assert "does not hold repeat 2" in warned[1]
