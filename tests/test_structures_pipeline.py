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


def test_the_gap_comes_from_the_oracle_the_caller_gives():
    """The pipeline loads no model itself: the gap in the provenance is the given oracle's (the
    app passes the checkpoint set chosen on the Models page), and without one there is none."""
    from wbg_core.models import load_oracle

    oracle = load_oracle()
    expected = oracle.predict(["GaN"]).frame().iloc[0]
    (c,) = pipeline.predict_structures("GaN", 1, oracle=oracle)
    assert c.provenance["band_gap_mean"] == pytest.approx(float(expected["band_gap_mean"]))
    assert c.provenance["band_gap_std"] == pytest.approx(float(expected["band_gap_std"]))
    (bare,) = pipeline.predict_structures("GaN", 1)
    assert bare.provenance["band_gap_mean"] is None


def test_no_oracle_or_an_oracle_error_is_a_note_not_a_crash():
    """Without a model, or when the shipped oracle refuses the formula, the structure is kept
    without a gap and the note says why."""
    from wbg_core.models import load_oracle

    mean, std, note = pipeline.oracle_gap("GaN", None)
    assert mean is None and std is None and "no band-gap model" in note
    mean, std, note = pipeline.oracle_gap("Xx2", load_oracle())
    assert mean is None and std is None and note.startswith("oracle:")
