"""What would a gap regressor learnt on out-of-sample member outputs give on every #12 figure?

python scripts/pilot_crossfit_head.py [CHECKPOINT_DIR]  (1 thread; about 5 min)
The shipped head boosts its gap regressor on the train split, where the members' outputs are
in-sample. Here the same regressor (features, start, parameters) is cross-fitted on the
validation split: 5 folds, each model trained on the non-metals of the other 4; the validation
predictions are out-of-fold and the test prediction is the 5 models' mean. The shipped P(non-metal)
is kept; σ scales and the window distribution are re-fitted from the out-of-fold predictions by
oracle_head_fit.calibrate_distribution, as the head's own are (cross-conformal). Test figures by
oracle_eval.evaluate_predictions, beside the shipped head's in the same run.
"""
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
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
parts = split(load_bandgaps(), seed=0)
data = {name: head_inputs(oracle, parts[name]) for name in ("val", "test")}
for d in data.values():
    d["p"] = d["detail"]["p_nonmetal"].astype(np.float64)  # the shipped P(non-metal), kept

te, va = data["test"], data["val"]
print_figures("shipped head", te["y"], te["detail"], shipped)
params = {**cfg.booster_params(threads=1), "objective": "l1"}
nm = va["y"] > 0
cv = lgb.cv(params, lgb.Dataset(va["x"][nm], va["y"][nm], init_score=va["start"][nm]), num_boost_round=2000,
            nfold=5, seed=0, stratified=False, callbacks=[lgb.early_stopping(50, verbose=False)])
rounds = len(next(iter(cv.values())))
r_va, r_te = np.zeros(len(va["y"])), np.zeros(len(te["y"]))
for fit_rows, held in KFold(5, shuffle=True, random_state=0).split(va["x"]):
    rows = fit_rows[va["y"][fit_rows] > 0]
    reg = lgb.train(params, lgb.Dataset(va["x"][rows], va["y"][rows], init_score=va["start"][rows]), num_boost_round=rounds)
    r_va[held] = reg.predict(va["x"][held]) + va["start"][held]
    r_te += (reg.predict(te["x"]) + te["start"]) / 5
r_va, r_te = np.clip(r_va, 0, None), np.clip(r_te, 0, None)
cal = calibrate_distribution({}, va["p"], r_va, va["s"], va["y"], point="median")
print_figures(f"cross-fitted on validation ({rounds} rounds x 5 folds)", te["y"], combine(te["p"], r_te, te["s"], cal), cal)
