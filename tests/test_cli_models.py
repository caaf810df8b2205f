import json

import pandas as pd
import torch
import pytest

from wbg_core.cli import main


def test_predict_csv_keeps_rows_in_order_with_errors(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("formula\nNaCl\nnot a formula!\nSrYF5\n\nNaN\n")
    out = tmp_path / "out.csv"
    assert main(["predict", "--input", str(src), "--output", str(out)]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns) == ["formula", "band_gap_mean", "band_gap_std", "p_nonmetal", "mp_band_gap",
                                "mp_label_source", "error"]
    assert df["formula"].tolist() == ["NaCl", "not a formula!", "SrYF5", "", "NaN"]
    assert df["error"].iloc[1] and df["error"].iloc[3]
    assert df["error"].iloc[0] == "" and df["error"].iloc[4] == ""


def test_predict_json(capsys):
    assert main(["predict", "LiF", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["formula"] == "LiF" and rows[0]["band_gap_mean"] > 5


def test_predict_json_says_where_each_known_value_comes_from(capsys):
    assert main(["predict", "SrF2", "Si", "SrYF5", "--json"]) == 0
    rows = {r["formula"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["SrF2"]["mp_label_source"] == "MP ground state, mp-981" and rows["SrF2"]["mp_band_gap"] > 6
    assert rows["Si"]["mp_label_source"] == "largest gap over MP polymorphs, ground state unknown"
    assert rows["SrYF5"]["mp_band_gap"] is None and rows["SrYF5"]["mp_label_source"] is None
    assert 0.9 < rows["SrYF5"]["p_nonmetal"] <= 1


@pytest.mark.parametrize("content, message", [
    ("a,b\n1,2\n", "needs a 'formula' column"),
    ("", "not a readable CSV"),
    ("formula\n", "bad.csv has a header (formula) but no rows of formulas"),
    ("Formula,notes\n", "bad.csv has a header (Formula, notes) but no rows of formulas"),
])
@pytest.mark.parametrize("command", ["predict", "reconstruct"])
def test_malformed_csv_is_a_clear_error(tmp_path, capsys, content, message, command):
    src = tmp_path / "bad.csv"
    src.write_text(content)
    assert main([command, "--input", str(src)]) == 2
    err = capsys.readouterr().err
    assert message in err and "give formulas as arguments" not in err and err.count("\n") == 1


def test_input_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["predict", "--input", str(tmp_path)]) == 2
    assert f"input file {tmp_path} is a folder" in capsys.readouterr().err


def test_predict_output_is_refused_before_the_model_runs_and_nothing_is_lost(tmp_path, capsys):
    keep = tmp_path / "results"
    keep.mkdir()
    (keep / "earlier.csv").write_text("formula\nNaCl\n")
    assert main(["predict", "SrYF5", "--output", str(keep)]) == 2
    assert f"{keep} is a folder" in capsys.readouterr().err
    assert [p.name for p in keep.iterdir()] == ["earlier.csv"]
    missing = tmp_path / "nonexist" / "out.csv"
    assert main(["predict", "SrYF5", "--output", str(missing)]) == 2
    assert f"the folder {missing.parent} does not exist" in capsys.readouterr().err
    assert not missing.parent.exists()


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from wbg_core.models import oracle
    from wbg_core import settings

    monkeypatch.setenv("WBG_MODELS_DIR", str(tmp_path))
    settings.get_settings.cache_clear()
    oracle.load_oracle.cache_clear()
    try:
        assert main(["predict", "NaCl"]) == 2
        assert "missing" in capsys.readouterr().err
    finally:
        settings.get_settings.cache_clear()
        oracle.load_oracle.cache_clear()


def test_reconstruct_and_generate(tmp_path):
    out = tmp_path / "r.csv"
    assert main(["reconstruct", "SrYF5", "Fe9O", "--output", str(out)]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df.columns) == ["formula", "reconstructed", "match", "error"]
    assert df["reconstructed"].iloc[0] == "SrYF5" and "count above 8" in df["error"].iloc[1]
    gen = tmp_path / "g.csv"
    assert main(["generate", "-n", "200", "--seed", "1", "--output", str(gen)]) == 0
    g = pd.read_csv(gen, keep_default_na=False)
    assert len(g) == 200 and list(g.columns) == ["formula", "valid", "paper_rule_valid", "compound_valid"]


def test_generate_takes_every_seed_in_the_stated_range(tmp_path, capsys):
    from wbg_core.cli import SEED_MAX

    gen = tmp_path / "g.csv"
    assert main(["generate", "-n", "20", "--seed", str(SEED_MAX), "--output", str(gen)]) == 0
    assert len(pd.read_csv(gen)) == 20
    assert main(["generate", "-n", "20", "--seed", str(SEED_MAX + 1)]) == 2
    assert f"from 0 to {SEED_MAX:,}" in capsys.readouterr().err


def test_train_rejects_bad_arguments(capsys):
    assert main(["train", "oracle", "--epochs", "0"]) == 2
    assert "--epochs" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "autoencoder", "--member", "1"], "--member applies to the oracle"),
    (["train", "oracle", "--substitute", "0.5"], "autoencoder only"),
    (["train", "autoencoder", "--substitute", "1.5"], "--substitute must be a finite number in [0, 1]"),
    (["train", "autoencoder", "--lr", "nan"], "--lr must be a finite number > 0"),
    (["train", "oracle", "--epochs", "-3"], "--epochs must be an integer >= 1"),
    (["train", "autoencoder", "--init-from", "/nonexistent/ae"], "no model.safetensors"),
    (["train", "oracle", "--member", "10", "--limit", "50"], "member 10 is out of range: the ensemble has members 0-9"),
    (["train", "oracle", "--member", "5", "--nonmetal-members", "0", "--limit", "50"], "member 5 is out of range: the ensemble has members 0-4"),
    (["train", "gan", "--nonmetal-members", "2"], "--nonmetal-members applies to the oracle only"),
    (["train", "gan", "--init-from", "models/oracle"], "--init-from: autoencoder or oracle only"),
    (["train", "gan", "--nonmetal-from", "models/oracle"], "--nonmetal-from applies to the oracle only"),
    (["train", "oracle", "--nonmetal-from", "models/oracle", "--init-from", "models/oracle"], "give one"),
    (["train", "oracle", "--nonmetal-from", "/nonexistent/oracle"], "--nonmetal-from /nonexistent/oracle: no model.safetensors"),
    (["train", "oracle", "--nonmetal-from", "models/oracle", "--member", "5", "--limit", "50"],
     "this run trains the full members 0-4"),
    (["train", "gan", "--substitute-oxidation"], "--substitute-oxidation: autoencoder only"),
    (["train", "autoencoder", "--gan-arch", "conv"], "--gan-arch: gan only"),
    (["train", "gan", "--heads", "3"], "--heads: oracle only"),
    (["train", "oracle", "--hidden", "0"], "--hidden must be an integer >= 1"),
    (["train", "autoencoder", "--no-head"], "--no-head applies to the oracle only"),
    (["train", "gan", "--gan-train-on", "metals"], "invalid choice: 'metals'"),
])
def test_train_names_the_bad_option(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_warm_start_from_a_checkpoint_of_another_model_is_a_clear_error(tmp_path, capsys):
    from wbg_core.settings import get_settings

    gan = get_settings().models_dir / "gan"  # has model.safetensors, but is no autoencoder
    argv = ["train", "autoencoder", "--init-from", str(gan), "--limit", "50", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "is not an autoencoder config" in capsys.readouterr().err


def test_reconstruct_refines_unless_told_not_to(tmp_path):
    """Ac2S3 loses its Ac through the encoder network alone (docs/models.md); refined, it round-trips."""
    src = tmp_path / "in.csv"
    src.write_text("formula\nAc2S3\nNaCl\n")
    for flag, expected in (([], [True, True]), (["--no-refine"], [False, True])):
        out = tmp_path / "out.csv"
        assert main(["reconstruct", "--input", str(src), "--output", str(out), *flag]) == 0
        df = pd.read_csv(out, keep_default_na=False)
        assert df["match"].tolist() == expected, flag


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "autoencoder", "--dir", "nowhere"], "nowhere is missing"),
    (["evaluate", "forest"], "invalid choice"),
    (["evaluate", "gan", "--compound-max-drop", "-1"], "--compound-max-drop must be a finite number >= 0"),
    (["evaluate", "autoencoder", "--compound-max-drop", "4"], "applies to the gan only"),
    (["evaluate", "oracle", "-n", "0"], "-n must be an integer >= 1"),
    (["evaluate", "oracle", "-n", "100", "--write"], "leave out -n"),
    (["evaluate", "autoencoder", "-n", "100"], "-n applies to the oracle only"),
    (["calibrate", "oracle", "--limit", "5"], "at least 50"),
    (["calibrate", "oracle", "--dir", "nowhere"], "nowhere is missing"),
])
def test_evaluate_bad_arguments_are_clear(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_evaluate_oracle_on_a_random_sample(capsys):
    assert main(["evaluate", "oracle", "-n", "300"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["sample"]["n"] == 300 and m["sample"]["random_seed"] == 0
    assert [b["bin"] for b in m["by_predicted_gap"]] == ["0-1", "1-2", "2-3", "3-4", "4-5", ">= 5"]
    assert {c["formula"] for c in m["classic_compounds"]} >= {"MgO", "LiF", "SrYF5"}


def test_tables_print_blanks_not_nan(capsys):
    assert main(["predict", "NaCl", "Xx"]) == 0
    out = capsys.readouterr().out
    assert "NaN" not in out and "<NA>" not in out and "not an element" in out


def test_model_config_flags_come_from_the_config_dataclasses():
    """Every config field with a "help" is a flag of `wbg train`, and a given flag reaches the config
    under the field's name; flags not given leave the dataclass defaults."""
    import dataclasses

    from wbg_core.cli import build_parser, config_flags, config_overrides
    from wbg_core.models.configs import AEConfig, GANConfig, OracleConfig

    assert set(config_flags(AEConfig)) == {"--lr", "--substitute", "--substitute-within", "--substitute-oxidation"}
    assert set(config_flags(GANConfig)) == {"--gan-arch", "--gan-train-on"}
    assert set(config_flags(OracleConfig)) == {"--heads", "--hidden", "--pretrain-epochs", "--nonmetal-from-full"}
    args = build_parser().parse_args(["train", "oracle", "--pretrain-epochs", "30"])
    assert config_overrides(args, OracleConfig) == {"pretrain_epochs": 30}
    args = build_parser().parse_args(["train", "oracle", "--nonmetal-from-full"])
    assert config_overrides(args, OracleConfig) == {"nonmetal_from_full": True}
    args = build_parser().parse_args(["train", "autoencoder", "--substitute", "0.3", "--substitute-within", "2",
                                      "--substitute-oxidation"])
    assert config_overrides(args, AEConfig) == {"substitute": 0.3, "substitute_within": 2, "substitute_oxidation": True}
    assert config_overrides(args, GANConfig) == {}
    cfg = AEConfig(**config_overrides(args, AEConfig))
    assert cfg.lr == AEConfig().lr and cfg.substitute == 0.3
    args = build_parser().parse_args(["train", "gan", "--gan-arch", "conv"])
    assert dataclasses.asdict(GANConfig(**config_overrides(args, GANConfig)))["arch"] == "conv"


def test_oracle_width_flags_and_an_ensemble_without_its_head(tmp_path, capsys):
    """The GPU path: members as wide as asked, assembled without the head (no LightGBM there), and the
    head fitted afterwards by `wbg calibrate` on the same directory."""
    from wbg_core.models.oracle import load
    from wbg_core.models.oracle_head import CALIBRATION_FILE

    argv = ["train", "oracle", "--heads", "2", "--hidden", "24", "--members", "1", "--nonmetal-members", "1",
            "--epochs", "1", "--limit", "300", "--no-head", "--out", str(tmp_path)]
    assert main(argv) == 0
    directory = tmp_path / "oracle"
    bare = load(directory)
    assert (bare.config["kwargs"]["heads"], bare.config["kwargs"]["hidden"]) == (2, 24)
    assert bare.head is None and "head" not in bare.config and not (directory / CALIBRATION_FILE).exists()
    assert "metrics" not in bare.card and bare.card["hyper_parameters"]["heads"] == 2
    assert main(["calibrate", "oracle", "--dir", str(directory), "--limit", "300"]) == 0
    fitted = load(directory)
    assert fitted.head is not None and fitted.config["kwargs"]["hidden"] == 24
    assert "test_full" in fitted.card["metrics"]
    # non-metal members of another width beside the full members of a checkpoint (--init-from)
    argv = ["train", "oracle", "--init-from", str(directory), "--heads", "1", "--hidden", "16", "--members", "1",
            "--nonmetal-members", "1", "--epochs", "1", "--limit", "300", "--no-head", "--out", str(tmp_path / "nm")]
    assert main(argv) == 0
    mixed = load(tmp_path / "nm" / "oracle")
    assert mixed.config["kwargs"]["hidden"] == 24 and mixed.config["nonmetal_kwargs"]["hidden"] == 16
    nm, full = mixed.nonmetal_members[0], mixed.members[0]
    assert (len(nm.pool), nm.pool[0].gate[0].out_features) == (1, 16)
    assert (len(full.pool), full.pool[0].gate[0].out_features) == (2, 24)
    for a, b in zip(mixed.members[0].state_dict().values(), fitted.members[0].state_dict().values()):
        assert torch.equal(a, b)  # the full member is the checkpoint's own
    argv[argv.index("--nonmetal-members") - 2:argv.index("--nonmetal-members")] = ["--members", "2"]
    assert main(argv) == 2 and "are not the 2 of" in capsys.readouterr().err
