"""P(in window) from the oracle's own predictive distribution: P(non-metal) x the non-metal gap's
conformal distribution (oracle_head), judged on held-out MP formulas, and its files checked."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from wbg_core.models import ModelError, load_oracle
from wbg_core.models.oracle import load
from wbg_core.models.oracle_eval import WINDOWS, p_in_window, window_selection
from wbg_core.models.oracle_head import CALIBRATION_FILE, RESIDUAL_LEVELS, hurdle_window_probability


@pytest.fixture(scope="module")
def held_out(oracle_test_sample):
    """P(in window) for the five windows of issue #12 on a random 3,000 test formulas (no model saw them)."""
    metrics, frame, p_window = oracle_test_sample
    y, mean, std = (frame[c].to_numpy() for c in ("band_gap", "band_gap_mean", "band_gap_std"))
    return metrics, y, mean, std, {w: p_window(w) for w in WINDOWS}


def test_p_in_window_means_what_it_says_on_held_out_formulas(held_out):
    _, y, _, _, p = held_out
    prob = np.concatenate([p[w] for w in WINDOWS])
    truth = np.concatenate([(y > lo) & (y < hi) for lo, hi in WINDOWS])
    for lo, hi in ((0.2, 0.5), (0.5, 0.8), (0.8, 1.01)):
        m = (prob >= lo) & (prob < hi)
        assert m.sum() >= 150, (lo, hi, m.sum())
        # sampling noise of a share at n >= 150: about ±0.04
        assert abs(prob[m].mean() - truth[m].mean()) <= 0.08, (lo, hi, prob[m].mean(), truth[m].mean())


def test_the_oracle_chooses_windows_better_than_a_normal_around_its_point_prediction(held_out):
    metrics, y, mean, std, _ = held_out
    normal = np.mean([w["f1"] for w in window_selection(y, mean, std)])
    assert metrics["window_mean_f1"] > normal  # 0.610 vs 0.589 on the whole test split
    assert metrics["window_mean_f1"] > 0.55


def test_a_window_from_0_ev_holds_the_metals():
    oracle = load_oracle()
    pred = oracle.predict(["Cu", "Fe3Al", "MgO", "SrYF5"])
    detail = {"mean": pred.mean, "std": pred.std, **pred.extra, **pred.window_detail}
    assert np.allclose(oracle.window_probability(detail, (0.0, np.inf)), 1.0)
    low = oracle.window_probability(detail, (0.0, 0.5))
    assert (low[:2] > 0.9).all() and (low[2:] < 0.1).all()
    assert (oracle.window_probability(detail, (5.0, 7.0))[:2] < 0.05).all()  # metals are not wide-gap candidates
    # the probabilities of disjoint windows add up to one
    parts = [oracle.window_probability(detail, w) for w in ((0.0, 2.0), (2.0, 4.0), (4.0, np.inf))]
    assert np.allclose(np.sum(parts, axis=0), 1.0)


def test_the_residual_distribution_is_read_per_predicted_gap_bin():
    levels = np.linspace(0, 1, RESIDUAL_LEVELS)
    skewed = list(np.quantile(np.r_[np.zeros(50), np.linspace(0, 3, 50)], levels))  # never below the gap
    symmetric = list(np.quantile(np.linspace(-1, 1, 101), levels))
    cal = {"edges": [0.0, 1.0, None], "residual_quantiles": [skewed, symmetric]}
    p = np.ones(2)
    below = hurdle_window_probability(p, np.array([0.5, 1.5]), np.ones(2), (0.01, 0.49), cal)
    assert below[0] == 0.0 and below[1] == 0.0  # the first bin's truth is never below its gap
    around = hurdle_window_probability(p, np.array([0.5, 1.5]), np.ones(2), (1.0, 2.0), cal)
    # residuals 0.5-1.5: a sixth of the skewed bin's rows, half of the symmetric one's
    assert abs(around[0] - 1 / 6) < 0.02 and abs(around[1] - 0.5) < 0.02


@pytest.fixture
def oracle_copy(tmp_path):
    dst = tmp_path / "oracle"
    shutil.copytree(load_oracle().directory, dst)
    return dst


def _rewrite_calibration(directory, change):
    cal = json.loads((directory / CALIBRATION_FILE).read_text())
    change(cal)
    text = json.dumps(cal)
    (directory / CALIBRATION_FILE).write_text(text)
    config = json.loads((directory / "config.json").read_text())
    config["head"]["sha256"][CALIBRATION_FILE] = hashlib.sha256(text.encode()).hexdigest()
    (directory / "config.json").write_text(json.dumps(config))


def test_a_calibration_from_before_the_residual_quantiles_uses_the_normal(oracle_copy):
    def before(cal):  # heads before 2026-12-03 had neither the quantiles nor a point prediction built on them
        cal.pop("residual_quantiles")
        cal.pop("point", None)

    _rewrite_calibration(oracle_copy, before)
    old = load(oracle_copy)
    pred = old.predict(["MgO", "GaN", "Cu"])
    detail = {"mean": pred.mean, "std": pred.std, **pred.extra, **pred.window_detail}
    assert np.array_equal(old.window_probability(detail, (3.0, 5.0)), p_in_window(pred.mean, pred.std, (3.0, 5.0)))


def test_damaged_residual_quantiles_are_refused_by_name(oracle_copy):
    def falling(cal):
        cal["residual_quantiles"][2] = cal["residual_quantiles"][2][::-1]

    _rewrite_calibration(oracle_copy, falling)
    with pytest.raises(ModelError, match=rf"{CALIBRATION_FILE} is corrupt: .*'residual_quantiles'"):
        load(oracle_copy)


def test_a_mean_point_without_its_residual_distribution_is_refused(oracle_copy):
    def broken(cal):
        cal.pop("residual_quantiles")
        cal["point"] = "mean"

    _rewrite_calibration(oracle_copy, broken)
    with pytest.raises(ModelError, match=rf"{CALIBRATION_FILE} is corrupt: .*'point' is 'mean', which needs 'residual_quantiles'"):
        load(oracle_copy)


def test_window_reliability_on_known_arrays():
    from wbg_core.models.oracle_eval import window_reliability

    y = np.array([1.5, 2.5, 3.5, 4.5, 6.0])
    sure = window_reliability(y, y, np.full(len(y), 1e-3))  # each formula certainly in its own window
    assert sure["brier"] == 0 and sure["ece"] == 0
    unsure = window_reliability(y, None, None, p_window=lambda w: np.full(len(y), 0.5))
    # P = 0.5 everywhere while one formula in five lies in each window
    assert unsure["brier"] == pytest.approx(0.25) and unsure["ece"] == pytest.approx(0.3)
    assert [r["n"] for r in unsure["bins"] if r["n"]] == [25]
    assert window_reliability(y, y, None) is None
