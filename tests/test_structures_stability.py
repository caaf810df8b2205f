"""Relaxation with a potential, fitted elemental references, formation energy, energy above hull."""
import json

import numpy as np
import pytest

from wbg_core.data import load_structures
from wbg_core.structures import stability
from wbg_core.structures.potentials import load_potential
from wbg_core.structures.substitute import substitute
from wbg_core.structures.templates import find_templates


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_reference_file_is_committed_and_complete():
    refs = stability.element_references()
    assert refs["fit_mae_eV_per_atom"] < 0.1
    pool = load_structures()
    from pymatgen.core import Element

    pool_elements = {Element.from_Z(int(z)).symbol for z in np.unique(pool.numbers)}
    # He occurs only in compounds without an MP formation energy: no reference can be fitted
    assert pool_elements - set(refs["elements"]) <= {"He"}
    with pytest.raises(stability.FormulaError, match="CHGNet 0.3.0 reference energy for \\['He'\\]"):
        stability.formation_energy_per_atom({"He": 1, "Na": 2}, -1.0, refs)
    assert all(v["n_compounds"] >= 1 for v in refs["elements"].values())


def test_relax_small_structure_in_seconds():
    template = find_templates("GaN", 1, exclude_formulas={"GaN"})[0]  # wurtzite AlN
    sub = substitute(template, "GaN")
    rel = load_potential("chgnet").relax(sub.structure, fmax=0.1, steps=100)
    assert rel.converged and 0 < rel.steps <= 100
    assert rel.seconds < 20
    assert rel.energy_per_atom <= rel.initial_energy_per_atom + 1e-6
    assert len(rel.structure) == len(sub.structure)
    # relaxed GaN cell: experimental wurtzite a = 3.19 A, CHGNet (PBE-like) a few % larger
    assert 3.1 < rel.structure.lattice.a < 3.35


@pytest.mark.parametrize("mp_id", ["mp-10694", "mp-27396", "mp-2165"])  # ScF3, NiCl2, SmZn
def test_formation_energy_of_mp_structures_matches_mp(mp_id):
    assert mp_id not in stability.element_references()["material_ids"]  # not used in the fit
    pool = load_structures()
    i = pool.index_of(mp_id)
    s = pool.structure(i)
    e = load_potential("chgnet").energies(s)[0]
    ef = stability.formation_energy_per_atom(s.composition, e, stability.element_references("chgnet"))
    mp = pool.meta["formation_energy_per_atom"].iloc[i]
    assert ef == pytest.approx(mp, abs=0.15)


def test_hull_of_a_known_stable_compound():
    hull = stability.energy_above_hull("ScF3", -4.319137)  # MP's own value: on the hull
    assert abs(hull["e_above_hull"]) < 1e-6
    hull = stability.energy_above_hull("ScF3", -3.0)
    assert hull["e_above_hull"] == pytest.approx(1.319137, abs=1e-5)
    assert hull["decomposition"] == {"ScF3": 1.0}
    hull = stability.energy_above_hull("Sc2F", 0.5)  # far above: decomposes to Sc + ScF3
    assert set(hull["decomposition"]) == {"Sc", "ScF3"} and hull["e_above_hull"] > 0.5
    # GaN's bundled row has no MP formation energy (matbench_mp_gap_max), but an MP structure: the
    # hull holds its CHGNet estimate (estimated_phases), so GaN near that energy is near the hull
    hull = stability.energy_above_hull("GaN", -0.6)
    assert hull["decomposition"] == {"GaN": 1.0} and 0 < hull["e_above_hull"] < 0.1
    # ErBr3's row has neither an energy nor a structure, and no other Er-Br compound is bundled:
    # the "hull" would be the bare elements, and a compound at -1 eV/atom would read 1 eV/atom below it
    with pytest.raises(ValueError, match="no Materials Project compound of the Br-Er system"):
        stability.energy_above_hull("ErBr3", -1.0)


def test_assess_applies_the_papers_rule():
    template = find_templates("ErBr3", 1, exclude_formulas={"ErBr3"})[0]
    final, st = stability.assess(substitute(template, "ErBr3").structure, load_potential("chgnet"), do_relax=False)
    assert st.formation_energy_per_atom < 0 and st.charge_neutral and st.compound_valid
    assert st.passes_paper_rule
    assert st.e_above_hull is None and any(n.startswith("no energy above the hull: no Materials Project compound")
                                           for n in st.warnings)
    assert json.dumps(st.to_dict())


def test_isolated_atoms_give_nan_not_a_crash():
    from pymatgen.core import Lattice, Structure

    s = Structure(Lattice.cubic(20.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    chgnet = load_potential("chgnet")
    assert np.isnan(chgnet.energies(s)[0])
    with pytest.raises(ValueError, match="no neighbour"):
        chgnet.relax(s)
    with pytest.raises(ValueError, match="CHGNet 0.3.0 cannot compute this structure's energy"):
        stability.assess(s, chgnet, do_relax=False)


def test_disordered_structure_cannot_be_relaxed():
    from pymatgen.core import Lattice, Structure

    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.6), [{"Na": 0.5, "K": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match="disordered"):
        load_potential("chgnet").relax(s)


@pytest.mark.parametrize("content", ["", "{not json", "[]"])
def test_damaged_reference_file_is_named(content, tmp_path, monkeypatch):
    from wbg_core import settings
    from wbg_core.structures import stability

    (tmp_path / stability.REFS_FILE).write_text(content)
    monkeypatch.setenv("WBG_MODELS_DIR", str(tmp_path))
    settings.get_settings.cache_clear()
    stability.element_references.cache_clear()
    try:
        with pytest.raises(ValueError, match=stability.REFS_FILE):
            stability.element_references()
    finally:
        settings.get_settings.cache_clear()
        stability.element_references.cache_clear()


def test_unknown_potential_is_named():
    with pytest.raises(ValueError, match=r"Unknown potential 'mace'.*chgnet, sevennet-0"):
        load_potential("mace")


def test_damaged_element_references_name_the_file_and_the_command(tmp_path, monkeypatch):
    """A truncated, non-object or emptied references file is refused with its path and the refit
    command (files.read_json_object), never read as no references."""
    from wbg_core import settings
    from wbg_core.structures import stability

    monkeypatch.setenv("WBG_MODELS_DIR", str(tmp_path))
    settings.get_settings.cache_clear()
    stability.element_references.cache_clear()
    path = tmp_path / stability.refs_file("chgnet")
    try:
        for text, says in (('{"elements": {"Na": -1.3', "is corrupt: "), ("[1, 2]", "holds a JSON list, not an object"),
                           ('{"elements": {}}', "holds no element references")):
            path.write_text(text)
            stability.element_references.cache_clear()
            with pytest.raises(ValueError, match=says) as err:
                stability.element_references("chgnet")
            assert str(path) in str(err.value) and "--fit-references --potential chgnet" in str(err.value)
    finally:
        settings.get_settings.cache_clear()
        stability.element_references.cache_clear()
