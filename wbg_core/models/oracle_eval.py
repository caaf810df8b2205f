"""How far to trust the oracle, measured one way for the card, the Models page, the CLI and the bench.

A user reads a predicted gap, so the calibration figures are binned by the *predicted* gap:
a ±1σ that holds 68% of the truth over all formulas can still hold half of it where the app
looks, because the metals (predicted ~0 with a tiny σ) fill the average. Window selection
and the ROC AUC for wide gaps are the screening page's own questions. Nothing here imports
torch: predictions come in as arrays, so the random forest is judged by the same code.
"""
from __future__ import annotations

import numpy as np

# Predicted-gap bins (eV) of issue #12: the last one is open.
PRED_BINS = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, np.inf)
TRUE_BINS = (0.0, 1e-9, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, np.inf)
WINDOWS = ((1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 5.0), (5.0, 7.0))
WIDE_GAP_EV = 3.0
# The compounds a scientist checks first; "wide" ones (label >= 3 eV) must be within 0.5 eV.
CLASSIC_COMPOUNDS = ("MgO", "LiF", "NaCl", "CaF2", "GaN", "AlN", "ZnO", "Si", "GaAs", "SiO2", "Al2O3",
                     "TiO2", "SrYF5")


def p_in_window(mean, std, window: tuple[float, float]) -> np.ndarray:
    """P(lo < gap < hi) under N(mean, std²): the screening page's selection probability."""
    from scipy.special import ndtr

    a, b = window
    sd = np.maximum(np.asarray(std, np.float64), 1e-6)
    mean = np.asarray(mean, np.float64)
    hi = ndtr((b - mean) / sd) if np.isfinite(b) else 1.0
    lo = ndtr((a - mean) / sd) if np.isfinite(a) else 0.0
    return np.clip(hi - lo, 0.0, 1.0)


def regression_metrics(y, mean, std=None) -> dict:
    y, mean = np.asarray(y, np.float64), np.asarray(mean, np.float64)
    err = mean - y
    out = {"n": int(len(y)), "mae": float(np.abs(err).mean()) if len(y) else float("nan"),
           "rmse": float(np.sqrt((err ** 2).mean())) if len(y) else float("nan"),
           "r2": float(1 - (err ** 2).sum() / ((y - y.mean()) ** 2).sum()) if len(y) > 1 else float("nan")}
    if std is not None and len(y):
        std = np.asarray(std, np.float64)
        out["within_1_sigma"] = float((np.abs(err) <= std).mean())
        out["within_2_sigma"] = float((np.abs(err) <= 2 * std).mean())
    return out


def _bin_label(lo: float, hi: float) -> str:
    if hi == 1e-9:
        return "0 (metal)"
    if lo == 1e-9:
        lo = 0.0
    return f">= {lo:g}" if not np.isfinite(hi) else f"{lo:g}-{hi:g}"


def binned(y, mean, std, by: str = "predicted") -> list[dict]:
    """Per bin of the predicted (or true) gap: n, bias = mean(truth - prediction), MAE, ±1σ/±2σ coverage."""
    y, mean = np.asarray(y, np.float64), np.asarray(mean, np.float64)
    std = None if std is None else np.asarray(std, np.float64)
    key, edges = (mean, PRED_BINS) if by == "predicted" else (y, TRUE_BINS)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (key >= lo) & (key < hi) if lo > 0 else key < hi
        row = {"bin": _bin_label(lo, hi), "lo": lo, "hi": hi if np.isfinite(hi) else None, "n": int(m.sum())}
        if m.any():
            err = y[m] - mean[m]
            row.update(bias=float(err.mean()), mae=float(np.abs(err).mean()))
            if std is not None:
                row.update(within_1_sigma=float((np.abs(err) <= std[m]).mean()),
                           within_2_sigma=float((np.abs(err) <= 2 * std[m]).mean()))
        rows.append(row)
    return rows


def window_selection(y, mean, std, windows=WINDOWS, threshold: float = 0.5, p_window=None) -> list[dict]:
    """Select P(in window) >= threshold: precision, recall and F1 against the true gap, per window.
    p_window: the model's own P(in window) as a function of the window (GapModel.window_probability);
    without it, a normal with the given mean and σ."""
    y = np.asarray(y, np.float64)
    rows = []
    for lo, hi in windows:
        truth = (y > lo) & (y < hi)
        if p_window is not None:
            picked = np.asarray(p_window((lo, hi))) >= threshold
        elif std is None:
            picked = (np.asarray(mean) > lo) & (np.asarray(mean) < hi)
        else:
            picked = p_in_window(mean, std, (lo, hi)) >= threshold
        tp = int((truth & picked).sum())
        precision = tp / picked.sum() if picked.any() else 0.0
        recall = tp / truth.sum() if truth.any() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"window": f"{lo:g}-{hi:g}", "n_true": int(truth.sum()), "n_selected": int(picked.sum()),
                     "precision": float(precision), "recall": float(recall), "f1": float(f1)})
    return rows


def window_reliability(y, mean, std, windows=WINDOWS, p_window=None, n_bins: int = 10) -> dict | None:
    """Does P(in window) mean what it says? Over every (formula, window) pair: the Brier score, the
    expected calibration error and, per bin of P, its mean against the share truly in the window."""
    if p_window is None and std is None:
        return None
    y = np.asarray(y, np.float64)
    prob = np.concatenate([np.asarray(p_window(w)) if p_window is not None else p_in_window(mean, std, w)
                           for w in windows])
    truth = np.concatenate([(y > lo) & (y < hi) for lo, hi in windows]).astype(np.float64)
    b = np.clip((prob * n_bins).astype(int), 0, n_bins - 1)
    rows = [{"lo": k / n_bins, "hi": (k + 1) / n_bins, "n": int((b == k).sum()),
             "mean_p": float(prob[b == k].mean()) if (b == k).any() else None,
             "observed": float(truth[b == k].mean()) if (b == k).any() else None} for k in range(n_bins)]
    ece = sum(r["n"] * abs(r["mean_p"] - r["observed"]) for r in rows if r["n"]) / max(len(prob), 1)
    return {"brier": float(((prob - truth) ** 2).mean()) if len(prob) else float("nan"), "ece": float(ece),
            "bins": rows}


def roc_auc_wide(y, mean, threshold: float = WIDE_GAP_EV) -> float:
    """How well the predicted gap ranks gap >= threshold above the rest (1 = perfect, 0.5 = chance)."""
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(y) >= threshold
    if truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, np.asarray(mean, np.float64)))


def evaluate_predictions(y, mean, std=None, p_window=None) -> dict:
    """Every figure of issue #12 for one set of predictions (NaN predictions are an error, not a gap);
    p_window: see window_selection."""
    y, mean = np.asarray(y, np.float64), np.asarray(mean, np.float64)
    if not np.isfinite(mean).all() or (std is not None and not np.isfinite(np.asarray(std)).all()):
        raise ValueError(f"{int((~np.isfinite(mean)).sum())} predictions are not finite")
    nm = y > 0
    s = None if std is None else np.asarray(std, np.float64)
    if p_window is not None:  # once per window: selection and reliability read the same P
        probs = {w: np.asarray(p_window(w)) for w in WINDOWS}
        p_window = probs.__getitem__
    windows = window_selection(y, mean, s, p_window=p_window)
    out = {"test_full": regression_metrics(y, mean, s),
           "test_nonmetal": regression_metrics(y[nm], mean[nm], None if s is None else s[nm]),
           "by_predicted_gap": binned(y, mean, s, "predicted"),
           "by_true_gap": binned(y, mean, s, "true"),
           "windows": windows,
           "window_mean_f1": float(np.mean([w["f1"] for w in windows])),
           "window_reliability": window_reliability(y, mean, s, p_window=p_window),
           "roc_auc_gap_ge_3eV": roc_auc_wide(y, mean),
           "test_metal_predicted_below_0.5eV": float((mean[~nm] < 0.5).mean()) if (~nm).any() else float("nan")}
    if s is not None:
        cov = [b["within_1_sigma"] for b in out["by_predicted_gap"] if b["n"]]
        bias = [abs(b["bias"]) for b in out["by_predicted_gap"] if b["n"]]
        out["worst_bin_abs_bias"] = float(max(bias))
        out["bin_coverage_range"] = [float(min(cov)), float(max(cov))]
    return out


def classic_table(predict, known_gaps: dict[str, float], formulas=CLASSIC_COMPOUNDS) -> list[dict]:
    """Prediction ± σ against the bundled label for the textbook compounds; `predict(formulas)` -> (mean, std)."""
    mean, std = predict(list(formulas))[:2]
    rows = []
    for f, m, s in zip(formulas, mean, std):
        label = known_gaps.get(f)
        row = {"formula": f, "label": label, "mean": float(m), "std": float(s)}
        if label is not None:
            off = float(m) - label
            row.update(error=off, sigmas_off=abs(off) / max(float(s), 1e-9), wide=label >= WIDE_GAP_EV,
                       ok=abs(off) <= 2 * float(s) and (label < WIDE_GAP_EV or abs(off) <= 0.5))
        rows.append(row)
    return rows


def classic_verdict(row: dict) -> str | None:
    """Why a classic-compound row passes or not, in words (None without a label)."""
    if row.get("label") is None:
        return None
    if row["ok"]:
        return "yes"
    why = []
    if row["sigmas_off"] > 2:
        why.append("more than 2σ off")
    if row.get("wide") and abs(row["error"]) > 0.5:
        why.append(f"a wide gap {abs(row['error']):.2f} eV off (limit 0.5)")
    return "no: " + "; ".join(why)


def random_sample(n_total: int, n: int | None, seed: int = 0) -> np.ndarray:
    """Indices of a random sample of n rows (all rows when n is None or larger): never the first rows."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


def evaluate_model(predict, data, split_seed: int = 0, n: int | None = None, sample_seed: int = 0,
                   split_name: str = "test"):
    """The one evaluation: `predict(formulas) -> (mean, std or None[, P(in window) as a function of
    the window])` on a split of the MP table.

    n: a random sample of that many formulas (labelled with its n), never the first rows.
    Returns (metrics, predictions frame with formula, band_gap, band_gap_mean, band_gap_std, source).
    """
    import pandas as pd

    from ..data import split

    whole = split(data, seed=split_seed)[split_name]
    part = whole.iloc[random_sample(len(whole), n, sample_seed)]
    mean, std, *p_window = predict(part["formula"].tolist())
    y = part["band_gap"].to_numpy(np.float64)
    metrics = evaluate_predictions(y, mean, std, p_window[0] if p_window else None)
    metrics["sample"] = {"split": split_name, "split_seed": split_seed, "n": int(len(part)),
                         "of": int(len(whole)),
                         "random_seed": sample_seed if n else None}
    frame = pd.DataFrame({"formula": part["formula"].to_numpy(), "band_gap": y,
                          "band_gap_mean": np.asarray(mean, np.float64),
                          "band_gap_std": np.full(len(y), np.nan) if std is None else np.asarray(std, np.float64),
                          "source": part["source"].to_numpy() if "source" in part else None})
    return metrics, frame


def card_metrics(predict, data, split_seed: int = 0, n: int | None = None) -> dict:
    """evaluate_model's metrics on the test split plus the classic-compound table: what a card holds."""
    metrics, _ = evaluate_model(predict, data, split_seed=split_seed, n=n)
    metrics["classic_compounds"] = classic_table(predict, dict(zip(data["formula"], data["band_gap"])))
    return metrics


def model_predictor(model):
    """formulas -> (mean, std, P(in window)) for `evaluate_model` from any GapModel (the oracle, the
    forest): windows are chosen by the model's own window_probability, as the screening page does."""
    def predict(formulas):
        p = model.predict(formulas)
        if not p.ok.all():
            bad = [e for e in p.error if e is not None]
            raise ValueError(f"{len(bad)} formulas could not be predicted, e.g. {bad[0]}")
        detail = {"mean": p.mean, "std": p.std, **p.extra, **p.window_detail}
        return (p.mean.astype(np.float64), p.std.astype(np.float64),
                lambda window: model.window_probability(detail, window))
    return predict
