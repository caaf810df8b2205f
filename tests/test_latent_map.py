"""The latent map (issue #13.3): a UMAP of the refined codes that decodes back, on the shipped checkpoint."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from wbg_core.composition import compound_valid
from wbg_core.engine.map_decoding import decode_map_points, place_formulas, sample_map
from wbg_core.models.autoencoder import load_autoencoder, load_latent_map
from wbg_core.models.checkpoint import ModelError
from wbg_core.models.compound_decoding import best_compound_reading, row_options
from wbg_core.models.latent_map import LatentMap


@pytest.fixture(scope="module")
def ae_map():
    return load_autoencoder(), load_latent_map()


def test_a_data_formula_lifts_to_its_own_code_and_decodes_to_itself(ae_map):
    ae, lm = ae_map
    idx = np.random.default_rng(0).choice(len(lm.formula), 50, replace=False)
    assert np.allclose(lm.lift(lm.xy[idx]), lm.z[idx], atol=1e-3)
    got = ae.decode(lm.lift(lm.xy[idx]))
    assert np.mean(got == lm.formula[idx]) >= 0.95  # the refined codes reconstruct ~99.5%


def test_placing_a_data_formula_puts_it_on_its_own_point(ae_map):
    ae, lm = ae_map
    i = int(np.flatnonzero(lm.formula == "CaF2")[0])
    placed = place_formulas(ae, lm, ["CaF2", "Qq2"])
    assert np.allclose(placed.loc[0, ["x", "y"]].to_numpy(float), lm.xy[i], atol=0.05)
    assert placed.loc[1, "error"] and np.isnan(placed.loc[1, "x"])


def test_random_points_of_the_map_decode_to_compounds_near_where_they_re_encode(ae_map):
    """The issue's targets, on a small sample (the benchmark measures 2,000 points x 3 seeds)."""
    ae, lm = ae_map
    df = sample_map(ae, lm, 200, seed=11)
    assert list(df.columns)[:7] == ["x", "y", "formula", "valid", "compound_valid", "x_back", "y_back"]
    assert df["valid"].mean() >= 0.9 and df["compound_valid"].mean() >= 0.5
    assert (df["compound_valid"] == compound_valid(df["formula"].to_numpy(dtype=object))).all()
    back = np.hypot(df["x"] - df["x_back"], df["y"] - df["y_back"])
    assert np.nanmedian(back) < 0.08 * lm.extent
    hull_lo, hull_hi = lm.xy.min(axis=0), lm.xy.max(axis=0)
    assert ((df[["x", "y"]].to_numpy() >= hull_lo) & (df[["x", "y"]].to_numpy() <= hull_hi)).all()


def test_the_compound_reading_is_preferred_only_when_the_plain_decode_is_not_one(ae_map):
    ae, lm = ae_map
    res = decode_map_points(ae, None, lm, lm.sample_points(100, seed=3))
    same = res["formula"] == res["plain_decode"]
    changed = res[~same & res["formula"].notna()]
    assert len(changed) > 0 and changed["compound_valid"].all()
    assert not compound_valid(changed["plain_decode"].to_numpy(dtype=object)).any()


def test_best_compound_reading_on_a_hand_made_output():
    """Decoder output reading Na1 Cl2 (not balanced) with Cl1 nearly as likely: NaCl is the compound reading."""
    from wbg_core.composition.elements import VOCAB_INDEX

    p = np.full((87, 8), 1e-4)
    p[VOCAB_INDEX["Na"], 0] = 0.99
    p[VOCAB_INDEX["Cl"], 1], p[VOCAB_INDEX["Cl"], 0] = 0.6, 0.4
    opts = row_options(p)
    assert opts[VOCAB_INDEX["Cl"]].argmax() == 2  # count 2 is the best reading
    assert best_compound_reading(p) [0] == "NaCl"
    assert best_compound_reading(p, max_drop=0.1)[0] is None  # too unlikely under a tight budget


def test_an_old_pca_map_or_a_corrupt_one_says_how_to_rebuild(tmp_path):
    np.savez_compressed(tmp_path / "latent_map.npz", formula=np.array(["NaCl"]), xy=np.zeros((1, 2)),
                        pca_mean=np.zeros(128), pca_components=np.zeros((2, 128)))
    with pytest.raises(ModelError, match="PCA map.*wbg map build"):
        LatentMap.load(tmp_path)
    (tmp_path / "latent_map.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="corrupt"):
        LatentMap.load(tmp_path)


def test_save_and_load_round_trip(tmp_path, ae_map):
    _, lm = ae_map
    small = LatentMap(lm.formula[:50], lm.band_gap[:50], lm.xy[:50], lm.z[:50], lm.latent_lo, lm.latent_hi,
                      lm.settings, {"decode_fraction": 0.5})
    back = LatentMap.load(small.save(tmp_path).parent)
    assert (back.formula == small.formula).all() and np.allclose(back.xy, small.xy)
    assert back.metrics == {"decode_fraction": 0.5} and back.settings == lm.settings


def test_map_sample_cli(tmp_path):
    out = tmp_path / "map.csv"
    r = subprocess.run([sys.executable, "-m", "wbg_core", "map", "sample", "-n", "40", "--seed", "2",
                        "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert len(df) == 40 and list(df.columns)[:7] == ["x", "y", "formula", "valid", "compound_valid", "x_back",
                                                      "y_back"]
    assert "decode to a formula" in r.stderr
    r = subprocess.run([sys.executable, "-m", "wbg_core", "map", "sample", "-n", "0"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "-n must be" in r.stderr and "Traceback" not in r.stderr
