import numpy as np
import pytest

from wbg_core.models.forest import ForestConfig, ForestRegressor, composition_features, property_table


def test_property_table_has_no_gaps():
    t = property_table()
    assert not np.isnan(t).any()
    assert t.shape[1] == 21


def test_the_property_table_cache_is_read_back_and_never_trusted(tmp_path, monkeypatch):
    """The cached table is the built one bit for bit, a second process reads it without pymatgen,
    and a damaged, truncated or tampered file is rebuilt, not used."""
    from wbg_core.models import forest

    built = forest.table_from_cache(tmp_path)
    (path,) = tmp_path.glob("element-properties-*.npz")
    assert np.array_equal(built, forest._build_property_table())

    def no_build():
        raise AssertionError("rebuilt although the cache is good")

    with monkeypatch.context() as m:
        m.setattr(forest, "_build_property_table", no_build)
        assert np.array_equal(forest.table_from_cache(tmp_path), built)
    good = path.read_bytes()
    tampered = built.copy()
    tampered[8, 4] += 0.5  # oxygen's electronegativity, well-formed but wrong
    import io

    buf = io.BytesIO()
    np.savez(buf, table=tampered, digest=np.array("0" * 64))
    for damage in (b"", good[: len(good) // 2], b"not an npz", buf.getvalue()):
        path.write_bytes(damage)
        assert np.array_equal(forest.table_from_cache(tmp_path), built)
        rewritten = forest._read_table(path)  # and written again, whole
        assert rewritten is not None and np.array_equal(rewritten, built)
    assert np.array_equal(forest.table_from_cache(""), built)  # no cache directory: built each time


def test_features_depend_on_composition_not_order():
    x, errors = composition_features(["NaCl", "ClNa", "Na2Cl2", "MgO"])
    assert errors == [None] * 4
    assert np.allclose(x[0], x[1]) and np.allclose(x[0], x[2])
    assert not np.allclose(x[0], x[3])


def test_bad_formula_gives_nan_and_reason():
    rf = ForestRegressor(ForestConfig(n_estimators=5, n_jobs=1)).fit(["NaCl", "MgO", "Si", "Cu"], [5.0, 4.5, 0.6, 0.0])
    p = rf.predict(["NaCl", "Xq2"])
    mean, std, errors = p.mean, p.std, p.error
    assert np.isfinite(mean[0]) and np.isnan(mean[1])
    assert "not an element" in errors[1]


def test_forest_learns_gaps_from_real_data(bandgaps):
    from wbg_core.data import split

    parts = split(bandgaps, seed=0)
    train, test = parts["train"].iloc[:3000], parts["test"].iloc[:1000]
    rf = ForestRegressor(ForestConfig(n_estimators=30, n_jobs=1)).fit(train["formula"], train["band_gap"])
    mean = rf.predict(test["formula"]).mean
    mae = np.abs(mean - test["band_gap"].to_numpy()).mean()
    baseline = np.abs(test["band_gap"].to_numpy() - train["band_gap"].mean()).mean()
    assert mae < 0.75 * baseline
