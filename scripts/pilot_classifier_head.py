"""The shipped head's P(non-metal) on validation and test, kept for pilot_classifier_stack.py."""
import numpy as np
from sklearn.metrics import roc_auc_score, log_loss
from wbg_core.data import load_bandgaps, split
from wbg_core.models.oracle import load_oracle
from wbg_core.composition.featurize import featurise
o = load_oracle(); df = load_bandgaps(); parts = split(df, seed=0)
out = {}
for k in ("val", "test"):
    v = parts[k]; z, w, e = featurise(v["formula"]); y = v["band_gap"].to_numpy()
    d = o.predict_detail(z, w); p = d["p_nonmetal"].astype(np.float64)
    print(k, "head P(non-metal): logloss", round(log_loss(y > 0, np.clip(p, 1e-6, 1 - 1e-6)), 4), "AUC", round(roc_auc_score(y > 0, p), 4),
          "accuracy", round(((p >= 0.5) == (y > 0)).mean(), 4))
    out[k] = {kk: np.asarray(vv) for kk, vv in d.items()}; out[k]["y"] = y
np.savez("runs/cls_pilot/head_detail.npz", **{f"{k}_{kk}": vv for k, d in out.items() for kk, vv in d.items()})
