import shutil

import numpy as np
import pytest

from wbg_core.data import DataError, load_bandgaps, load_structures, split, split_labels
from wbg_core.data.loaders import load_element_embedding
from wbg_core.data.registry import data_path


def test_bandgap_table(bandgaps):
    assert len(bandgaps) == 89_885
    assert (bandgaps["band_gap"] > 0).sum() == 46_176
    assert bandgaps["formula"].is_unique
    nan = bandgaps[bandgaps["mp_formula"] == "NaN"]
    assert len(nan) == 1 and nan["formula"].iloc[0] == "NaN"  # sodium nitride, not missing
    assert bandgaps["formula"].notna().all()
    assert bandgaps["band_gap"].max() == pytest.approx(9.72, abs=0.01)


def test_structure_pool_rebuilds_real_structures():
    pool = load_structures()
    assert len(pool) == 115_541
    i = pool.index_of("mp-10694")
    s = pool.structure(i)
    assert s.composition.reduced_formula == "ScF3"
    assert s.lattice.a == pytest.approx(4.039342, abs=1e-5)


def test_embedding_covers_the_vocabulary():
    from wbg_core.composition import VOCAB

    emb = load_element_embedding()
    assert all(el in emb for el in VOCAB)
    assert emb["O"].shape == (200,)


def _copy_data(tmp_path):
    d = tmp_path / "data"
    shutil.copytree(data_path("mp_bandgap.csv").parent, d)
    return d


def test_corrupt_file_gives_clear_error(tmp_path):
    d = _copy_data(tmp_path)
    raw = bytearray((d / "mp_bandgap.csv").read_bytes())
    raw[1000] ^= 0xFF
    (d / "mp_bandgap.csv").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupt"):
        load_bandgaps(d)


def test_truncated_file_gives_clear_error(tmp_path):
    d = _copy_data(tmp_path)
    raw = (d / "mp_structures.npz").read_bytes()
    (d / "mp_structures.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated"):
        load_structures(d)


def test_missing_file_named(tmp_path):
    d = _copy_data(tmp_path)
    (d / "matscholar-embedding.json").unlink()
    with pytest.raises(DataError, match="matscholar-embedding.json"):
        load_element_embedding(d)


def test_split_is_deterministic_disjoint_and_60_20_20(bandgaps):
    a = split(bandgaps, seed=0)
    b = split(bandgaps, seed=0)
    c = split(bandgaps, seed=1)
    sizes = {k: len(v) for k, v in a.items()}
    assert sizes == {"train": 53_931, "val": 17_977, "test": 17_977}
    assert all((a[k]["formula"].values == b[k]["formula"].values).all() for k in a)
    assert set(a["test"]["formula"]) != set(c["test"]["formula"])
    sets = [set(v["formula"]) for v in a.values()]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])


def test_subsets_inherit_the_split(bandgaps):
    full = split(bandgaps, seed=0)
    nonmetal = split(bandgaps, seed=0, subset="nonmetal")
    assert set(nonmetal["test"]["formula"]) <= set(full["test"]["formula"])
    assert (nonmetal["train"]["band_gap"] > 0).all()
    total = sum(len(v) for v in nonmetal.values())
    assert total == 46_176
    assert abs(len(nonmetal["test"]) / total - 0.2) < 0.01


def test_split_labels_do_not_depend_on_row_order(bandgaps):
    f = bandgaps["formula"].to_numpy(dtype=object)
    perm = np.random.default_rng(3).permutation(len(f))
    assert (split_labels(f)[perm] == split_labels(f[perm])).all()


def test_the_hull_prices_each_bundled_formula_once_mp_first():
    """data.estimates.hull_phases: every bundled formula with an MP formation energy, then the ML
    estimates for the rest that have a pool structure; what is left is unpriced. MgO's MP row is a
    matbench_mp_gap_max row (no energy), so its price is CHGNet's estimate; Ba3Bi has neither."""
    from wbg_core.data.estimates import MP_SOURCE, hull_phases, load_estimates, unpriced_formulas

    df, phases, unpriced = load_bandgaps(), hull_phases(), set(unpriced_formulas())
    assert phases["formula"].is_unique and not unpriced & set(phases["formula"])
    assert len(phases) + len(unpriced) == len(df)
    assert (phases["source"] == MP_SOURCE).sum() == df["formation_energy_per_atom"].notna().sum()
    est = phases[phases["source"] != MP_SOURCE].set_index("formula")
    table = load_estimates().set_index("formula")
    assert set(est["source"]) == {"chgnet"} and len(est) == len(table.index.difference(
        df.loc[df["formation_energy_per_atom"].notna(), "formula"]))
    assert est.loc["MgO", "formation_energy_per_atom"] == pytest.approx(table.loc["MgO", "formation_energy_per_atom"])
    assert est.loc["MgO", "material_id"] == table.loc["MgO", "material_id"]
    assert "Ba3Bi" in unpriced and "NaCl" not in unpriced
