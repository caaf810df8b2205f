"""AppTest: the structures page (templates, 3D figure, CIF, zip, bad input)."""
import io
import zipfile

from app_testing import app, no_exception, texts


def test_templates_figure_and_downloads():
    at = app("5_Structures", {"formula": "SrYF5"}).run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert len(table) >= 1 and {"template_id", "emd", "template_spacegroup"} <= set(table.columns)
    assert at.query_params.get("template")
    assert "Formation energy" in texts(at)
    at.toggle(key="poly").set_value(True)
    at.toggle(key="cell").set_value(False).run()
    no_exception(at)
    at.button(key="prep_zip").click().run()
    no_exception(at)
    assert not at.error


def test_zip_and_cif_helpers_roundtrip():
    from pymatgen.core import Structure

    from wbg_core.structures.export import cif_string, cif_zip
    from wbg_core.structures.pipeline import predict_structures

    c = predict_structures("NaCl", top_k=1, with_gap=False)[0]
    s = Structure.from_str(cif_string(c.structure, c.provenance), fmt="cif")
    assert s.composition.reduced_formula == "NaCl"
    z = zipfile.ZipFile(io.BytesIO(cif_zip([(c.structure, c.provenance)])))
    assert "index.csv" in z.namelist()


def test_bad_formula_message():
    at = app("5_Structures", {"formula": "Xq3"}).run()
    no_exception(at)
    assert at.error and "Not a formula" in at.error[0].value


def test_relaxation_updates_table_and_stays_on_screen():
    # NaKF2 sits on the KNaCl2 template with Cl swapped for F: CHGNet moves it (NaCl, an MP
    # structure already relaxed, would not change)
    at = app("5_Structures", {"formula": "NaKF2"}).run()
    no_exception(at)
    before = at.dataframe[0].value.iloc[0]
    assert not before["relaxed"]
    at.button(key="relax").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    row = at.dataframe[0].value.iloc[0]
    assert row["relaxed"] and row["formation_energy_per_atom"] != before["formation_energy_per_atom"]
    ef = next(m.value for m in at.metric if m.label == "Formation energy")
    assert ef == f"{row['formation_energy_per_atom']:.3f} eV/atom"  # metric and table agree
    at.toggle(key="bonds").set_value(False).run()  # any later rerun keeps the relaxation's summary
    no_exception(at)
    assert "relaxed with CHGNet:" in texts(at) and " step" in texts(at)
    assert any("Valid compound" in s.value for s in at.success)


def test_validity_and_hull_warning_of_a_non_charge_balanced_formula():
    at = app("5_Structures", {"formula": "NaCl2"}).run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Not a valid compound: no charge-balanced") for w in warnings), warnings
    assert any("not charge-balanced" in w and "above the hull" in w for w in warnings), warnings
    assert not at.dataframe[0].value["compound_valid"].any()


def test_element_colours_are_pymatgens_vesta_table():
    from wbg_core.structures.pipeline import predict_structures
    from wbg_core.structures.scene import element_colors, structure_figure

    c = predict_structures("BaCaF4", top_k=1, with_gap=False)[0]
    fig = structure_figure(c.structure)
    colours = {t.name: t.marker.color for t in fig.data if t.mode == "markers"}
    table = element_colors()
    assert colours == {el: "#{:02x}{:02x}{:02x}".format(*table[el]) for el in ("Ba", "Ca", "F")}
    assert colours["Ba"] != colours["Ca"]
