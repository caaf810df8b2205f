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


def test_csv_rows_parse():
    from wbg_core.app_support import read_formula_csv_bytes

    assert read_formula_csv_bytes(b"formula,x\nNaCl,1\nCaF2,2\n") == ["NaCl", "CaF2"]
    assert read_formula_csv_bytes(b"f\nNaCl\n") == ["NaCl"]
    import pytest

    with pytest.raises(ValueError, match="formula"):
        read_formula_csv_bytes(b"a,b\n1,2\n")
