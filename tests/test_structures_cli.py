"""`wbg structure`: CIFs, XRD peaks, DFT inputs and provenance, and clear one-line errors for bad input."""
import json
import os
import zipfile

import pytest

from wbg_core.cli import main


@pytest.mark.slow  # first use: builds the template index and the MP hull table (~15 s)
def test_structure_writes_cifs_and_provenance(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["structure", "GaN", "--top-k", "2", "--zip", "--output", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    files = sorted(p.name for p in out.iterdir())
    assert "provenance.json" in files and "structures.zip" in files
    cifs = [f for f in files if f.endswith(".cif")]
    assert len(cifs) == 2
    prov = json.loads((out / "provenance.json").read_text())
    first = prov[0]
    assert first["formula"] == "GaN" and first["template_id"] == "mp-804"  # GaN is in the pool
    assert first["emd"] == 0.0 and first["exact_stoichiometry"]
    for key in ("band_gap_mean", "band_gap_std", "formation_energy_per_atom", "e_above_hull",
                "relax_steps", "warnings", "template_formula", "spacegroup"):
        assert key in first
    assert first["formation_energy_per_atom"] < 0
    assert report["candidates"][0]["template_id"] == "mp-804"
    # each candidate: NAME.cif, NAME/xrd_CuKa.csv, NAME/dft/{README.md, vasp/*, qe/pw.in}
    stem = cifs[0][:-4]
    assert first["folder"] == stem and first["xrd"] == f"{stem}/xrd_CuKa.csv" and first["dft"] == f"{stem}/dft"
    for rel in ("xrd_CuKa.csv", "dft/README.md", "dft/vasp/INCAR", "dft/vasp/KPOINTS", "dft/vasp/POSCAR",
                "dft/vasp/POTCAR.spec", "dft/qe/pw.in"):
        assert (out / stem / rel).is_file(), rel
    readme = (out / stem / "dft" / "README.md").read_text()
    assert "- Template: mp-804 (GaN, space group 186), Element Mover's Distance 0.0000 (EMD rank 1)" in readme
    assert f"this structure type holds {first['vote_share']:.0%} of the vote, vote rank 1" in readme
    names = zipfile.ZipFile(out / "structures.zip").namelist()
    assert "index.csv" in names and len(names) == 2 * 8 + 1
    assert f"{stem}/dft/qe/pw.in" in names and f"{stem}/xrd_CuKa.csv" in names
    from pymatgen.core import Structure

    assert Structure.from_file(out / cifs[0]).composition.reduced_formula == "GaN"


def test_symprec_wavelength_and_kpoint_density_reach_the_files(tmp_path, capsys):
    import ase.io
    from pymatgen.io.vasp import Kpoints

    argv = ["structure", "GaN", "--top-k", "1", "--symprec", "0.001", "--wavelength", "MoKa",
            "--kpoint-density", "200", "--output", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "P6_3mc at symprec 0.001" in out and "xrd_MoKa.csv, dft/" in out
    cif = next(tmp_path.glob("*.cif"))
    stem = tmp_path / cif.stem
    assert "spglib at symprec 0.001 A" in cif.read_text() and "# wyckoff: Ga 2b (3m.), N 2b (3m.)" in cif.read_text()
    assert (stem / "xrd_MoKa.csv").read_text().startswith("two_theta,intensity,hkl,d_spacing")
    kp = Kpoints.from_file(stem / "dft" / "vasp" / "KPOINTS")
    assert "200" in kp.comment and max(kp.kpts[0]) < 7  # coarser than the default 1000's 7 x 7 x 4
    assert len(ase.io.read(stem / "dft" / "qe" / "pw.in", format="espresso-in")) == 4


@pytest.mark.parametrize("argv, message", [
    (["structure", "Xx2", "--output", "{tmp}"], "not an element"),
    (["structure", "SrYF5"], "--output"),
    (["structure", "SrYF5", "--top-k", "0", "--output", "{tmp}"], "--top-k"),
    (["structure", "Na11Cl13", "--no-fallback", "--output", "{tmp}"], "coefficients"),
    (["structure", "SrYF5", "--output", "{file}"], "not a folder"),
    (["structure", "NaCl", "--symprec", "0", "--output", "{tmp}"], "--symprec must be a finite number in (0, 1]"),
    (["structure", "NaCl", "--symprec", "nan", "--output", "{tmp}"], "--symprec"),
    (["structure", "NaCl", "--wavelength", "CuKz", "--output", "{tmp}"], "invalid choice: 'CuKz'"),
    (["structure", "NaCl", "--kpoint-density", "-1", "--output", "{tmp}"], "--kpoint-density must be"),
    (["structure", "NaCl", "--potential", "mace", "--output", "{tmp}"], "invalid choice: 'mace'"),
    (["structure", "NaCl", "--rank", "1", "--output", "{tmp}"], "--rank"),
    (["structure", "NaCl", "--rank", "--energy-tolerance", "-0.1", "--output", "{tmp}"],
     "--energy-tolerance must be a finite number in [0, 1] eV/atom"),
])
def test_bad_input_is_one_line(argv, message, tmp_path, capsys):
    f = tmp_path / "a_file"
    f.write_text("x")
    argv = [a.replace("{tmp}", str(tmp_path / "o")).replace("{file}", str(f)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    assert main(["structure", "GaN", "--output", str(ro / "x")]) == 2
    assert "cannot" in capsys.readouterr().err


def test_unwritable_output_path_under_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["structure", "GaN", "--output", str(f / "sub")]) == 2
    assert "cannot create" in capsys.readouterr().err


def test_fallback_is_explained(tmp_path, capsys):
    assert main(["structure", "Na11Cl13", "--top-k", "1", "--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fallback analogue" in out
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov[0]["exact_stoichiometry"] is False and prov[0]["requested_formula"] == "Na11Cl13"
    assert prov[0]["band_gap_mean"] is None  # the oracle's gap is for the request, not the analogue


def test_rank_relaxes_the_nearest_templates_and_orders_them_by_energy(tmp_path, capsys):
    assert main(["structure", "GaN", "--rank", "2", "--steps", "60", "--potential", "chgnet",
                 "--energy-tolerance", "0", "--output", str(tmp_path), "--json"]) == 0
    cands = json.loads(capsys.readouterr().out)["candidates"]
    assert [c["energy_rank"] for c in cands] == [1, 2] and all(c["relaxed"] for c in cands)
    assert cands[0]["energy_per_atom"] < cands[1]["energy_per_atom"]
    assert {c["vote_rank"] for c in cands} == {1, 2} and {c["order"] for c in cands} == {"vote"}
    assert all(1 <= c["rank"] <= c["vote_neighbours"] for c in cands)  # the EMD ranks beside
    readme = next(tmp_path.glob("*/dft/README.md")).read_text()
    assert "Relaxation: CHGNet 0.3.0 (ASE FIRE" in readme and "Energy ranking: " in readme


def test_order_emd_is_the_papers_rule_and_vote_is_the_default(tmp_path, capsys):
    """--order emd lists the nearest templates in EMD order; the default says where each stands in the vote."""
    assert main(["structure", "KNaF2", "--order", "emd", "--top-k", "2", "--output", str(tmp_path / "emd"),
                 "--json"]) == 0
    emd = json.loads(capsys.readouterr().out)["candidates"]
    assert [c["rank"] for c in emd] == [1, 2] and emd[0]["order"] == "emd"
    assert all(0 < c["vote_share"] <= 1 and c["vote_neighbours"] == 10 for c in emd)  # the vote, reported anyway
    assert main(["structure", "KNaF2", "--top-k", "2", "--output", str(tmp_path / "vote")]) == 0
    out = capsys.readouterr().out
    assert "vote rank 1 (its structure type has" in out and "of the vote of the 10 nearest), EMD rank" in out


def test_unknown_potential_setting_is_one_line(tmp_path, capsys, monkeypatch):
    from wbg_core import settings

    monkeypatch.setenv("WBG_POTENTIAL", "mace")
    settings.get_settings.cache_clear()
    try:
        assert main(["structure", "NaCl", "--output", str(tmp_path)]) == 2
    finally:
        settings.get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "Unknown potential 'mace'" in err and "WBG_POTENTIAL" in err and "Traceback" not in err
