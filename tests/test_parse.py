import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wbg_core.composition import FormulaError, parse_formula, reduced_formula


@pytest.mark.parametrize(
    "text, expected",
    [
        ("SrYF5", "SrYF5"),
        ("Sr Y F5", "SrYF5"),
        ("  SrYF5 ", "SrYF5"),
        ("sryf5", "SrYF5"),
        ("SRYF5", "SrYF5"),
        ("(NH4)2SO4", "H8SN2O4"),
        ("[Co(NH3)6]Cl3", "CoH18N6Cl3"),
        ("Fe2O3·H2O", "FeHO2"),
        ("CuSO4·5H2O", "CuH10SO9"),
        ("CuSO4*5H2O", "CuH10SO9"),
        ("Fe2O3.H2O", "FeHO2"),
        ("Fe₂O₃", "Fe2O3"),
        ("Fe0.5Ni0.5", "FeNi"),
        ("NaN", "NaN"),
        ("O2", "O"),
        ("Ca1F2", "CaF2"),
        ("Ag(AsSe2)3", "AgAs3Se6"),
    ],
)
def test_parses_to_reduced_formula(text, expected):
    assert reduced_formula(text) == expected


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("garbage!", "unexpected character"),
        ("Xx2", "not an element"),
        ("co", "ambiguous"),
        ("(NaCl", "unclosed"),
        ("NaCl)", "unbalanced"),
        ("Na0Cl", "positive"),
        ("2NaCl", "does not follow"),
        ("Fe0.3333Ni", "non-integer"),
        ("H" * 10_000_000, "limit is 1000"),
        ("Na·", "both sides"),
        ("Fe1000000", "larger than"),
        ("()", "empty brackets"),
    ],
)
def test_bad_input_gives_one_error_type_with_reason(text, fragment):
    with pytest.raises(FormulaError, match=fragment):
        reduced_formula(text)


def test_non_text_input_is_a_formula_error():
    with pytest.raises(FormulaError, match="must be text"):
        parse_formula(12)


def test_hydrate_counts_water_molecules():
    assert parse_formula("CuSO4·5H2O") == {"Cu": 1.0, "H": 10.0, "S": 1.0, "O": 9.0}


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_parser_raises_only_formula_error(text):
    try:
        comp = parse_formula(text)
    except FormulaError:
        return
    assert comp and all(v > 0 for v in comp.values())


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["Na", "Cl", "Sr", "Y", "F", "O", "Fe", "H"]),
                       st.integers(1, 30), min_size=1, max_size=5))
def test_written_formula_parses_back(comp):
    text = "".join(f"{el}{n}" for el, n in comp.items())
    assert parse_formula(text) == {el: float(n) for el, n in sorted(parse_formula(text).items())}
    assert parse_formula(text) == {k: float(v) for k, v in comp.items()} | {}
