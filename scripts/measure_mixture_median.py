"""The mixture's median as the oracle's shown value, against its mean (docs/models.md, 2026-12-04).

Run: python scripts/measure_mixture_median.py (about 1 min): MAE, gap > 0, per-bin bias and
coverage, F1 and AUC on validation and test, σ re-scaled about the median on validation."""
import numpy as np
from wbg_core.data import load_bandgaps, split
from wbg_core.models.oracle import load_oracle
from wbg_core.models import oracle_head as oh
from wbg_core.models.oracle_head_fit import conformal_scales
from wbg_core.models.oracle_eval import evaluate_predictions, PRED_BINS
from wbg_core.composition.featurize import featurise
o = load_oracle(); cal = o.head.calibration
df = load_bandgaps(); parts = split(df, seed=0)
levels = np.linspace(0, 1, oh.RESIDUAL_LEVELS)

def median(p, r, s_r):
    p, r, s_r = (np.asarray(a, np.float64) for a in (p, r, s_r))
    q = np.clip(1 - 0.5 / np.maximum(p, 1e-12), 0, 1)
    b = oh._bin_index(r, oh._edges(cal))
    z = np.zeros(len(r))
    for k, qs in enumerate(cal["residual_quantiles"]):
        m = b == k
        z[m] = np.interp(q[m], levels, qs)
    return np.where(p >= 0.5, np.clip(r + s_r * z, 0, None), 0.0)

D = {}
for name in ("val", "test"):
    v = parts[name]; z, w, err = featurise(v["formula"]); y = v["band_gap"].to_numpy()
    D[name] = (o.predict_detail(z, w), y)
def raw_std(p, r, s_r, c):
    return np.sqrt(np.maximum(p * (s_r ** 2 + (r - c) ** 2) + (1 - p) * c ** 2, 1e-6))
d, y = D["val"]; p, r, s = (d[k].astype(np.float64) for k in ("p_nonmetal", "gap_if_nonmetal", "std_if_nonmetal"))
m = median(p, r, s); raw = raw_std(p, r, s, m)
scales = conformal_scales(m, raw, y)
print("total scales mean-centred", np.round(cal["total_scales"], 3), "median-centred", np.round(scales, 3))
for name in ("val", "test"):
    d, y = D[name]; p, r, s = (d[k].astype(np.float64) for k in ("p_nonmetal", "gap_if_nonmetal", "std_if_nonmetal"))
    for label, c, sc in (("mean", p * r, cal["total_scales"]), ("median", median(p, r, s), scales)):
        std = np.maximum(raw_std(p, r, s, c) * np.asarray(sc)[oh._bin_index(c, oh._edges(cal))], oh.STD_FLOOR_EV)
        ev = evaluate_predictions(y, c, std, p_window=lambda wdw: oh.hurdle_window_probability(p, r, s, wdw, cal))
        print(name, label, "MAE", round(ev["test_full"]["mae"], 4), "gap>0", round(ev["test_nonmetal"]["mae"], 4),
              "worst bias", round(ev["worst_bin_abs_bias"], 3), "cov", np.round(ev["bin_coverage_range"], 3),
              "F1", round(ev["window_mean_f1"], 3), "AUC", round(ev["roc_auc_gap_ge_3eV"], 4))
        print("    bias by bin", [round(b.get("bias", np.nan), 3) for b in ev["by_predicted_gap"]])
