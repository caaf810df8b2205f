"""The whole chain for one formula: template, substitution, relaxation with a potential, energy ranking, provenance."""
import pytest

from wbg_core.structures import pipeline


def test_relaxed_candidate_with_provenance():
    import torch

    torch.set_num_threads(1)
    from wbg_core.structures.potentials import load_potential

    cands = pipeline.predict_structures("GaN", 1, potential=load_potential("chgnet"), relax=True, steps=100,
                                        exclude_formulas={"GaN"}, order="emd")
    (c,) = cands
    p = c.provenance
    assert p["template_formula"] == "AlN" and p["relaxed"] and p["relax_converged"]
    assert 0 < p["relax_steps"] <= 100
    assert p["spacegroup"] == 186  # wurtzite kept through substitution and relaxation
    assert p["formation_energy_per_atom"] < 0 and p["passes_paper_rule"]
    assert c.structure.composition.reduced_formula == "GaN"
    assert p["potential"] == "chgnet" and p["potential_label"] == "CHGNet 0.3.0"


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


def test_templates_ranked_by_relaxed_energy_keep_their_emd_rank():
    """GaN's nearest templates (GaN itself held out), relaxed and ordered by CHGNet energy per
    atom: energy ranks 1..k in energy order, the EMD rank kept, the gaps to the lowest >= 0."""
    import torch

    from wbg_core.structures.potentials import load_potential

    torch.set_num_threads(1)
    steps = []
    ranked = pipeline.predict_structures("GaN", 3, potential=load_potential("chgnet"), relax=True,
                                         rank_by_energy=True, energy_tolerance=0.0, steps=60,
                                         exclude_formulas={"GaN"}, order="emd",
                                         progress=lambda d, t: steps.append((d, t)))
    assert steps == [(1, 3), (2, 3), (3, 3)]
    prov = [c.provenance for c in ranked]
    assert [p["energy_rank"] for p in prov] == [1, 2, 3]
    energies = [p["energy_per_atom"] for p in prov]
    assert energies == sorted(energies) and len(set(energies)) == 3
    assert sorted(p["rank"] for p in prov) == [1, 2, 3]  # the EMD ranks, now in energy order
    assert prov[0]["energy_above_lowest"] == 0 and all(p["energy_above_lowest"] > 0 for p in prov[1:])
    assert all(p["relaxed"] for p in prov)


def test_relaxing_or_ranking_needs_a_potential():
    with pytest.raises(ValueError, match="needs a potential"):
        pipeline.predict_structures("GaN", 2, rank_by_energy=True)
    (c,) = pipeline.predict_structures("GaN", 1)  # templates only: fast, no energies, and it says so
    assert c.provenance["energy_per_atom"] is None
    assert any(w.startswith("energies not computed (no potential was chosen)") for w in c.provenance["warnings"])


def test_ranking_marks_templates_that_relax_into_one_structure():
    """A candidate that is the same structure as a better-ranked one says so (StructureMatcher),
    energies in energy order, other compositions after the ranked ones."""
    import copy

    cands = pipeline.predict_structures("NaKF2", 2, order="emd")  # KNaCl2 (R-3m), then KNaH2 (P4/mmm)
    twin = copy.deepcopy(cands[0])
    twin.structure.scale_lattice(twin.structure.volume * 1.02)  # the same structure, a little strained
    twin.provenance["rank"] = 3
    other = copy.deepcopy(cands[1])
    other.provenance["formula"] = "K2NaF3"  # a fallback analogue: another composition, not ranked
    for c, e in zip((cands[0], cands[1], twin), (-6.20, -6.30, -6.19)):
        c.provenance["energy_per_atom"] = e
    ranked = pipeline.rank_candidates([cands[0], cands[1], twin, other], "NaKF2")
    assert [c.provenance["energy_rank"] for c in ranked] == [1, 2, 3, None]
    assert [c.provenance["rank"] for c in ranked] == [2, 1, 3, 2]
    assert [c.provenance["same_structure_as"] for c in ranked[:3]] == [None, None, 2]
    assert ranked[2].provenance["energy_above_lowest"] == pytest.approx(0.11)
    assert any("another composition than KNaF2" in w for w in ranked[3].provenance["warnings"])


def test_energies_within_the_tolerance_are_a_tie_that_the_emd_order_breaks():
    """The app's ranking rule (structures.ranking.energy_order): 0 is energy alone; a tolerance
    wider than a gap keeps the EMD order there; missing energies last; bad settings refused."""
    from wbg_core.structures.ranking import energy_order, energy_tolerance

    e = [-6.20, -6.30, -6.19, None, float("nan")]
    assert energy_order(e, 0.0) == [1, 0, 2, 3, 4]
    assert energy_order(e, 0.05) == [1, 0, 2, 3, 4]  # -6.20 is 0.10 above -6.30: not a tie
    assert energy_order(e, 0.105) == [0, 1, 2, 3, 4]  # now it is, and EMD rank 1 wins it
    assert energy_order([-1.0, -1.0], 0.0) == [0, 1]  # an exact tie: EMD order
    assert energy_order([None], 0.1) == [0] and energy_order([], 0.1) == []
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        energy_order(e, -0.01)
    with pytest.raises(KeyError, match="no energy tolerance for potential 'mace'"):
        energy_tolerance("mace")
    from wbg_core.structures.potentials import POTENTIALS

    assert all(energy_tolerance(name) >= 0 for name in POTENTIALS)  # every selectable potential has one


def test_ranking_with_a_tolerance_keeps_the_nearest_template_on_a_near_tie():
    cands = pipeline.predict_structures("NaKF2", 2, order="emd")
    for c, e in zip(cands, (-6.20, -6.23)):
        c.provenance["energy_per_atom"] = e
    ranked = pipeline.rank_candidates(cands, "NaKF2", tolerance=0.05)
    assert [c.provenance["rank"] for c in ranked] == [1, 2]  # 0.03 eV/atom apart: a tie, EMD decides
    assert [c.provenance["energy_rank"] for c in ranked] == [1, 2]
    assert ranked[0].provenance["energy_above_lowest"] == pytest.approx(0.03)
    assert ranked[0].provenance["energy_tolerance"] == 0.05
    energy_first = pipeline.rank_candidates(cands, "NaKF2", tolerance=0.0)
    assert [c.provenance["rank"] for c in energy_first] == [2, 1]
    # re-ranking an energy-ordered list (what the page does on a new tolerance) starts from the EMD order
    assert [c.provenance["rank"] for c in pipeline.rank_candidates(energy_first, "NaKF2", tolerance=0.05)] == [1, 2]


def test_the_vote_settles_a_tie_at_the_nearest_distance():
    """Rb2ZnI4 with its own structures held out: the nearest templates are a tie in EMD, and the one
    the alphabet puts first is another structure type than most of the ten nearest. The vote puts
    the shared type first, and that one is MP's Rb2ZnI4 (StructureMatcher); order="emd" keeps the
    paper's pick, which is not."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from wbg_core.data import load_structures
    from wbg_core.structures.templates import template_index

    ix, pool = template_index(), load_structures()
    real = pool.structure(ix.members[list(ix.formulas).index("Rb2ZnI4")][0])  # the most stable polymorph
    (voted,) = pipeline.predict_structures("Rb2ZnI4", 1, exclude_formulas={"Rb2ZnI4"})
    (nearest,) = pipeline.predict_structures("Rb2ZnI4", 1, exclude_formulas={"Rb2ZnI4"}, order="emd")
    v, n = voted.provenance, nearest.provenance
    assert n["rank"] == 1 and v["rank"] > 1 and v["emd"] == n["emd"]  # a tie at the nearest distance
    assert v["vote_rank"] == 1 and v["vote_share"] > 0.5 > n["vote_share"]
    matcher = StructureMatcher()
    assert matcher.fit(voted.structure, real) and not matcher.fit(nearest.structure, real)


def test_vote_weights_and_order():
    """Weights exp(-(d - nearest)/decay) pooled per structure type; one template of each type first."""
    import math

    from wbg_core.structures.ranking import vote_order, vote_weights

    emds, groups = [0.1, 0.2, 0.2, 0.3, 0.5], [0, 1, 1, 1, 4]
    w = [math.exp(-(d - 0.1) / 0.15) for d in emds]
    share = vote_weights(emds, groups, 0.15)
    assert share[1] == share[2] == share[3] == pytest.approx((w[1] + w[2] + w[3]) / sum(w))
    assert share[0] == pytest.approx(w[0] / sum(w)) and sum(set(share)) == pytest.approx(1.0)
    assert vote_order(emds, groups, 0.15) == [1, 0, 4, 2, 3]  # the heavier type's nearest first
    assert vote_order(emds, groups, 0.01) == [0, 1, 4, 2, 3]  # a sharp decay is the EMD order
    assert vote_order([], [], 0.15) == [] and vote_weights([], []) == []
    with pytest.raises(ValueError, match="decay must be > 0"):
        vote_weights(emds, groups, 0.0)
    with pytest.raises(ValueError, match="unknown template order 'energy'"):
        pipeline.predict_structures("GaN", 1, order="energy")
