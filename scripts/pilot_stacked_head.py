"""Does P(non-metal) gain from the ensemble's outputs once it learns where they are out-of-sample?

python scripts/pilot_stacked_head.py [CHECKPOINT_DIR]  (1 thread; about 8 min)
The shipped classifier reads only the Magpie statistics, because on the train split the members'
outputs are in-sample (with them it stopped early with a worse log-loss). On the validation split
they are out-of-sample, and so is the shipped classifier's own score. Here a second classifier is
cross-fitted on the validation split (5 folds) on [members' outputs, statistics, shipped score];
its out-of-fold probabilities get the isotonic map, and the test probability is the 5 fold models'
mean score through that map. The gap regressor is cross-fitted as in pilot_crossfit_head.py.
Test figures by oracle_eval.evaluate_predictions, beside the shipped head's in the same run.
"""
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import KFold

from pilot_head_inputs import head_inputs
from wbg_core.data import load_bandgaps, split
from wbg_core.models.oracle import load
from wbg_core.models.oracle_eval import evaluate_predictions
from wbg_core.models.oracle_head import PRED_BINS, combine, hurdle_window_probability
from wbg_core.models.oracle_head_fit import HeadConfig, conformal_scales, residual_quantiles
from wbg_core.settings import set_torch_threads

set_torch_threads(1)
oracle = load(Path(sys.argv[1] if len(sys.argv) > 1 else "models/oracle"))
shipped, cfg = oracle.head.calibration, HeadConfig()
off = int(shipped["classifier_first_column"])
parts = split(load_bandgaps(), seed=0)
data = {name: head_inputs(oracle, parts[name]) for name in ("val", "test")}
for d in data.values():
    d["p"] = d["detail"]["p_nonmetal"].astype(np.float64)
    d["raw"] = oracle.head.classifier.predict(d["x"][:, off:], num_threads=1)
    d["x2"] = np.c_[d["x"], d["raw"]]


def summary(label: str, y, d: dict, cal: dict) -> None:
    m = evaluate_predictions(y, d["mean"], d["std"], lambda win: hurdle_window_probability(
        d["p_nonmetal"], d["gap_if_nonmetal"], d["std_if_nonmetal"], win, cal))
    bins = [b for b in m["by_predicted_gap"] if b["n"]]
    bin_text = ", ".join(f"{b['bin']} {b['bias']:+.3f} (n {b['n']})" for b in bins)
    p = np.clip(d["p_nonmetal"].astype(np.float64), 1e-6, 1 - 1e-6)
    print(f"{label}: MAE {m['test_full']['mae']:.4f}, gap > 0 {m['test_nonmetal']['mae']:.4f}, "
          f"window F1 {m['window_mean_f1']:.4f}, AUC>=3 {m['roc_auc_gap_ge_3eV']:.4f}, "
          f"worst |bias| {max(abs(b['bias']) for b in bins):.3f}, "
          f"±1σ {min(b['within_1_sigma'] for b in bins):.1%}-{max(b['within_1_sigma'] for b in bins):.1%}; "
          f"P(non-metal) log-loss {log_loss(y > 0, p):.4f}, AUC {roc_auc_score(y > 0, p):.4f}\n"
          f"    bias by predicted bin: {bin_text}",
          flush=True)


te, va = data["test"], data["val"]
summary("shipped head", te["y"], te["detail"], shipped)
common = {"learning_rate": cfg.learning_rate, "num_leaves": cfg.num_leaves, "min_data_in_leaf": cfg.min_data_in_leaf,
          "feature_fraction": cfg.feature_fraction, "bagging_fraction": 0.8, "bagging_freq": 1, "seed": 0,
          "num_threads": 1, "verbose": -1, "deterministic": True, "force_row_wise": True}
folds = list(KFold(5, shuffle=True, random_state=0).split(va["x"]))
stop = [lgb.early_stopping(50, verbose=False)]

# gap regressor, cross-fitted on the validation non-metals
reg_p = {**common, "objective": "l1"}
nm = va["y"] > 0
cv = lgb.cv(reg_p, lgb.Dataset(va["x"][nm], va["y"][nm], init_score=va["start"][nm]), num_boost_round=2000,
            nfold=5, seed=0, stratified=False, callbacks=stop)
rounds = len(next(iter(cv.values())))
r_va, r_te = np.zeros(len(va["y"])), np.zeros(len(te["y"]))
for fit_rows, held in folds:
    rows = fit_rows[va["y"][fit_rows] > 0]
    reg = lgb.train(reg_p, lgb.Dataset(va["x"][rows], va["y"][rows], init_score=va["start"][rows]), num_boost_round=rounds)
    r_va[held] = reg.predict(va["x"][held]) + va["start"][held]
    r_te += (reg.predict(te["x"]) + te["start"]) / 5
r_va, r_te = np.clip(r_va, 0, None), np.clip(r_te, 0, None)
print(f"regressor: {rounds} rounds; test non-metal MAE of r {np.abs(r_te - te['y'])[te['y'] > 0].mean():.4f}", flush=True)


def calibrate(p_va, p_te, label):
    edges = list(PRED_BINS)
    cal = {**shipped, "regressor_scales": conformal_scales(r_va[nm], va["s"][nm], va["y"][nm], edges),
           "total_scales": [1.0] * (len(edges) - 1)}
    first = combine(p_va, r_va, va["s"], cal)
    cal["residual_quantiles"] = residual_quantiles(r_va[nm], first["std_if_nonmetal"][nm].astype(np.float64),
                                                   va["y"][nm], edges)
    cal["total_scales"] = conformal_scales(first["mean"].astype(np.float64), first["std"].astype(np.float64),
                                           va["y"], edges)
    summary(label, te["y"], combine(p_te, r_te, te["s"], cal), cal)


calibrate(va["p"], te["p"], "shipped P, cross-fitted regressor")
# classifier, cross-fitted on the validation split
for name, cols in (("outputs+stats+score", slice(None)), ("outputs+stats", slice(0, va["x"].shape[1]))):
    clf_p = {**common, "objective": "binary", "num_leaves": 63, "min_data_in_leaf": 50,
             "learning_rate": cfg.classifier_learning_rate}
    lab = (va["y"] > 0).astype(int)
    cvc = lgb.cv(clf_p, lgb.Dataset(va["x2"][:, cols], lab), num_boost_round=2000, nfold=5, seed=0,
                 stratified=True, callbacks=stop)
    crounds = len(next(iter(cvc.values())))
    raw_va, raw_te = np.zeros(len(lab)), np.zeros(len(te["y"]))
    for fit_rows, held in folds:
        clf = lgb.train(clf_p, lgb.Dataset(va["x2"][fit_rows][:, cols], lab[fit_rows]), num_boost_round=crounds)
        raw_va[held] = clf.predict(va["x2"][held][:, cols])
        raw_te += clf.predict(te["x2"][:, cols]) / 5
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw_va, lab)
    calibrate(iso.predict(raw_va), iso.predict(raw_te), f"stacked P ({name}, {crounds} rounds), cross-fitted regressor")
    if len(sys.argv) > 2:  # keep the arrays for further variants
        np.savez(sys.argv[2], **{f"{k}_{n}": d[k] for n, d in (("va", va), ("te", te)) for k in ("x2", "s", "y", "start", "p")},
                 r_va=r_va, r_te=r_te, raw_va=raw_va, raw_te=raw_te)
        break
