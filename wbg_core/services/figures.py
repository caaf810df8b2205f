"""Figures of the app: band-gap bins of the latent map, and the model cards' diagnostics
(oracle test predictions, calibration, element frequencies of the generator vs the data)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..composition import FormulaError


def gap_bins(gaps, n_bins: int = 24, vmax: float | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Indices of the points in each of n_bins equal band-gap bins on [0, vmax] (values above
    vmax go to the last bin, below 0 or NaN to the first) and the bin edges.

    The explorer draws one single-coloured WebGL trace per bin instead of one trace with a
    colour per point: the browser then skips converting ~60k colours on every page view."""
    g = np.nan_to_num(np.asarray(gaps, np.float64), nan=0.0)
    top = float(vmax) if vmax is not None else float(np.percentile(g, 99.5)) if len(g) else 1.0
    top = top if top > 0 else 1.0
    b = np.clip(np.floor(g / top * n_bins).astype(np.int64), 0, n_bins - 1)
    order = np.argsort(b, kind="stable")
    counts = np.bincount(b, minlength=n_bins)
    return list(np.split(order, np.cumsum(counts)[:-1])), np.linspace(0.0, top, n_bins + 1)


def oracle_test_predictions(oracle, limit: int | None = 3000, seed: int | None = None,
                            data: pd.DataFrame | None = None, sample_seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """(metrics, predictions) of the oracle on a *random* sample of `limit` test formulas (None: all),
    by the same function as the card and the benchmark; metrics["sample"] says n and of how many."""
    from ..data import load_bandgaps
    from ..models.oracle_eval import evaluate_model, model_predictor
    from ..settings import get_settings

    return evaluate_model(model_predictor(oracle), load_bandgaps() if data is None else data,
                          split_seed=get_settings().split_seed if seed is None else seed, n=limit,
                          sample_seed=sample_seed)


def calibration_curve(y: np.ndarray, mean: np.ndarray, std: np.ndarray, n: int = 19) -> pd.DataFrame:
    """Expected vs observed coverage of central Gaussian intervals (a calibrated model sits on y = x)."""
    from scipy.stats import norm

    ok = np.isfinite(mean) & np.isfinite(std) & (std > 0)
    z = np.abs(y[ok] - mean[ok]) / std[ok]
    expected = np.linspace(0.05, 0.95, n)
    observed = [(z <= norm.ppf(0.5 + p / 2)).mean() if ok.any() else np.nan for p in expected]
    return pd.DataFrame({"expected": expected, "observed": observed})


def element_frequencies(formulas) -> pd.Series:
    """Share of formulas containing each element (index: element symbol)."""
    from ..composition import parse_formula

    counts: dict[str, int] = {}
    n = 0
    for f in formulas:
        if not f:
            continue
        try:
            comp = parse_formula(f)
        except FormulaError:
            continue
        n += 1
        for el in comp:
            counts[el] = counts.get(el, 0) + 1
    s = pd.Series(counts, dtype=float) / max(n, 1)
    return s.sort_values(ascending=False)


def generator_vs_data(gan, n: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Element frequency in generated formulas vs in the data (element, data, generated)."""
    from ..data import load_bandgaps

    df = load_bandgaps()
    data = element_frequencies(df.loc[df["encodable"], "formula"].to_numpy())
    s = gan.sample(n, seed=seed)
    gen = element_frequencies(s.loc[s["valid"], "formula"].to_numpy())
    out = pd.DataFrame({"data": data, "generated": gen}).fillna(0.0)
    out.index.name = "element"
    return out.sort_values("data", ascending=False).reset_index()
