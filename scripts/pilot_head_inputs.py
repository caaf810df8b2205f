"""What the head-pilot scripts read about a split's rows (pilot_crossfit_head.py,
pilot_head_on_validation.py, measure_head_gain.py): the ensemble runs once per row, and the
shipped head predicts from the same features, as Oracle.predict_detail does."""
import numpy as np
import pandas as pd

from wbg_core.composition.featurize import featurise
from wbg_core.models.forest import statistics_with_ionic
from wbg_core.models.oracle_head import head_features, regressor_start


def head_inputs(oracle, rows: pd.DataFrame) -> dict:
    """x: head features; s: the σ the head scales; y: the MP gap; start: what the regressor boosts
    from; out: the members' outputs; detail: the shipped head's prediction."""
    z, w, _ = featurise(rows["formula"])
    out = oracle.ensemble_outputs(z, w)
    x, s = head_features(out, statistics_with_ionic(z, w)), out.regressor_std()
    return {"x": x, "s": s, "y": rows["band_gap"].to_numpy(np.float64), "out": out,
            "start": regressor_start(x, oracle.head.calibration), "detail": oracle.head.predict(x, s)}
