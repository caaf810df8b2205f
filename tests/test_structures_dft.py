"""DFT inputs: VASP (MPRelaxSet) and Quantum ESPRESSO (ASE, SSSP) files read back to the same structure;
bad structures refused before anything is written."""
import json

import numpy as np
import pytest

from wbg_core.data import load_structures
from wbg_core.structures.dft import (FILES, MIN_DISTANCE, DFTInputError, sssp_table, write_dft_inputs)


@pytest.fixture(scope="module")
def pool():
    return load_structures()


def _nacl():
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _qe_namelists(path):
    from ase.io.espresso import read_fortran_namelist

    with open(path) as fd:
        data, cards = read_fortran_namelist(fd)
    return data, cards


@pytest.mark.parametrize("mp_id, potcars", [("mp-22862", ["Na_pv", "Cl"]), ("mp-804", ["Ga_d", "N"]),
                                            ("mp-752675", ["Ba_sv", "Y_sv", "F"])])
def test_vasp_files_parse_back_to_the_structure(pool, tmp_path, mp_id, potcars):
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.io.vasp import Incar, Kpoints, Poscar

    s = pool.structure(pool.index_of(mp_id))
    files = write_dft_inputs(s, tmp_path / "dft", provenance={"formula": s.composition.reduced_formula})
    assert set(files) == set(FILES) and all(p.is_file() for p in files.values())
    assert files["POSCAR"] == tmp_path / "dft" / "vasp" / "POSCAR"
    assert files["pw.in"] == tmp_path / "dft" / "qe" / "pw.in"
    back = Poscar.from_file(files["POSCAR"]).structure
    assert np.allclose(back.lattice.matrix, s.lattice.matrix, atol=1e-6)  # the same cell, not a reduced one
    assert back.composition == s.composition
    assert StructureMatcher().fit(back, s)
    incar = Incar.from_file(files["INCAR"])
    assert incar["ISIF"] == 3 and incar["ENCUT"] == 520 and incar["IBRION"] == 2  # MPRelaxSet's relaxation
    kp = Kpoints.from_file(files["KPOINTS"])
    assert list(kp.kpts[0]) == list(Kpoints.automatic_density(s, 1000).kpts[0])
    assert files["POTCAR.spec"].read_text().split() == potcars
    assert not (tmp_path / "dft" / "vasp" / "POTCAR").exists()  # licensed, never shipped
    assert [p.name for p in (tmp_path / "dft").iterdir() if p.name.startswith(".")] == []  # no temporary left


@pytest.mark.parametrize("mp_id", ["mp-22862", "mp-804", "mp-752675"])
def test_qe_input_reads_back_with_ase(pool, tmp_path, mp_id):
    import ase.io
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.io.ase import AseAtomsAdaptor

    s = pool.structure(pool.index_of(mp_id))
    files = write_dft_inputs(s, tmp_path, kpoint_density=1000)
    atoms = ase.io.read(files["pw.in"], format="espresso-in")
    assert np.allclose(atoms.cell[:], s.lattice.matrix, atol=1e-6)
    assert sorted(atoms.get_chemical_symbols()) == sorted(site.specie.symbol for site in s)
    assert StructureMatcher().fit(AseAtomsAdaptor.get_structure(atoms), s)
    data, cards = _qe_namelists(files["pw.in"])
    table = sssp_table()
    elements = {el.symbol for el in s.composition.elements}
    assert data["system"]["ecutwfc"] == max(table[e]["cutoff_wfc"] for e in elements)
    assert data["system"]["ecutrho"] == max(table[e]["cutoff_rho"] for e in elements)
    assert data["control"]["calculation"] == "vc-relax"
    species = cards[cards.index("ATOMIC_SPECIES") + 1: cards.index("ATOMIC_SPECIES") + 1 + len(elements)]
    assert {line.split()[0]: line.split()[2] for line in species} == {e: table[e]["filename"] for e in elements}
    kline = cards[cards.index("K_POINTS automatic") + 1].split()
    assert [int(n) for n in kline[:3]] == [int(n) for n in files["KPOINTS"].read_text().split("\n")[3].split()]


def test_gan_cutoffs_are_the_largest_of_its_elements(pool, tmp_path):
    files = write_dft_inputs(pool.structure(pool.index_of("mp-804")), tmp_path)
    data, _ = _qe_namelists(files["pw.in"])
    assert (data["system"]["ecutwfc"], data["system"]["ecutrho"]) == (70.0, 560.0)  # Ga 70/560 beats N 60/480


def test_monkhorst_grid_is_shifted_in_pw_x_too(pool, tmp_path):
    """An all-even Monkhorst-Pack grid misses Gamma in VASP: pw.x gets the same points by a half-step offset."""
    from pymatgen.io.vasp import Kpoints

    s = pool.structure(pool.index_of("mp-2657"))  # TiO2: 4 x 4 x 4 Monkhorst-Pack at 1000 per reciprocal atom
    files = write_dft_inputs(s, tmp_path)
    kp = Kpoints.from_file(files["KPOINTS"])
    assert str(kp.style).lower().endswith("monkhorst") and list(kp.kpts[0]) == [4, 4, 4]
    _, cards = _qe_namelists(files["pw.in"])
    assert cards[cards.index("K_POINTS automatic") + 1].split() == ["4", "4", "4", "1", "1", "1"]
    nacl = write_dft_inputs(_nacl(), tmp_path / "nacl")  # fcc: Gamma-centred, no offset
    _, cards = _qe_namelists(nacl["pw.in"])
    assert cards[cards.index("K_POINTS automatic") + 1].split()[3:] == ["0", "0", "0"]


def test_kpoint_density_is_used(pool, tmp_path):
    from pymatgen.io.vasp import Kpoints

    s = pool.structure(pool.index_of("mp-22862"))
    coarse = Kpoints.from_file(write_dft_inputs(s, tmp_path / "a", kpoint_density=100)["KPOINTS"]).kpts[0]
    fine = Kpoints.from_file(write_dft_inputs(s, tmp_path / "b", kpoint_density=5000)["KPOINTS"]).kpts[0]
    assert all(c < f for c, f in zip(coarse, fine))


def test_no_potcar_directory_needed(pool, tmp_path, monkeypatch):
    from pymatgen.core import SETTINGS

    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.delitem(SETTINGS, "PMG_VASP_PSP_DIR", raising=False)
    files = write_dft_inputs(pool.structure(pool.index_of("mp-22862")), tmp_path)
    assert files["POTCAR.spec"].read_text().split() == ["Na_pv", "Cl"]


def test_readme_has_the_provenance_and_the_licence_note(pool, tmp_path):
    s = pool.structure(pool.index_of("mp-752675"))
    prov = {"formula": "SrYF5", "template_id": "mp-752675", "template_formula": "BaYF5", "template_spacegroup": 15,
            "emd": 0.142857, "substitution": {"Ba": "Sr", "Y": "Y", "F": "F"}, "relaxed": True, "relax_steps": 23,
            "relax_converged": True, "relax_seconds": 3.1, "formation_energy_per_atom": -4.366, "e_above_hull": -0.001,
            "warnings": ["a note"]}
    text = write_dft_inputs(s, tmp_path, provenance=prov)["README.md"].read_text()
    for piece in ("mp-752675", "BaYF5", "Element Mover's Distance 0.1429", "Ba -> Sr", "CHGNet", "23 steps",
                  "formation energy -4.366", "energy above the MP hull -0.001", "POTCAR.spec",
                  "may not be redistributed",
                  "SSSP 1.3.0 PBE efficiency", "f_pbe_v1.4.uspp.F.UPF", "Warning: a note"):
        assert piece in text, piece
    block = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(block)["template_id"] == "mp-752675"


def _overlapping():
    s = _nacl()
    s.append("Na", s[4].coords + np.array([0.3, 0.0, 0.0]), coords_are_cartesian=True)  # 0.3 A from a Cl
    return s


def _coincident():
    s = _nacl()
    s.append("Cl", s[0].frac_coords)  # on top of a Na
    return s


@pytest.mark.parametrize("make, message", [
    (_overlapping, f"0.300 A apart, closer than {MIN_DISTANCE} A"),
    (_coincident, "0.000 A apart"),
])
def test_overlapping_atoms_are_refused_before_writing(tmp_path, make, message):
    folder = tmp_path / "dft"
    with pytest.raises(DFTInputError, match="overlapping atoms") as err:
        write_dft_inputs(make(), folder)
    assert message in str(err.value)
    assert not folder.exists()


def test_cell_smaller_than_an_atom_is_refused(tmp_path):
    from pymatgen.core import Lattice, Structure

    with pytest.raises(DFTInputError, match="own periodic image"):
        write_dft_inputs(Structure(Lattice.tetragonal(0.4, 5.0), ["Na"], [[0, 0, 0]]), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_element_without_sssp_data_is_named(tmp_path):
    from pymatgen.core import Lattice, Structure

    s = Structure(Lattice.cubic(4.0), ["Rf", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # Z = 104, past the table
    with pytest.raises(DFTInputError, match=r"no SSSP 1\.3\.0 PBE efficiency pseudopotential for Rf"):
        write_dft_inputs(s, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_element_without_mp_potcar_is_named(tmp_path):
    from pymatgen.core import Lattice, Structure

    s = Structure(Lattice.cubic(3.4), ["Pb", "Po"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # Po: in SSSP, not in MP's set
    with pytest.raises(DFTInputError, match="MPRelaxSet has no POTCAR choice for Po"):
        write_dft_inputs(s, tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("density", [0, -5, float("nan"), float("inf"), "many"])
def test_bad_kpoint_density(tmp_path, density):
    with pytest.raises(DFTInputError, match="k-point density"):
        write_dft_inputs(_nacl(), tmp_path / "x", kpoint_density=density)
    assert not (tmp_path / "x").exists()


def test_disordered_structure_is_refused(tmp_path):
    s = _nacl()
    s.replace_species({"Na": {"Na": 0.5, "K": 0.5}})
    with pytest.raises(DFTInputError, match="partially occupied"):
        write_dft_inputs(s, tmp_path / "x")


def test_sssp_table_is_the_published_one():
    table = sssp_table()
    assert len(table) == 103 and list(table)[0] == "H" and list(table)[-1] == "Lr"
    for el, e in table.items():
        assert set(e) == {"filename", "md5", "pseudopotential", "cutoff_wfc", "cutoff_rho"}, el
        assert len(e["md5"]) == 32 and e["cutoff_rho"] >= 4 * e["cutoff_wfc"] > 0, el
    # spot checks against the SSSP 1.3.0 PBE efficiency table (materialscloud.org/sssp)
    assert table["Si"] == {"filename": "Si.pbe-n-rrkjus_psl.1.0.0.UPF", "md5": "0b0bb1205258b0d07b9f9672cf965d36",
                           "pseudopotential": "100US", "cutoff_wfc": 30.0, "cutoff_rho": 240.0}
    assert (table["O"]["filename"], table["O"]["cutoff_wfc"], table["O"]["cutoff_rho"]) == \
        ("O.pbe-n-kjpaw_psl.0.1.UPF", 50.0, 400.0)
    assert table["No"]["filename"].startswith("No.")  # a YAML 'No' read as False would lose nobelium
