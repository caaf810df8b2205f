"""What the head-pilot scripts read about a split's rows (pilot_crossfit_head.py,
pilot_stacked_head.py, pilot_head_on_validation.py, measure_head_gain.py), and how they print a
head's figures: the ensemble runs once per row, and the shipped head predicts from the same
features, as Oracle.predict_detail does."""
import numpy as np
import pandas as pd

from wbg_core.composition.featurize import featurise
from wbg_core.models.forest import statistics_with_ionic
from wbg_core.models.oracle_eval import evaluate_predictions
from wbg_core.models.oracle_head import head_features, hurdle_window_probability, regressor_start


def head_inputs(oracle, rows: pd.DataFrame) -> dict:
    """x: head features; s: the σ the head scales; y: the MP gap; start: what the regressor boosts
    from; out: the members' outputs; detail: the shipped head's prediction."""
    z, w, _ = featurise(rows["formula"])
    out = oracle.ensemble_outputs(z, w)
    x, s = head_features(out, statistics_with_ionic(z, w)), out.regressor_std()
    return {"x": x, "s": s, "y": rows["band_gap"].to_numpy(np.float64), "out": out,
            "start": regressor_start(x, oracle.head.calibration), "detail": oracle.head.predict(x, s)}


def print_figures(label: str, y, d: dict, cal: dict) -> None:
    """Every #12 figure of one head's predictions d (as OracleHead.predict gives them), by
    oracle_eval.evaluate_predictions, with P(in window) from calibration cal; and how well its
    P(non-metal) tells non-metals."""
    from sklearn.metrics import log_loss, roc_auc_score

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
          f"    bias by predicted bin: {bin_text}", flush=True)
