"""Element substitution: pairing rule, site counts, volume guess, sanity flags."""
import pytest

from wbg_core.data import load_structures
from wbg_core.structures.substitute import pair_elements, substitute, volume_ratio
from wbg_core.structures.templates import find_templates, reduce


@pytest.mark.parametrize("template, query, expected", [
    ({"Ba": 1, "Y": 1, "F": 5}, {"Sr": 1, "Y": 1, "F": 5}, {"Ba": "Sr", "Y": "Y", "F": "F"}),
    # same coefficient: matched in Pettifor order (alkaline earth to alkali, halide to halide)
    ({"Rb": 1, "Bi": 1, "F": 3}, {"Sr": 1, "Cl": 1, "F": 3}, {"Rb": "Sr", "Bi": "Cl", "F": "F"}),
    ({"Al": 1, "N": 1}, {"Ga": 1, "N": 1}, {"Al": "Ga", "N": "N"}),
    ({"Ba": 2, "Y": 1, "F": 7}, {"Sr": 2, "Y": 1, "F": 7}, {"Ba": "Sr", "Y": "Y", "F": "F"}),
    ({"Na": 1, "Cl": 1}, {"Cl": 1, "K": 1}, {"Na": "K", "Cl": "Cl"}),
])
def test_pairing_by_amount_then_pettifor(template, query, expected):
    assert pair_elements(template, query) == expected


def test_pairing_needs_same_number_of_elements():
    with pytest.raises(ValueError):
        pair_elements({"Na": 1, "Cl": 1}, {"Na": 1, "Cl": 1, "O": 1})


@pytest.mark.parametrize("formula", ["SrYF5", "GaN", "ZnO", "Sr2YF7", "CsPbBr3", "AlSCl"])
def test_substitution_preserves_sites_and_gives_the_formula(formula):
    template = find_templates(formula, 1, exclude_formulas={formula})[0]
    original = load_structures().structure(template.pool_index)
    sub = substitute(template, formula)
    assert len(sub.structure) == len(original)
    assert sub.exact and sub.result_formula == sub.formula
    assert reduce(sub.structure.composition.reduced_formula) == reduce(formula)
    assert sub.structure.volume == pytest.approx(original.volume * sub.volume_scale, rel=1e-6)
    # the frame is the template's: fractional coordinates unchanged
    assert abs(sub.structure.frac_coords - original.frac_coords).max() < 1e-9


@pytest.mark.parametrize("template, query, bigger", [
    ({"Al": 1, "N": 1}, {"Ga": 1, "N": 1}, True),  # Ga3+ is larger than Al3+
    ({"Ba": 1, "Y": 1, "F": 5}, {"Sr": 1, "Y": 1, "F": 5}, False),  # Sr2+ smaller than Ba2+
    ({"Na": 1, "Cl": 1}, {"K": 1, "I": 1}, True),
])
def test_volume_guess_follows_ionic_radii(template, query, bigger):
    from pymatgen.core import Composition

    from wbg_core.structures.substitute import _oxi_guess

    mapping = pair_elements(template, query)
    new = {mapping[e]: n for e, n in template.items()}
    r = volume_ratio(template, mapping, _oxi_guess(Composition(template)), _oxi_guess(Composition(new)))
    assert (r > 1) == bigger
    assert 0.5 < r < 2.0


def test_sanity_flags_for_an_unbalanced_formula():
    sub = substitute(find_templates("NaCl2", 1)[0], "NaCl2")
    assert not sub.charge_neutral and not sub.compound_valid
    assert any("charge" in w for w in sub.warnings)


def test_fallback_analogue_reports_the_formula_it_gives():
    template = find_templates("Na11Cl13", 1)[0]
    assert not template.exact
    sub = substitute(template, "Na11Cl13")
    assert not sub.exact
    assert sub.result_formula != "Na11Cl13"
    assert set(reduce(sub.result_formula)) == {"Na", "Cl"}
    assert any("fallback analogue" in w for w in sub.warnings)


def test_disordered_template_is_refused():
    from pymatgen.core import Lattice, Structure

    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.6), [{"Na": 0.5, "K": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match="disordered"):
        substitute(s, "NaCl")
