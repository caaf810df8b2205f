"""AppTest: the oracle page (one formula, many, bad rows, CSV, missing model)."""
import pandas as pd

from app_testing import app, empty_models, need_models, no_exception, texts  # noqa: F401


def test_one_formula_from_the_url():
    need_models()
    at = app("2_Oracle", {"formula": "SrYF5"}).run()
    no_exception(at)
    labels = [m.label for m in at.metric]
    assert any("SrYF5" in lab for lab in labels)
    assert "Materials Project" in labels
    assert len(at.dataframe) >= 2  # predictions and EMD neighbours
    nb = at.dataframe[-1].value
    assert "emd" in nb.columns and (nb["emd"] > 0).all()


def test_many_formulas_with_bad_rows():
    need_models()
    at = app("2_Oracle").run()
    at.text_area(key="oracle_text").set_value("NaCl, Xx2O, CaF2\nSr Y F5\n(((").run()
    no_exception(at)
    good = at.dataframe[0].value
    assert list(good["formula"]) == ["NaCl", "CaF2", "SrYF5"]
    assert good["band_gap_mean"].notna().all()
    assert bool(good.loc[good["formula"] == "NaCl", "in_data"].iloc[0])
    assert "nan" not in good["mp_id"].astype(str).tolist()  # CaF2's bundled row has no MP id: None, not "nan"
    bad = at.dataframe[1].value
    assert list(bad["input"]) == ["Xx2O", "((("]
    assert bad["error"].str.len().gt(0).all()
    assert "could not be answered" in texts(at)
    assert at.query_params.get("formula") in (None, [], "")


def test_empty_input_asks_for_a_formula():
    need_models()
    at = app("2_Oracle").run()
    at.text_area(key="oracle_text").set_value("  ").run()
    no_exception(at)
    assert "Type a formula" in texts(at)


def test_missing_oracle_is_an_error(empty_models):
    at = app("2_Oracle").run()
    no_exception(at)
    assert at.error and "oracle" in at.error[0].value


def test_blank_lines_and_csv_uploads_are_reported():
    need_models()
    at = app("2_Oracle").run()
    at.text_area(key="oracle_text").set_value("NaCl\n\n\nCaF2,,SrYF5").run()
    no_exception(at)
    assert any("2 blank lines and 1 empty entry skipped" in i.value for i in at.info)
    assert list(at.dataframe[0].value["formula"]) == ["NaCl", "CaF2", "SrYF5"]
    at.text_area(key="oracle_text").set_value("")
    at.file_uploader(key="oracle_csv").set_value(("gaps.csv", b"formula,x\nMgO,1\n\nZnS,2\n,3\n", "text/csv"))
    at.run()
    no_exception(at)
    assert any("gaps.csv: 2 formulas read; 1 blank line and 1 row without a formula skipped" in i.value
               for i in at.info), [i.value for i in at.info]
    assert list(at.dataframe[0].value["formula"]) == ["MgO", "ZnS"]
    at.text_area(key="oracle_text").set_value("NaCl")
    at.file_uploader(key="oracle_csv").set_value(("table.csv", "formula\nMgO\xe9\n".encode("latin-1"), "text/csv"))
    at.run()
    no_exception(at)
    assert any("table.csv cannot be read" in e.value and "UTF-8" in e.value for e in at.error)
    assert list(at.dataframe[0].value["formula"]) == ["NaCl"]  # the typed formula is still answered


def test_csv_rows_parse():
    from wbg_core.services.inputs import read_formula_csv_bytes

    assert read_formula_csv_bytes(b"formula,x\nNaCl,1\nCaF2,2\n") == ["NaCl", "CaF2"]
    assert read_formula_csv_bytes(b"f\nNaCl\n") == ["NaCl"]
    import pytest

    with pytest.raises(ValueError, match="formula"):
        read_formula_csv_bytes(b"a,b\n1,2\n")
    from wbg_core.services.inputs import read_formula_csv

    assert read_formula_csv(b"formula;gap\nNaCl;8.5\n").formulas == ["NaCl"]  # semicolon CSV (Excel)
    bare = read_formula_csv(b"NaCl\nCaF2\n")  # no header: the first line is a formula, not dropped
    assert bare.formulas == ["NaCl", "CaF2"] and bare.notes
    for junk in (bytes(range(256)), b"", b"formula\n\"NaCl\n"):
        with pytest.raises(ValueError):
            read_formula_csv(junk)
