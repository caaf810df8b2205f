"""Fitting the oracle's head (oracle_head.py): its boosters, P(non-metal)'s isotonic map and σ's
per-bin conformal scales, all calibrated on the validation split only.

Why two ways to fit. On the train split the members' outputs are in-sample: boosted there, the gap
regressor stopped after one round (the members' mean, to the digit) and a classifier that read
them stopped early with a worse log-loss. On the validation split they are out-of-sample, so
`fit_on="validation"` cross-fits there (k folds; each booster learns on the other k-1): the gap
regressor on the validation non-metals, and a second classifier on the members' outputs, the
statistics and the train-split classifier's own score (stacking). The k boosters' mean predicts;
σ, the window distribution and the isotonic map are calibrated on the out-of-fold predictions.

The regressor's L1 objective gives a median, which above 2 eV sits 0.1-0.2 eV above the mean of
the truth (a few wide gaps are far lower). `point="mean"` puts the mean of the calibrated
distribution into P(non-metal) x gap, so that each predicted-gap bin's truth averages what is
shown (docs/models.md has every figure).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from .oracle_eval import PRED_BINS
from .oracle_head import (CONFIDENCE, MIN_BIN_ROWS, POINTS, RESIDUAL_LEVELS, OracleHead, _bin_index, calibrated_p,
                          combine, regressor_start)

FIT_ON = ("train", "validation")


@dataclass
class HeadConfig:
    learning_rate: float = 0.1
    num_leaves: int = 255
    min_data_in_leaf: int = 20
    feature_fraction: float = 0.5
    # 300 rounds of 255 leaves: the validation MAE of 1,500 rounds of 63 at 40% of the predict time
    # (1M screening rows ~40 s on 2 cores); measured in docs/models.md
    regressor_rounds: int = 300
    classifier_rounds: int = 2000
    classifier_learning_rate: float = 0.05
    early_stopping: int = 50  # rounds without gain on the validation split (or its CV folds)
    seed: int = 0
    # boost the gap regressor from the non-metal members' mean rather than from a constant:
    # from a constant, 255-leaf trees never said more than ~7.7 eV (members reach 8.4) and
    # the wide-gap active-learning labels fell by half (docs/models.md)
    regressor_from_members: bool = True
    # "validation": cross-fit the gap regressor on the validation non-metals (k boosters averaged),
    # calibrated on its out-of-fold predictions. "train": one booster on the train split.
    regressor_fit_on: str = "validation"
    # "validation": stack a cross-fitted classifier on the train-split classifier's score, the
    # members' outputs and the statistics; "train": the train-split classifier alone.
    classifier_fit_on: str = "validation"
    folds: int = 5
    # leaves of a cross-fitted gap regressor: on the ~9k validation non-metals 31 leaves match 255 in
    # 5-fold CV (L1 0.3886 vs 0.3883 eV, 180 vs 168 rounds) at about an eighth of the predict time
    crossfit_num_leaves: int = 31
    # "mean": P(non-metal) x the mean of the non-metal gap's calibrated distribution; "median":
    # x the regressor's own (L1) gap, as heads before 2026-12-05 did
    point: str = "mean"

    def booster_params(self, threads: int) -> dict:
        """LightGBM's parameters every head booster shares (fit_head; the head pilots in scripts/)."""
        return {"learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                "min_data_in_leaf": self.min_data_in_leaf, "feature_fraction": self.feature_fraction,
                "bagging_fraction": 0.8, "bagging_freq": 1, "seed": self.seed, "num_threads": threads, "verbose": -1,
                "deterministic": True, "force_row_wise": True}

    def check(self) -> None:
        for name, allowed in (("regressor_fit_on", FIT_ON), ("classifier_fit_on", FIT_ON), ("point", POINTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"HeadConfig.{name} must be {' or '.join(map(repr, allowed))}, "
                                 f"not {getattr(self, name)!r}")
        if self.folds < 2 and "validation" in (self.regressor_fit_on, self.classifier_fit_on):
            raise ValueError(f"HeadConfig.folds must be at least 2 to cross-fit, not {self.folds}")


def conformal_scales(pred: np.ndarray, std: np.ndarray, y: np.ndarray, edges=PRED_BINS) -> list[float]:
    """Per bin of `pred`, the factor s such that pred ± s·std is MAPIE's split-conformal interval."""
    from mapie.conformity_scores import StdConformityScore
    from mapie.regression import SplitConformalRegressor

    b = _bin_index(pred, edges)
    scales = []
    for k in range(len(edges) - 1):
        m = b == k
        if m.sum() < MIN_BIN_ROWS:  # too few to calibrate: fall back to all rows
            m = np.ones(len(pred), bool)
        x = np.c_[pred[m], np.maximum(std[m], 1e-6)]
        mapie = SplitConformalRegressor(_GivenPrediction().fit(x, y[m]), confidence_level=CONFIDENCE,
                                        conformity_score=StdConformityScore(), prefit=True).conformalize(x, y[m])
        _, interval = mapie.predict_interval(np.array([[0.0, 1.0]]))  # σ = 1 at 0: the half-width is s
        scales.append(float(interval[0, 1, 0]))
    return scales


class _GivenPrediction(RegressorMixin, BaseEstimator):
    """A prefit regressor whose input is (prediction, σ): MAPIE calibrates outputs it is given."""

    def fit(self, X, y=None):
        self.fitted_ = True
        return self

    def predict(self, X, return_std: bool = False):
        X = np.asarray(X)
        return (X[:, 0], X[:, 1]) if return_std else X[:, 0]


def residual_quantiles(r: np.ndarray, s_r: np.ndarray, y: np.ndarray, edges=PRED_BINS) -> list[list[float]]:
    """Per bin of the non-metal gap r: quantiles of (y - r) / s_r over non-metals (y > 0)."""
    z = (np.asarray(y, np.float64) - r) / np.maximum(s_r, 1e-6)
    b = _bin_index(r, edges)
    levels = np.linspace(0.0, 1.0, RESIDUAL_LEVELS)
    out = []
    for k in range(len(edges) - 1):
        m = b == k
        out.append([float(v) for v in np.quantile(z[m] if m.sum() >= MIN_BIN_ROWS else z, levels)])
    return out


def calibrate_distribution(cal: dict, p: np.ndarray, r: np.ndarray, s: np.ndarray, y: np.ndarray, point: str,
                           edges=PRED_BINS) -> dict:
    """Fill `cal` with what combine() and P(in window) read, from validation rows the boosters did not
    learn: P(non-metal) p, the non-metal gap r, the ensemble's σ s and the truth y. The non-metal σ
    scales and the residual quantiles come from the non-metals; the total σ scales from every row,
    about the point prediction `point` gives."""
    nm = y > 0
    edges = list(edges)
    cal.update(edges=[None if not np.isfinite(e) else e for e in edges],
               regressor_scales=conformal_scales(r[nm], s[nm], y[nm], edges), total_scales=[1.0] * (len(edges) - 1))
    s_r = combine(p, r, s, cal)["std_if_nonmetal"].astype(np.float64)
    cal["residual_quantiles"] = residual_quantiles(r[nm], s_r[nm], y[nm], edges)
    cal["point"] = point  # from here on combine() gives the point prediction the head will show
    unscaled = combine(p, r, s, cal)
    cal["total_scales"] = conformal_scales(unscaled["mean"].astype(np.float64), unscaled["std"].astype(np.float64),
                                           y, edges)
    return cal


def _crossfit(lgb, params: dict, x: np.ndarray, target: np.ndarray, learn: np.ndarray, cfg: HeadConfig,
              max_rounds: int, init: np.ndarray | None = None, stratified: bool = False):
    """k boosters, each trained on the `learn` rows of the other k-1 folds, for the number of rounds
    k-fold CV on those rows chose; returns (boosters, out-of-fold prediction of every row, rounds).
    init: what a regressor boosts from (added back to its out-of-fold predictions)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    def data(rows):
        return lgb.Dataset(x[rows], target[rows], init_score=None if init is None else init[rows])

    cv = lgb.cv(params, data(np.flatnonzero(learn)), num_boost_round=max_rounds, nfold=cfg.folds, seed=cfg.seed,
                stratified=stratified, callbacks=[lgb.early_stopping(cfg.early_stopping, verbose=False)])
    rounds = len(next(iter(cv.values())))
    splitter = (StratifiedKFold if stratified else KFold)(cfg.folds, shuffle=True, random_state=cfg.seed)
    oof, boosters = np.zeros(len(target)), []
    for fit_rows, held in splitter.split(x, target if stratified else None):
        booster = lgb.train(params, data(fit_rows[learn[fit_rows]]), num_boost_round=rounds)
        oof[held] = booster.predict(x[held]) + (0.0 if init is None else init[held])
        boosters.append(booster)
    return boosters, oof, rounds


def fit_head(feats: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], cfg: HeadConfig, magpie_first_column: int,
             threads: int = 2, nonmetal_mean_columns: tuple[int, int] | None = None) -> OracleHead:
    """feats: split -> (head features, ensemble σ, gap). See the module docstring for fit_on; whatever is
    fitted on train is early-stopped on val, and P(non-metal) and σ are calibrated on val only.
    nonmetal_mean_columns: where the non-metal members' means sit (cfg.regressor_from_members starts from them)."""
    import lightgbm as lgb
    from sklearn.isotonic import IsotonicRegression

    cfg.check()
    x_tr, _, y_tr = feats["train"]
    x_va, s_va, y_va = feats["val"]
    common = cfg.booster_params(threads)
    stop = [lgb.early_stopping(cfg.early_stopping, verbose=False)]
    off = magpie_first_column
    clf_params = {**common, "objective": "binary", "num_leaves": 63, "min_data_in_leaf": 50,
                  "learning_rate": cfg.classifier_learning_rate}
    clf = lgb.train(clf_params, lgb.Dataset(x_tr[:, off:], (y_tr > 0).astype(int)), num_boost_round=cfg.classifier_rounds,
                    valid_sets=[lgb.Dataset(x_va[:, off:], (y_va > 0).astype(int))], callbacks=stop)
    clf = lgb.Booster(model_str=clf.model_to_string(num_iteration=clf.best_iteration))  # the rounds early stopping chose
    raw_va, stack, stack_rounds = clf.predict(x_va[:, off:]), [], None
    if cfg.classifier_fit_on == "validation":
        stack, raw_va, stack_rounds = _crossfit(lgb, clf_params, np.c_[x_va, raw_va], (y_va > 0).astype(int),
                                                np.ones(len(y_va), bool), cfg, cfg.classifier_rounds, stratified=True)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw_va, (y_va > 0).astype(float))
    cal = {"classifier_first_column": off, "p_isotonic_x": [float(v) for v in iso.X_thresholds_],
           "p_isotonic_y": [float(v) for v in iso.y_thresholds_]}
    p_va = calibrated_p(raw_va, cal)

    nm, vnm = y_tr > 0, y_va > 0
    if cfg.regressor_from_members and nonmetal_mean_columns and nonmetal_mean_columns[1] > nonmetal_mean_columns[0]:
        cal["regressor_start_columns"] = list(nonmetal_mean_columns)
    start_tr, start_va = (np.broadcast_to(np.asarray(regressor_start(x, cal), np.float64), (len(x),)) for x in (x_tr, x_va))
    # no start: LightGBM boosts from the label's average itself (an init_score of zeros would stop that)
    has_start = "regressor_start_columns" in cal
    reg_params = {**common, "objective": "l1"}
    if cfg.regressor_fit_on == "validation":
        regressors, r_va, reg_rounds = _crossfit(lgb, {**reg_params, "num_leaves": cfg.crossfit_num_leaves}, x_va, y_va,
                                                 vnm, cfg, cfg.regressor_rounds * 10,
                                                 init=start_va if has_start else None)
        cal["regressor_out_of_fold_mae"] = float(np.abs(np.clip(r_va[vnm], 0.0, None) - y_va[vnm]).mean())
    else:
        reg = lgb.train(reg_params, lgb.Dataset(x_tr[nm], y_tr[nm], init_score=start_tr[nm] if has_start else None),
                        num_boost_round=cfg.regressor_rounds, callbacks=stop, valid_sets=[
                            lgb.Dataset(x_va[vnm], y_va[vnm], init_score=start_va[vnm] if has_start else None)])
        reg_rounds = int(reg.best_iteration or reg.current_iteration())
        regressors = [lgb.Booster(model_str=reg.model_to_string(num_iteration=reg.best_iteration))]
        r_va = regressors[0].predict(x_va) + start_va
    calibrate_distribution(cal, p_va, np.clip(r_va, 0.0, None), s_va, y_va, cfg.point)
    cal.update(confidence=CONFIDENCE, fitted_on="validation split", n_val=int(len(y_va)), method=(
        "MAPIE SplitConformalRegressor, StdConformityScore, one conformalisation per predicted-gap bin; "
        "P(in window) from the quantiles of the non-metals' standardised residuals per bin"),
        config=asdict(cfg), classifier_rounds=int(clf.current_iteration()), regressor_rounds=int(reg_rounds),
        regressor_fit_on=cfg.regressor_fit_on, classifier_fit_on=cfg.classifier_fit_on,
        **({} if stack_rounds is None else {"classifier_stack_rounds": int(stack_rounds)}))
    return OracleHead(clf, regressors, cal, stack=stack)
