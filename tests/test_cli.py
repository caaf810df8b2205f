import json

import pytest

from wbg_core.cli import SEED_MAX, build_parser, main


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


def test_help_returns_zero_and_argument_errors_return_two(capsys):
    assert main(["screen", "--help"]) == 0
    assert "--min-gap" in capsys.readouterr().out
    assert main(["screen", "--top", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --top must be an integer >= 1, not -1 (see `wbg screen --help`)")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["screen", "--min-gap", "3", "--top", "-1"], "--top must be an integer >= 1, not -1"),
    (["screen", "--min-gap", "3", "--top", "0"], "--top must be an integer >= 1, not 0"),
    (["screen", "--min-gap", "-1"], "--min-gap must be a finite number >= 0 eV (band gaps are never negative)"),
    (["screen", "--max-gap", "nan"], "--max-gap must be a finite number >= 0 eV"),
    (["screen", "--min-gap", "inf"], "--min-gap must be a finite number"),
    (["screen", "--min-gap", "3", "--pool", "-5"], "--pool must be an integer >= 1"),
    (["screen", "--min-gap", "3", "--p-threshold", "1.5"], "--p-threshold must be a finite number in [0, 1]"),
    (["screen", "--min-gap", "3", "--max-atoms", "-1"], "--max-atoms must be an integer >= 0"),
    (["screen", "--min-gap", "3", "--compound-max-drop", "nan"], "--compound-max-drop must be a finite number >= 0"),
    (["screen", "--min-gap", "3", "--seed", str(2**63)], f"--seed must be an integer from 0 to 4,294,967,295, "
                                                            f"not {2**63}"),
    (["generate", "--seed", "-1"], "--seed must be an integer from 0 to 4,294,967,295, not -1"),
    (["generate", "--seed", str(2**64)], "--seed must be an integer from 0 to 4,294,967,295"),
    (["generate", "-n", "0"], "-n must be an integer from 1 to 5,000,000"),
    (["generate", "-n", "2.5"], "-n: '2.5' is not an integer"),
    (["experiment", "exp2", "--repeats", "0"], "--repeats must be an integer >= 1"),
    (["experiment", "exp2", "--test-limit", "-10"], "--test-limit must be an integer >= 1"),
    (["map", "sample", "-n", "-3"], "-n must be an integer from 1 to 1,000,000"),
    (["map", "build", "--min-dist", "nan"], "--min-dist must be a finite number in [0, 1]"),
    (["map", "build", "--check-points", "10"], "--check-points must be an integer from 100 to 100,000"),
    (["structure", "SrYF5", "--fmax", "inf"], "--fmax must be a finite number in (0, 10] eV/A"),
    (["structure", "SrYF5", "--steps", "-1"], "--steps must be an integer from 1 to 5,000"),
    (["train", "oracle", "--lr", "inf"], "--lr must be a finite number > 0"),
    (["train", "oracle", "--limit", "-1"], "--limit must be an integer >= 1"),
    (["train", "oracle", "--member", "-1"], "--member must be an integer >= 0"),
    (["train", "oracle", "--threads", "0"], "--threads must be an integer >= 1"),
    (["train", "oracle", "--members", "40"], "--members must be an integer from 1 to 32"),  # what a checkpoint may hold
    (["evaluate", "oracle", "-n", "-5"], "-n must be an integer >= 1"),
])
def test_bad_numbers_are_refused_before_any_work(capsys, argv, message):
    """Parsed only: a validator that let one through must not start a screening or a training here."""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_the_largest_seed_is_accepted():
    assert build_parser().parse_args(["generate", "--seed", str(SEED_MAX)]).seed == SEED_MAX == 2**32 - 1


@pytest.mark.parametrize("command", [["predict", "SrYF5"], ["reconstruct", "SrYF5"], ["generate"],
                                     ["screen", "--min-gap", "3"], ["experiment", "exp1"], ["map", "sample"]])
def test_every_output_file_is_checked_before_the_work(tmp_path, capsys, command):
    folder = tmp_path / "results"
    folder.mkdir()
    assert main([*command, "--output", str(folder)]) == 2
    assert f"argument --output: {folder} is a folder" in capsys.readouterr().err
    missing = tmp_path / "nonexist" / "out.csv"
    assert main([*command, "--output", str(missing)]) == 2
    assert f"cannot write {missing}: the folder {missing.parent} does not exist" in capsys.readouterr().err
    assert not missing.parent.exists()  # nothing created on the way


@pytest.mark.parametrize("command", [["structure", "SrYF5", "--output"], ["train", "oracle", "--out"]])
def test_output_folders_are_made_only_inside_an_existing_one(tmp_path, capsys, command):
    deep = tmp_path / "nonexist" / "out"
    assert main([*command, str(deep)]) == 2
    assert f"cannot create the output folder {deep}: the folder {deep.parent} does not exist" in capsys.readouterr().err
    assert not deep.parent.exists()
    afile = tmp_path / "a_file"
    afile.write_text("keep me")
    assert main([*command, str(afile)]) == 2
    assert f"{afile} exists and is not a folder" in capsys.readouterr().err
    assert afile.read_text() == "keep me"


def test_screen_window_must_not_be_inverted(capsys):
    assert main(["screen", "--min-gap", "5", "--max-gap", "2"]) == 2
    err = capsys.readouterr().err
    assert "the window [5.0, 2.0] eV is inverted" in err and err.count("\n") == 1


def test_skipped_browser_tests_are_named_in_the_summary(tmp_path):
    """`make test` must not pass quietly without its browser tests: tests/conftest.py lists them in a block."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_fake.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.browser\n"
        "def test_page():\n    pytest.skip('/usr/bin/chromium is missing (apt-get install chromium)')\n\n"
        "def test_other():\n    pytest.skip('root can write anywhere')\n")
    r = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "-p", "no:cacheprovider", "-o",
                        "markers=browser: x"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    block = r.stdout.split("1 browser test NOT RUN (skipped)", 1)[1].split("short test summary", 1)[0]
    assert "SKIPPED test_fake.py::test_page: /usr/bin/chromium is missing (apt-get install chromium)" in block
    assert "test_other" not in block and "sudo apt-get install -y --no-install-recommends chromium" in block


@pytest.mark.parametrize("args", [
    ["campaign", "new", "x", "--random-seeds", "0"], ["campaign", "new", "x", "--batch", "-1"],
    ["campaign", "new", "x", "--budget", "0"], ["campaign", "new", "x", "--kappa", "nan"],
    ["campaign", "new", "x", "--min-gap", "-1"], ["campaign", "new", "x", "--seed", str(2**63)],
    ["campaign", "run", "x", "--rounds", "0"], ["campaign", "export", "x", "--output", "/nonexist/a.csv"],
])
def test_campaign_arguments_are_refused_before_any_work(args, capsys, tmp_path, monkeypatch):
    from wbg_core.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
