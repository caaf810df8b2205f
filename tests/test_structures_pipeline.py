"""The whole chain for one formula: template, substitution, CHGNet relaxation, provenance."""
import pytest

from wbg_core.structures import pipeline


def test_relaxed_candidate_with_provenance():
    import torch

    torch.set_num_threads(1)
    cands = pipeline.predict_structures("GaN", 1, relax=True, steps=100, exclude_formulas={"GaN"})
    (c,) = cands
    p = c.provenance
    assert p["template_formula"] == "AlN" and p["relaxed"] and p["relax_converged"]
    assert 0 < p["relax_steps"] <= 100
    assert p["spacegroup"] == 186  # wurtzite kept through substitution and relaxation
    assert p["formation_energy_per_atom"] < 0 and p["passes_paper_rule"]
    assert c.structure.composition.reduced_formula == "GaN"


def test_missing_oracle_is_a_warning_not_a_crash(monkeypatch):
    import sys
    import types

    fake = types.ModuleType("wbg_core.models.oracle")

    def load_oracle():
        raise FileNotFoundError("no checkpoint")

    fake.load_oracle = load_oracle
    monkeypatch.setitem(sys.modules, "wbg_core.models.oracle", fake)
    mean, std, note = pipeline.oracle_gap("GaN")
    assert mean is None and std is None and "unavailable" in note


def test_oracle_values_are_used(monkeypatch):
    import sys
    import types

    import pandas as pd

    class Oracle:
        def predict(self, formulas):
            return pd.DataFrame({"formula": formulas, "band_gap_mean": [3.1], "band_gap_std": [0.2], "error": [None]})

    fake = types.ModuleType("wbg_core.models.oracle")
    fake.load_oracle = lambda: Oracle()
    monkeypatch.setitem(sys.modules, "wbg_core.models.oracle", fake)
    (c,) = pipeline.predict_structures("GaN", 1)
    assert c.provenance["band_gap_mean"] == 3.1 and c.provenance["band_gap_std"] == 0.2


def test_other_exceptions_from_the_oracle_propagate(monkeypatch):
    import sys
    import types

    fake = types.ModuleType("wbg_core.models.oracle")

    def load_oracle():
        raise KeyboardInterrupt

    fake.load_oracle = load_oracle
    monkeypatch.setitem(sys.modules, "wbg_core.models.oracle", fake)
    with pytest.raises(KeyboardInterrupt):
        pipeline.oracle_gap("GaN")
