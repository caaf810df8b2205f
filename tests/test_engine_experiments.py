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
    res = run_experiment(cfg, CheckpointSet.shipped())
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
