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
