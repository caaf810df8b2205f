import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from wbg_core.data.loaders import bandgap_counts
from wbg_core.models.registry import CheckpointSet
from wbg_core.engine.screening import (COLUMNS, ScreenConfig, ScreenError, filter_counts,
                                       oracle_features_from_counts, p_in_window, screen)


@pytest.fixture(scope="module")
def oracle():
    return CheckpointSet.shipped().oracle()


@pytest.fixture(scope="module")
def data_pool(bandgaps):
    c = bandgap_counts(bandgaps)[bandgaps["encodable"].to_numpy()]
    return c[np.random.default_rng(0).integers(0, len(c), 6000)]


@pytest.mark.parametrize("kwargs,match", [
    ({"min_gap": 3.0, "max_gap": 3.0}, "empty"),
    ({"min_gap": 5.0, "max_gap": 2.0}, "inverted"),
    ({}, "window"),
    ({"min_gap": 1.0, "pool": 0}, "pool"),
    ({"min_gap": 1.0, "require_elements": ("Xx",)}, "unknown element"),
    ({"min_gap": 1.0, "require_elements": ("O",), "exclude_elements": ("O",)}, "both"),
    ({"min_gap": 1.0, "p_threshold": 1.5}, "p_threshold"),
    ({"min_gap": 1.0, "compound_max_drop": -1.0}, "compound_max_drop must be >= 0"),
])
def test_bad_windows_and_filters_are_refused(kwargs, match):
    with pytest.raises(ScreenError, match=match):
        ScreenConfig(**kwargs).validate()


def test_p_in_window():
    p = p_in_window(np.array([5.0, 5.0, 0.0]), np.array([1.0, 1e-9, 1.0]), (5.0, np.inf))
    assert np.allclose(p, [0.5, 0.5, 0.0], atol=1e-6)
    assert np.isclose(p_in_window(np.array([2.5]), np.array([0.5]), (2.0, 3.0))[0], 0.6827, atol=1e-3)


def test_counts_features_match_the_oracle_on_formulas(data_pool):
    from wbg_core.composition import counts_to_formulas
    from wbg_core.models import load_oracle

    oracle = load_oracle()
    c = data_pool[:200]
    z, w = oracle_features_from_counts(c)
    mean, std = oracle.predict_arrays(z, w)
    ref = oracle.predict(counts_to_formulas(c))
    # one answer per formula on both paths: the same element order and statistics width
    assert np.array_equal(mean, ref.mean) and np.array_equal(std, ref.std)


@pytest.mark.parametrize("window,extra", [
    ((4.0, None), {}),
    ((1.0, 3.0), {"require_elements": ("O",), "p_threshold": 0.3}),
    ((0.5, 2.0), {"exclude_elements": ("O", "F"), "max_atoms": 5, "max_elements": 2, "valid_only": True,
                    "p_threshold": 0.2}),
])
def test_screening_a_small_pool(data_pool, oracle, window, extra):
    cfg = ScreenConfig(min_gap=window[0], max_gap=window[1], **extra)
    seen = []
    res = screen(cfg, oracle, pool_counts=data_pool, progress_callback=lambda f, m: seen.append(f))
    df = res.candidates
    # the columns the oracle's P(in window) reads come with each row, so another window can be asked
    assert list(df.columns) == COLUMNS + list(oracle.window_columns) + ["mean_gap_if_nonmetal"]
    assert len(df) > 0 and seen[-1] == 1.0
    # the gap shown is P(non-metal) times the gap a non-metal averages, not times the median
    assert np.allclose(df["band_gap_mean"], df["p_nonmetal"] * df["mean_gap_if_nonmetal"], atol=2e-3)
    wide = df["gap_if_nonmetal"] > 3
    if wide.any():  # there the two differ: the residuals are skewed towards lower gaps
        assert not np.allclose(df.loc[wide, "mean_gap_if_nonmetal"], df.loc[wide, "gap_if_nonmetal"], atol=1e-2)
    assert (df["p_in_window"] >= cfg.p_threshold).all()
    detail = {"mean": df["band_gap_mean"].to_numpy(), "std": df["band_gap_std"].to_numpy(),
              **{c: df[c].to_numpy() for c in oracle.window_columns}}
    assert np.allclose(oracle.window_probability(detail, cfg.window), df["p_in_window"], atol=2e-3)
    assert df["p_in_window"].is_monotonic_decreasing
    assert df["formula"].is_unique
    assert (df["n_atoms"] <= cfg.max_atoms).all() and (df["n_elements"] <= cfg.max_elements).all()
    for el in cfg.require_elements:
        assert df["formula"].str.contains(el).all()
    if cfg.valid_only:
        assert df["compound_valid"].all()
    assert res.funnel["passed"] == len(df) == len(res)
    assert set(res.stage_s) >= {"model", "window", "validity", "total"}
    assert res.config["min_gap"] == window[0] and res.model == "Oracle" and res.engine == "local"


def test_nothing_passes_gives_an_empty_frame_and_a_reason(data_pool, oracle):
    res = screen(ScreenConfig(min_gap=40.0), oracle, pool_counts=data_pool)
    assert len(res) == 0 and list(res.candidates.columns) == COLUMNS + list(oracle.window_columns) + [
        "mean_gap_if_nonmetal"]
    assert "no candidate passed" in res.describe_empty() and "in_window 0" in res.describe_empty()


def test_structure_filter():
    c = np.zeros((3, 87), np.int8)
    c[0, [0, 7]] = [2, 1]  # H2O
    c[1, [0, 7]] = [8, 4]  # 12 atoms
    c[2, [1, 2, 3, 4]] = 1  # 4 elements
    keep = filter_counts(c, ScreenConfig(min_gap=1.0))
    assert keep.tolist() == [True, False, False]


def test_structure_filter_drops_elements_and_alloys_unless_asked():
    from wbg_core.composition.elements import VOCAB_INDEX

    def row(**n):
        r = np.zeros(87, np.int8)
        for el, k in n.items():
            r[VOCAB_INDEX[el]] = k
        return r

    c = np.stack([row(H=1), row(Cu=1, Zn=1), row(Mg=1, O=1), row(Hf=1)])  # H, CuZn, MgO, Hf
    assert filter_counts(c, ScreenConfig(min_gap=1.0)).tolist() == [False, False, True, False]
    assert filter_counts(c, ScreenConfig(min_gap=1.0, allow_elements_and_alloys=True)).all()


@pytest.mark.slow
def test_screen_cli_on_a_generated_pool(tmp_path):
    out = tmp_path / "cand.csv"
    r = subprocess.run([sys.executable, "-m", "wbg_core", "screen", "--min-gap", "3", "--pool", "5000", "--output", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out)
    assert list(df.columns)[:6] == ["formula", "band_gap_mean", "band_gap_std", "p_in_window", "compound_valid", "novel"]
    # named as the page's CSV names them: which gap of a non-metal is the median, which the mean
    assert {"median_gap_if_nonmetal", "mean_gap_if_nonmetal"} <= set(df.columns) and "gap_if_nonmetal" not in df
    assert "funnel:" in r.stderr and "compound_readings" in r.stderr
    r = subprocess.run([sys.executable, "-m", "wbg_core", "screen", "--min-gap", "5", "--max-gap", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "inverted" in r.stderr and "Traceback" not in r.stderr


def test_pool_rows_are_reduced_formulas():
    import numpy as np

    from wbg_core.engine.screening import ScreenConfig, generate_pool

    cfg = ScreenConfig(min_gap=0.0, generator="ae", max_atoms=None, max_elements=None).validate()
    pool = generate_pool(3000, 0, CheckpointSet.shipped().generator("ae"), cfg)
    assert len(pool) > 100
    assert (np.gcd.reduce(pool.astype(int), axis=1) == 1).all()  # H4Cl2 and H2Cl are one candidate


def test_given_pool_rows_are_reduced_before_novelty_and_deduplication(oracle):
    from wbg_core.composition import encode_counts

    rows = encode_counts(["S2O4", "SO2", "H4Cl2"]).counts  # S2O4 is SO2 (in MP); H4Cl2 is H2Cl
    res = screen(ScreenConfig(min_gap=0.0, p_threshold=0.0, max_atoms=None, max_elements=None, valid_only=False),
                 oracle, pool_counts=rows)  # H2Cl is not charge-balanced: keep it to see the reduction
    df = res.candidates
    assert sorted(df["formula"]) == ["H2Cl", "SO2"]
    assert not df.set_index("formula").loc["SO2", "novel"]
    assert res.funnel["unique"] == 2


def test_compound_reading_grows_the_screened_pool_of_compounds():
    """The shipped generator's compound reading against the plain decode, same samples."""
    from wbg_core.composition import compound_valid, counts_to_formulas
    from wbg_core.engine.screening import generate_pool

    pools = {}
    for drop in (0.0, None):
        funnel = {}
        pool = generate_pool(20_000, 4, CheckpointSet.shipped().gan(),
                             ScreenConfig(min_gap=3.0, pool=20_000, compound_max_drop=drop), funnel=funnel)
        pools[drop] = (int(compound_valid(counts_to_formulas(pool)).sum()), funnel)
    assert pools[0.0][1]["compound_readings"] == 0 and pools[None][1]["compound_readings"] > 500
    assert pools[None][0] > 1.05 * pools[0.0][0]
