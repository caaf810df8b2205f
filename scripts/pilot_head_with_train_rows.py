"""Does the cross-fitted gap regressor gain from the train split's non-metals as well?

python scripts/pilot_head_with_train_rows.py [CHECKPOINT_DIR]  (2 threads; about 6 min)
The shipped regressor learns on the ~9,000 validation non-metals only (5 folds), where the members'
outputs are out-of-sample. The train split has three times as many non-metals, but there the
members' outputs are in-sample (their mean is far closer to the label). Here each fold's booster
also learns every train non-metal, with a column that flags it as in-sample (0 for validation and
test rows) and a weight; out-of-fold MAE on the validation non-metals and the 5 boosters' mean on
the test non-metals, beside the shipped recipe in the same run. Also prints how close the
non-metal members come to the labels of the rows they learnt, by true gap.
"""
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
from sklearn.model_selection import KFold

from pilot_head_inputs import head_inputs
from wbg_core.data import load_bandgaps, split
from wbg_core.models.oracle import load
from wbg_core.models.oracle_head_fit import HeadConfig
from wbg_core.settings import set_torch_threads

set_torch_threads(2)
oracle = load(Path(sys.argv[1] if len(sys.argv) > 1 else "models/oracle"))
cfg = HeadConfig()
parts = split(load_bandgaps(), seed=0)
tr, va, te = (head_inputs(oracle, parts[name].query("band_gap > 0")) for name in ("train", "val", "test"))
rounds = int(oracle.head.calibration["regressor_rounds"])
params = {**cfg.booster_params(threads=2), "objective": "l1", "num_leaves": cfg.crossfit_num_leaves}
folds = list(KFold(cfg.folds, shuffle=True, random_state=0).split(va["x"]))


def flagged(x, flag):
    return np.c_[x, np.full(len(x), flag, np.float64)]


def run(label, train_weight=None, n_rounds=rounds):
    oof, test = np.zeros(len(va["y"])), np.zeros(len(te["y"]))
    for fit, held in folds:
        x, y, start, w = flagged(va["x"][fit], 0), va["y"][fit], va["start"][fit], np.ones(len(fit))
        if train_weight is not None:
            x, y = np.vstack([x, flagged(tr["x"], 1)]), np.r_[y, tr["y"]]
            start, w = np.r_[start, tr["start"]], np.r_[w, np.full(len(tr["y"]), train_weight)]
        booster = lgb.train(params, lgb.Dataset(x, y, init_score=start, weight=w), num_boost_round=n_rounds)
        oof[held] = booster.predict(flagged(va["x"][held], 0)) + va["start"][held]
        test += (booster.predict(flagged(te["x"], 0)) + te["start"]) / len(folds)
    print(f"{label}: out-of-fold validation MAE {np.abs(np.clip(oof, 0, None) - va['y']).mean():.4f}, "
          f"test {np.abs(np.clip(test, 0, None) - te['y']).mean():.4f}", flush=True)


for name, d in (("train (learnt)", tr), ("test", te)):
    m = np.clip(d["out"].nonmetal_means.mean(0), 0, None)
    cells = []
    for lo, hi in ((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 20)):
        k = (d["y"] > lo) & (d["y"] <= hi)
        cells.append(f"{lo}-{hi if hi < 20 else ''} eV {np.abs(m - d['y'])[k].mean():.3f} ({(d['y'] - m)[k].mean():+.3f})")
    print(f"non-metal members' mean, {name}, MAE (mean truth - members) by true gap: " + ", ".join(cells), flush=True)
run(f"validation folds only, {rounds} rounds (shipped recipe)")
for weight, n in ((1.0, rounds), (1.0, 400), (0.3, 400)):
    run(f"+ train non-metals flagged in-sample, weight {weight}, {n} rounds", weight, n)
