"""Does the gap regressor gain when it learns from out-of-sample member outputs? The shipped head
boosts on the train split, where the members' outputs are in-sample (docs/models.md).

python scripts/pilot_head_on_validation.py [CHECKPOINT_DIR]  (1 thread; a few minutes)
Fits the regressor (same features, start and parameters as the head) on the validation
non-metals, rounds chosen by 5-fold cross-validation there, and prints the MAE on the test
non-metals beside the members' mean and the shipped head's gap of a non-metal.
"""
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np

from pilot_head_inputs import head_inputs
from wbg_core.data import load_bandgaps, split
from wbg_core.models.oracle import load
from wbg_core.models.oracle_head_fit import HeadConfig
from wbg_core.settings import set_torch_threads

set_torch_threads(1)
oracle = load(Path(sys.argv[1] if len(sys.argv) > 1 else "models/oracle"))
cfg = HeadConfig()
parts = split(load_bandgaps(), seed=0)
data = {name: head_inputs(oracle, parts[name].query("band_gap > 0")) for name in ("val", "test")}
x_va, y_va, s_va = (data["val"][k] for k in ("x", "y", "start"))
x_te, y_te, s_te = (data["test"][k] for k in ("x", "y", "start"))
head_te = data["test"]["detail"]["gap_if_nonmetal"]
print(f"test non-metals: members' mean {np.abs(np.clip(s_te, 0, None) - y_te).mean():.4f}, "
      f"shipped head {np.abs(head_te - y_te).mean():.4f}", flush=True)
for leaves, rate, min_leaf in ((255, 0.1, 20), (31, 0.03, 50), (15, 0.02, 100)):
    params = {**cfg.booster_params(threads=1), "objective": "l1", "learning_rate": rate, "num_leaves": leaves,
              "min_data_in_leaf": min_leaf}
    cv = lgb.cv(params, lgb.Dataset(x_va, y_va, init_score=s_va), num_boost_round=2000, nfold=5, seed=0, stratified=False,
                callbacks=[lgb.early_stopping(50, verbose=False)])
    rounds = len(next(iter(cv.values())))
    reg = lgb.train(params, lgb.Dataset(x_va, y_va, init_score=s_va), num_boost_round=rounds)
    pred = np.clip(reg.predict(x_te) + s_te, 0, None)
    print(f"fitted on validation ({leaves} leaves, rate {rate}, {min_leaf} per leaf, {rounds} rounds): "
          f"test non-metals {np.abs(pred - y_te).mean():.4f}", flush=True)
