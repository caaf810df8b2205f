"""The candidate on the MP hull: e_hull with named products, the phase diagram figure, bad input."""
import plotly.graph_objects as go
import pytest

from wbg_core.data import load_bandgaps
from wbg_core.structures.hull import HullError, candidate_hull


def mp_ef(formula: str) -> float:
    """The bundled MP formation energy (eV/atom) of a formula."""
    df = load_bandgaps()
    return float(df.loc[df["formula"] == formula, "formation_energy_per_atom"].iloc[0])


def _traces_text(fig) -> str:
    return " ".join(f"{t.name} {t.text} {t.hovertext}" for t in fig.data)


@pytest.mark.parametrize("formula, mp_id", [("ScF3", "mp-10694"), ("KMgF3", "mp-3448")])
def test_mp_ground_state_is_on_the_hull_and_decomposes_to_itself(formula, mp_id):
    h = candidate_hull(formula, mp_ef(formula))
    assert abs(h.e_above_hull) < 1e-6
    assert h.products == [(formula, 1.0)]
    assert h.summary.startswith("on the hull")
    first = h.table[0]
    assert first["phase"] == formula and first["role"] == "decomposition product" and first["material_id"] == mp_id


def test_composition_above_the_hull_names_its_products():
    # SrYF5 has no MP entry: above the hull it splits into SrF2 + YF3 in atom fractions 3/7 and 4/7
    h = candidate_hull("SrYF5", -4.0)
    expected = -(3 / 7 * mp_ef("SrF2") + 4 / 7 * mp_ef("YF3")) - 4.0
    assert h.e_above_hull == pytest.approx(expected, abs=1e-6)
    assert dict(h.products) == pytest.approx({"SrF2": 3 / 7, "YF3": 4 / 7}, abs=1e-4)
    assert h.summary == f"{expected:.3f} eV/atom above YF3 (0.57) + SrF2 (0.43)"


def test_known_metastable_mp_phase_is_above_the_hull():
    # KF5 (mp-1095521) is in MP but above its K-F hull: at its own MP energy it is metastable
    h = candidate_hull("KF5", mp_ef("KF5"))
    assert 0.01 < h.e_above_hull < 0.5
    assert h.products and "KF5" not in dict(h.products)
    assert all(f in h.summary for f, _ in h.products)


def test_below_the_hull_is_a_new_stable_phase():
    h = candidate_hull("SrYF5", -4.6)
    assert h.e_above_hull < 0
    assert h.summary.startswith(f"{-h.e_above_hull:.3f} eV/atom below the hull")
    assert "would be a new stable phase (ML estimate)" in h.summary


@pytest.mark.parametrize("formula, ef, trace_type", [("ScF3", -3.0, "scatter"), ("SrYF5", -4.0, "scatterternary")])
def test_binary_and_ternary_figures_show_the_candidate(formula, ef, trace_type):
    h = candidate_hull(formula, ef)
    assert isinstance(h.figure, go.Figure) and h.no_figure_reason is None
    cand = [t for t in h.figure.data if t.name == f"{formula} (candidate)"]
    assert len(cand) == 1 and cand[0].type == trace_type
    assert f"{formula} (candidate)" in cand[0].text[0]
    assert "candidate, CHGNet 0.3.0 estimate" in cand[0].hovertext[0]  # drawn even far above the hull
    assert "mp-" in _traces_text(h.figure)  # MP phases carry their material ids


def test_quaternary_gives_a_table_and_a_reason_not_a_figure():
    h = candidate_hull("BaCaMgF6", -3.5)
    assert h.figure is None and "4 elements" in h.no_figure_reason and "ternar" in h.no_figure_reason
    products = [r for r in h.table if r["role"] == "decomposition product"]
    assert [r["phase"] for r in products] == [f for f, _ in h.products]
    assert sum(r["fraction"] for r in products) == pytest.approx(1.0, abs=1e-3)
    assert any(r["role"] == "nearby stable phase" for r in h.table)
    assert h.e_above_hull > 0 and h.n_mp_phases > 5


def test_bad_input_gives_one_clear_message():
    with pytest.raises(HullError, match="no Materials Project compound of the He-Xe system"):
        candidate_hull("HeXe", -0.1)
    with pytest.raises(HullError, match="element"):
        candidate_hull("Na", 0.0)
    with pytest.raises(HullError, match="finite"):
        candidate_hull("ScF3", float("nan"))


def test_structures_page_draws_the_candidate_on_its_hull():
    import json

    from app_testing import app, no_exception, texts

    at = app("5_Structures", {"formula": "SrYF5"}).run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    e_hull = next(m.value for m in at.metric if m.label == "Energy above hull")
    assert f"**SrYF5**: {e_hull.split()[0]} eV/atom above YF3 (0.57) + SrF2 (0.43)" in texts(at)
    assert "CHGNet 0.3.0 (ML potential) estimate" in texts(at)
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)  # 3D structure, hull, XRD
    assert any(t.get("name") == "SrYF5 (candidate)" for t in spec["data"])
    assert list(at.table[0].value["phase"][:2]) == ["YF3", "SrF2"]
    at = app("5_Structures", {"formula": "BaCaMgF6"}).run()
    no_exception(at)
    assert any("4 elements" in i.value for i in at.info) and len(at.get("plotly_chart")) == 2


def test_compounds_without_a_formation_energy_are_named_as_missing_from_the_hull():
    """Ba3Bi and BaBi5 are bundled rows with the largest gap over polymorphs, no formation energy
    and no pool structure to estimate one: the Ba-Bi hull is built without them and says so.
    NaCl has no MP energy either, but a pool structure: it is estimated, not missing."""
    from wbg_core.structures.hull import candidate_hull, phases_missing_from_hull

    missing = phases_missing_from_hull(["Ba", "Bi"])
    assert {"Ba3Bi", "BaBi5"} <= set(missing)
    h = candidate_hull("Ba2Bi", -0.5)
    assert h.missing == missing and "Ba3Bi" in h.missing_text and "may be wrong" in h.missing_text
    assert phases_missing_from_hull(["Na", "Cl"]) == []
    h = candidate_hull("NaCl", -2.0)
    assert h.missing_text is None and "NaCl" in h.estimated
    assert candidate_hull("ScF3", -3.0).missing_text is None


def test_estimated_phases_complete_the_hull_and_are_marked():
    """KNaF2 was '1.3 eV/atom below the hull' because NaF and KF had no bundled formation energy.
    With their CHGNet estimates at the MP structures the hull holds them, marked as ML, and a
    candidate near the NaF + KF line lands near the hull."""
    from wbg_core.structures.estimated_phases import load_estimates

    est = load_estimates().set_index("formula")
    naf, kf = (float(est.loc[f, "formation_energy_per_atom"]) for f in ("NaF", "KF"))
    assert -3.2 < naf < -2.6 and -3.2 < kf < -2.6  # rock-salt fluorides: MP's are about -2.9 eV/atom
    h = candidate_hull("KNaF2", (naf + kf) / 2 + 0.02)
    assert {"NaF", "KF"} <= set(h.estimated) and h.estimated["NaF"] == "chgnet"
    assert "NaF" not in h.missing and "KF" not in h.missing
    assert 0 < h.e_above_hull < 0.05
    assert "NaF [ML]" in h.summary and "KF [ML]" in h.summary
    assert "CHGNet 0.3.0 estimates" in h.estimated_text and "MAE" in h.estimated_text
    rows = {r["phase"]: r for r in h.table}
    assert rows["NaF"]["energy_source"] == "ML (CHGNet 0.3.0)" and rows["NaF"]["material_id"].startswith("mp-")
    assert "E_f CHGNet 0.3.0 estimate" in _traces_text(h.figure)
    assert candidate_hull("ScF3", -3.0).estimated_text is None  # a system MP prices fully


def test_estimates_never_replace_an_mp_energy_and_match_a_fresh_computation():
    from wbg_core.structures.estimated_phases import estimate, load_estimates
    from wbg_core.structures.potentials import load_potential
    from wbg_core.structures.stability import element_references

    est = load_estimates()
    bg = load_bandgaps()
    priced = set(bg.loc[bg["formation_energy_per_atom"].notna(), "formula"])
    assert len(est) > 2000 and not (set(est["formula"]) & priced)
    fresh = estimate(load_potential("chgnet"), element_references("chgnet"), ["MgO", "LiF"])
    fresh = fresh.set_index("formula").loc[["MgO", "LiF"]]
    stored = est.set_index("formula").loc[["MgO", "LiF"]]
    assert fresh["formation_energy_per_atom"].to_numpy() == pytest.approx(
        stored["formation_energy_per_atom"].to_numpy(), abs=2e-3)
    assert list(fresh["material_id"]) == list(stored["material_id"])


def test_estimates_are_registered_on_write_and_a_damaged_file_is_named(tmp_path):
    import shutil

    from wbg_core.data.registry import DataError, load_registry
    from wbg_core.settings import get_settings
    from wbg_core.structures.estimated_phases import ESTIMATES_FILE, load_estimates, write
    from wbg_core.structures.potentials import POTENTIALS

    shutil.copy(get_settings().data_dir / "registry.json", tmp_path / "registry.json")
    rows = load_estimates().head(3)
    write(rows, type("P", (), {"name": "chgnet", "label": POTENTIALS["chgnet"].label}),
          {"control_formulas": 3, "mae_eV_per_atom": 0.05}, tmp_path)
    entry = load_registry(tmp_path)["files"][ESTIMATES_FILE]
    assert entry["rows"] == 3 and entry["validation"]["mae_eV_per_atom"] == 0.05
    assert list(load_estimates(tmp_path)["formula"]) == list(rows["formula"])
    (tmp_path / ESTIMATES_FILE).write_text((tmp_path / ESTIMATES_FILE).read_text()[:-20])
    load_estimates.cache_clear()
    with pytest.raises(DataError, match="ml_formation_energies.csv is truncated or corrupt"):
        load_estimates(tmp_path)


def test_the_hull_names_the_potential_that_priced_the_candidate():
    from wbg_core.structures.hull import caveat

    h = candidate_hull("ScF3", -3.0, potential="sevennet-0")
    cand = next(t for t in h.figure.data if t.name == "ScF3 (candidate)")
    assert "candidate, SevenNet-0 (11Jul2024) estimate" in cand.hovertext[0]
    assert "candidate (SevenNet-0 (11Jul2024))" in h.figure.layout.title.text
    assert "a SevenNet-0 (11Jul2024) (ML potential) estimate" in caveat("sevennet-0")
    assert "a CHGNet 0.3.0 (ML potential) estimate" in caveat()


def test_a_candidate_at_an_estimated_phases_own_energy_is_drawn():
    """GaN built from MP's own GaN structure gets exactly the estimate's energy; pymatgen calls the
    two entries equal, which broke PDPlotter's highlight (the Structures page crashed on GaN)."""
    from wbg_core.structures.estimated_phases import load_estimates

    ef = float(load_estimates().set_index("formula").loc["GaN", "formation_energy_per_atom"])
    h = candidate_hull("GaN", ef)
    assert abs(h.e_above_hull) < 1e-6 and h.products == [("GaN", 1.0)]
    assert any(t.name == "GaN (candidate)" for t in h.figure.data)
