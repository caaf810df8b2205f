import json

from wbg_core.cli import main


def test_help_lists_subcommands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for cmd in ("data", "parse", "bench"):
        assert cmd in out


def test_data_json(capsys):
    assert main(["data", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["compositions"] == 89_885
    assert summary["encodable"] == 61_850
    assert summary["not_encodable"] == {"count above 8 in the reduced formula": 28_035}


def test_parse_reports_errors_without_traceback(capsys):
    assert main(["parse", "SrYF5", "Xx", "--json"]) == 2
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["formula"] == "SrYF5" and rows[0]["compound_valid"] and rows[0]["paper_rule_valid"]
    assert "not an element" in rows[1]["error"]


def test_unknown_bench_is_a_user_error(capsys):
    assert main(["bench", "nope"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err
