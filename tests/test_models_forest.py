import numpy as np
import pytest

from wbg_core.models.forest import ForestConfig, ForestRegressor, composition_features, property_table


def test_property_table_has_no_gaps():
    t = property_table()
    assert not np.isnan(t).any()
    assert t.shape[1] == 21


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
