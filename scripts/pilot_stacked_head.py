"""Does P(non-metal) gain from the ensemble's outputs once it learns where they are out-of-sample?

python scripts/pilot_stacked_head.py [CHECKPOINT_DIR]  (1 thread; about 4 min)
The shipped classifier reads only the Magpie statistics, because on the train split the members'
outputs are in-sample (with them it stopped early with a worse log-loss). On the validation split
they are out-of-sample, and so is the shipped classifier's own score. Here a second classifier is
cross-fitted on the validation split (5 folds) on [members' outputs, statistics, shipped score];
its out-of-fold probabilities get the isotonic map, and the test probability is the 5 fold models'
mean score through that map. The gap regressor is cross-fitted as in pilot_crossfit_head.py.
Each P is shown with the regressor's median and with the mean of its calibrated distribution
(calibration "point"). Test figures by oracle_eval.evaluate_predictions, beside the shipped
head's in the same run.
"""
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import KFold

from pilot_head_inputs import head_inputs, print_figures
from wbg_core.data import load_bandgaps, split
from wbg_core.models.oracle import load
from wbg_core.models.oracle_head import combine
from wbg_core.models.oracle_head_fit import HeadConfig, calibrate_distribution
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


te, va = data["test"], data["val"]
print_figures("shipped head", te["y"], te["detail"], shipped)
common = cfg.booster_params(threads=1)
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
    for point in ("median", "mean"):
        cal = calibrate_distribution({}, p_va, r_va, va["s"], va["y"], point)
        print_figures(f"{label}, the {point} shown", te["y"], combine(p_te, r_te, te["s"], cal), cal)


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
