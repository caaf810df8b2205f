"""The oracle's head: a hurdle model stacked on the Roost ensemble, with conformal ±1σ.

Why: half the data are metals at exactly 0 eV, and one regressor fitted to both pulls every
wide gap down (MgO, LiF ran 1-2 eV low) while its σ held the truth for only half the
non-metals. The head splits the question as a scientist would: P(non-metal) from a
gradient-boosted classifier on Magpie-style statistics (isotonic-calibrated on the validation
split), and the gap of a non-metal from a gradient-boosted regressor trained on gap > 0 only
(Roost's L1 objective), which reads the ensemble's own outputs (each member's mean and σ, the
mean composition descriptor) beside the same statistics, and whose trees correct the non-metal
members' mean rather than a constant (a sum of leaves from a constant never passed 7.7 eV). The classifier leaves the ensemble's
outputs out: on the training split they are in-sample, and with them it stopped after 56
rounds with a worse validation log-loss (0.321 vs 0.299 on test, measured).
The point prediction is the mixture's mean, P(non-metal) x gap, so that in every bin of the
predicted gap the truth averages what is shown.

σ is calibrated on the validation split only, by split-conformal prediction (MAPIE,
standardised scores |y - ŷ| / σ) separately in each bin of the predicted gap, so ±1σ holds
~68% of the truth wherever a user reads a number, not just on average. Two levels: the
non-metal regressor's σ (used for P(in window)) and the total σ of the point prediction
(the mixture's second moment about it), each with its own per-bin scale.

P(in window) comes from the same two parts, not from a normal around the point prediction:
P(non-metal) times the probability that the non-metal's gap lies in the window, read from the
quantiles of its standardised residuals (y - gap) / σ on the validation non-metals, per bin of
the predicted gap (a split-conformal predictive distribution, Vovk et al. 2017). Those
residuals are skewed (below 1 eV the truth runs above the prediction far more often than
below), which a normal cannot say; a window that reaches down to 0 eV also holds the metals.
Measured on the test split: windows chosen at P >= 0.5 gain F1 (0.588 -> 0.611 on the same
predictions) and P itself is better calibrated (docs/models.md).

Files beside the ensemble's weights: LightGBM's own text format (never a pickle) and a
JSON calibration, each checked against the sha256 that config.json records.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from .errors import ModelError
from .oracle_eval import PRED_BINS

CLASSIFIER_FILE = "head_nonmetal.lgb.txt.gz"  # LightGBM's text, gzip-compressed (a third of the size)
REGRESSOR_FILE = "head_gap.lgb.txt.gz"
CALIBRATION_FILE = "calibration.json"
# checkpoints before 2026-12 hold the boosters as plain text under these names
LEGACY_FILES = {CLASSIFIER_FILE: "head_nonmetal.lgb.txt", REGRESSOR_FILE: "head_gap.lgb.txt"}
MAX_BOOSTER_BYTES = 256 * 2 ** 20  # a booster's text may not unpack beyond this
STD_FLOOR_EV = 0.02  # below this a σ claims more than the DFT labels can give
CONFIDENCE = 0.6827  # ±1σ of a normal
RESIDUAL_LEVELS = 101  # quantiles 0%, 1%, ..., 100% of the standardised residual, per bin
MIN_BIN_ROWS = 20  # a bin with fewer validation rows borrows all of them
START_DECIMALS = 4  # the regressor's start is rounded to 0.1 meV (regressor_start)


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
    early_stopping: int = 50  # rounds without gain on the validation split
    seed: int = 0
    # boost the gap regressor from the non-metal members' mean rather than from a constant:
    # from a constant, 255-leaf trees never said more than ~7.7 eV (members reach 8.4) and
    # the wide-gap active-learning labels fell by half (docs/models.md)
    regressor_from_members: bool = True
    # "validation": cross-fit the gap regressor on the validation split, where the members' outputs
    # are out-of-sample, and calibrate σ and the window distribution from its out-of-fold predictions
    # (pilot, docs/models.md: test gap > 0 0.433 -> 0.420). "train": boosted on the train split.
    regressor_fit_on: str = "train"
    regressor_folds: int = 5


def head_features(outputs, magpie: np.ndarray) -> np.ndarray:
    """Rows: each member's mean and σ, each non-metal member's mean and σ, the averaged descriptor,
    then the Magpie statistics (the classifier reads only those: `classifier_first_column`)."""
    return np.hstack([outputs.stacked(), magpie]).astype(np.float32)


def _bin_index(pred: np.ndarray, edges) -> np.ndarray:
    return np.clip(np.searchsorted(np.asarray(edges), pred, side="right") - 1, 0, len(edges) - 2)


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


class OracleHead:
    """P(non-metal) x gap-of-a-non-metal, with per-bin conformal σ; see the module docstring."""

    def __init__(self, classifier, regressor, calibration: dict):
        self.classifier = classifier
        self.regressor = regressor
        self.calibration = calibration

    def predict(self, features: np.ndarray, roost_std: np.ndarray) -> dict[str, np.ndarray]:
        """mean, std (calibrated, of the point prediction), p_nonmetal, gap_if_nonmetal, std_if_nonmetal."""
        n = len(features)
        if n == 0:
            e = np.zeros(0, np.float32)
            return {"mean": e, "std": e, "p_nonmetal": e, "gap_if_nonmetal": e, "std_if_nonmetal": e}
        from ..settings import get_settings

        off = int(self.calibration["classifier_first_column"])
        threads = get_settings().torch_threads  # the same budget as torch: oversubscribing 2 cores is slow
        p = calibrated_p(self.classifier.predict(features[:, off:], num_threads=threads), self.calibration)
        r = np.clip(self.regressor.predict(features, num_threads=threads) + regressor_start(features, self.calibration),
                    0.0, None)
        return combine(p, r, roost_std, self.calibration)

    def save(self, directory: Path) -> dict[str, str]:
        """Write the three files; returns {file: sha256} for config.json."""
        import gzip

        from ..data.registry import sha256_of
        from ..files import atomic_write_bytes, atomic_write_text

        directory = Path(directory)

        boosters = {CLASSIFIER_FILE: self.classifier, REGRESSOR_FILE: self.regressor}
        for name, booster in boosters.items():  # mtime 0: the same model gives the same bytes
            atomic_write_bytes(directory / name, gzip.compress(booster.model_to_string().encode(), mtime=0))
        atomic_write_text(directory / CALIBRATION_FILE, json.dumps(self.calibration, indent=2) + "\n")
        texts = [*boosters, CALIBRATION_FILE]
        return {name: sha256_of(directory / name) for name in texts}  # of the bytes on disk

    @classmethod
    def load(cls, directory: Path, sha256: dict[str, str]) -> "OracleHead":
        """Each file must exist and match config.json's sha256; anything else is a ModelError naming it."""
        import lightgbm as lgb

        from .checkpoint import CONFIG, verify_file

        directory = Path(directory)
        names = {CALIBRATION_FILE: CALIBRATION_FILE}
        for role, legacy in LEGACY_FILES.items():  # an older checkpoint: the plain-text boosters
            old = legacy in sha256 or (not (directory / role).exists() and (directory / legacy).exists())
            names[role] = legacy if old else role
        texts = {}
        for role, name in names.items():
            path = directory / name
            if not path.is_file():
                raise ModelError(f"oracle head file {path} is missing (re-create it: wbg calibrate oracle --dir {directory})")
            verify_file(path, sha256.get(name), directory / CONFIG)
            try:
                data = _unpack(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
                if role != CALIBRATION_FILE:
                    _check_booster_layout(data)
                texts[role] = data.decode()
            except (UnicodeDecodeError, ValueError, EOFError, OSError) as exc:
                raise ModelError(f"oracle head file {path} is corrupt: {exc}") from exc
        loaded = {}
        for role in (CALIBRATION_FILE, CLASSIFIER_FILE, REGRESSOR_FILE):  # one at a time: the error names its file
            try:
                if role == CALIBRATION_FILE:
                    loaded[role] = json.loads(texts[role])
                    _check_calibration(loaded[role])
                else:
                    loaded[role] = lgb.Booster(model_str=texts[role])
            except (ValueError, KeyError, TypeError, lgb.basic.LightGBMError) as exc:
                raise ModelError(f"oracle head file {directory / names[role]} is corrupt: {exc}") from exc
        return cls(loaded[CLASSIFIER_FILE], loaded[REGRESSOR_FILE], loaded[CALIBRATION_FILE])


def _unpack(data: bytes) -> bytes:
    """gunzip with a ceiling, so a damaged or hostile file cannot unpack to gigabytes."""
    import gzip
    import io

    with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
        out = fh.read(MAX_BOOSTER_BYTES + 1)
    if len(out) > MAX_BOOSTER_BYTES:
        raise ValueError(f"it unpacks to more than {MAX_BOOSTER_BYTES // 2 ** 20} MB")
    return out


def _check_booster_layout(data: bytes) -> None:
    """LightGBM aborts the whole process (a C++ terminate, no exception) on a truncated model
    string; with Settings.verify_checksums off nothing else stops one. Checked first: the start
    and end markers, and each tree where the header's tree_sizes (byte counts) put it."""
    import re

    sizes = re.search(rb"^tree_sizes=([0-9 ]*)$", data, re.M)
    pos = data.find(b"\nTree=0\n") + 1
    if not data.startswith(b"tree\n") or b"\nend of parameters\n" not in data or sizes is None or pos == 0:
        raise ValueError("not a whole LightGBM model (a start or end marker is missing)")
    for k, n in enumerate(int(x) for x in sizes.group(1).split()):
        if not data.startswith(b"Tree=%d\n" % k, pos):
            raise ValueError(f"tree {k} is not where the model's tree_sizes put it")
        pos += n
    if not data.startswith(b"end of trees", pos):
        raise ValueError("the trees do not end where the model's tree_sizes say")


def calibrated_p(raw: np.ndarray, cal: dict) -> np.ndarray:
    """The classifier's score through the isotonic map fitted on the validation split."""
    return np.interp(raw, cal["p_isotonic_x"], cal["p_isotonic_y"])


def _check_calibration(cal: dict) -> None:
    for key in ("edges", "regressor_scales", "total_scales", "p_isotonic_x", "p_isotonic_y", "classifier_first_column"):
        if key not in cal:
            raise ValueError(f"{CALIBRATION_FILE} lacks '{key}'")
    n = len(cal["edges"]) - 1
    for key in ("regressor_scales", "total_scales"):
        v = np.asarray(cal[key], np.float64)
        if len(v) != n or not np.isfinite(v).all() or (v <= 0).any():
            raise ValueError(f"{CALIBRATION_FILE}: '{key}' must hold {n} positive numbers")
    if "regressor_start_columns" in cal:  # optional: older heads start from a constant
        c = cal["regressor_start_columns"]
        if not (isinstance(c, list) and len(c) == 2 and all(isinstance(v, int) for v in c)
                and 0 <= c[0] < c[1] <= int(cal["classifier_first_column"])):
            raise ValueError(f"{CALIBRATION_FILE}: 'regressor_start_columns' must be two column numbers [a, b) "
                             f"before the statistics, got {c!r}")
    if "residual_quantiles" in cal:  # optional: calibrations before 2026-12-03 lack it
        q = np.asarray(cal["residual_quantiles"], np.float64)
        if q.shape != (n, RESIDUAL_LEVELS) or not np.isfinite(q).all() or (np.diff(q, axis=1) < 0).any():
            raise ValueError(f"{CALIBRATION_FILE}: 'residual_quantiles' must hold {n} rising rows of "
                             f"{RESIDUAL_LEVELS} finite numbers")


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


def hurdle_window_probability(p, r, s_r, window: tuple[float, float], cal: dict) -> np.ndarray:
    """P(non-metal) x P(lo < gap < hi | non-metal), plus P(metal) when the window reaches 0 eV."""
    lo, hi = window
    p, r = np.asarray(p, np.float64), np.asarray(r, np.float64)
    s_r = np.maximum(np.asarray(s_r, np.float64), 1e-6)
    levels = np.linspace(0.0, 1.0, RESIDUAL_LEVELS)
    b = _bin_index(r, _edges(cal))
    inside = np.zeros(len(r))
    for k, q in enumerate(cal["residual_quantiles"]):
        m = b == k
        if not m.any():
            continue
        upper = np.interp((hi - r[m]) / s_r[m], q, levels, left=0.0, right=1.0) if np.isfinite(hi) else 1.0
        lower = np.interp((lo - r[m]) / s_r[m], q, levels, left=0.0, right=1.0) if lo > 0 else 0.0  # gap > 0
        inside[m] = upper - lower
    metal = (1.0 - p) if lo <= 0 else 0.0
    return np.clip(metal + p * inside, 0.0, 1.0)


def _edges(cal: dict) -> np.ndarray:
    return np.array([np.inf if e is None else e for e in cal["edges"]], np.float64)


def regressor_start(features: np.ndarray, cal: dict) -> np.ndarray | float:
    """What the gap regressor was boosted from: the mean of feature columns [a, b) (the non-metal
    members' means), or 0 for an older head fitted from a constant.

    The members' means carry float32 rounding that differs in the last place between processes
    (a Ray worker and the driver); rounded to 1e-4 eV, far below what a DFT gap resolves, the
    same formula gets the same start everywhere."""
    cols = cal.get("regressor_start_columns")
    if not cols:
        return 0.0
    a, b = int(cols[0]), int(cols[1])
    return np.round(features[:, a:b].astype(np.float64).mean(axis=1), START_DECIMALS)


def combine(p: np.ndarray, r: np.ndarray, roost_std: np.ndarray, cal: dict) -> dict[str, np.ndarray]:
    """Point prediction and calibrated σ from P(non-metal), the non-metal gap and the ensemble's σ."""
    edges = _edges(cal)
    s_r = np.maximum(roost_std * np.asarray(cal["regressor_scales"])[_bin_index(r, edges)], STD_FLOOR_EV)
    # The mixture's mean: with the regressor's gap wherever P >= 0.5 (measured: MAE 0.306 vs 0.308)
    # the truth ran 0.2-0.3 eV below the prediction in every bin above 1 eV, the metals among them
    pred = p * r
    # second moment of the mixture p·N(r, s_r²) + (1 - p)·δ(0) about the point prediction
    raw = np.sqrt(np.maximum(p * (s_r ** 2 + (r - pred) ** 2) + (1 - p) * pred ** 2, 1e-6))
    std = np.maximum(raw * np.asarray(cal["total_scales"])[_bin_index(pred, edges)], STD_FLOOR_EV)
    f = np.float32
    return {"mean": pred.astype(f), "std": std.astype(f), "p_nonmetal": p.astype(f),
            "gap_if_nonmetal": r.astype(f), "std_if_nonmetal": s_r.astype(f)}


def _crossfit_regressor(lgb, params: dict, x_va, y_va, start: dict, init, cfg: HeadConfig):
    """The gap regressor learnt on the validation non-metals: rounds by k-fold CV, out-of-fold predictions
    of every validation row (σ and the window distribution are calibrated on them), then one booster on all."""
    from sklearn.model_selection import KFold

    nm = y_va > 0
    s_va = np.broadcast_to(np.asarray(regressor_start(x_va, start), np.float64), (len(y_va),))
    def data(rows):
        return lgb.Dataset(x_va[rows], y_va[rows], init_score=init(s_va[rows], int(len(rows))))
    rows_nm = np.flatnonzero(nm)
    cv = lgb.cv(params, data(rows_nm), num_boost_round=cfg.regressor_rounds * 10, nfold=cfg.regressor_folds,
                seed=cfg.seed, stratified=False, callbacks=[lgb.early_stopping(cfg.early_stopping, verbose=False)])
    rounds = len(next(iter(cv.values())))
    oof = np.zeros(len(y_va))
    for fit_rows, held in KFold(cfg.regressor_folds, shuffle=True, random_state=cfg.seed).split(x_va):
        fold = lgb.train(params, data(fit_rows[nm[fit_rows]]), num_boost_round=rounds)
        oof[held] = fold.predict(x_va[held]) + s_va[held]
    return lgb.train(params, data(rows_nm), num_boost_round=rounds), np.clip(oof, 0.0, None)


def fit_head(feats: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], cfg: HeadConfig, magpie_first_column: int,
             threads: int = 2, nonmetal_mean_columns: tuple[int, int] | None = None) -> OracleHead:
    """feats: split -> (head features, ensemble σ, gap). Boosters fit on train, early-stopped on val (or the gap
    regressor cross-fitted on val: cfg.regressor_fit_on); P(non-metal) and σ calibrated on val only.
    nonmetal_mean_columns: where the non-metal members' means sit (cfg.regressor_from_members starts from them)."""
    import lightgbm as lgb
    from sklearn.isotonic import IsotonicRegression

    x_tr, _, y_tr = feats["train"]
    x_va, s_va, y_va = feats["val"]
    common = {"learning_rate": cfg.learning_rate, "num_leaves": cfg.num_leaves, "min_data_in_leaf": cfg.min_data_in_leaf,
              "feature_fraction": cfg.feature_fraction, "bagging_fraction": 0.8, "bagging_freq": 1, "seed": cfg.seed,
              "num_threads": threads, "verbose": -1, "deterministic": True, "force_row_wise": True}
    stop = [lgb.early_stopping(cfg.early_stopping, verbose=False)]
    off = magpie_first_column
    clf = lgb.train({**common, "objective": "binary", "num_leaves": 63, "min_data_in_leaf": 50,
                     "learning_rate": cfg.classifier_learning_rate},
                    lgb.Dataset(x_tr[:, off:], (y_tr > 0).astype(int)), num_boost_round=cfg.classifier_rounds,
                    valid_sets=[lgb.Dataset(x_va[:, off:], (y_va > 0).astype(int))], callbacks=stop)
    nm, vnm = y_tr > 0, y_va > 0
    start = {"regressor_start_columns": list(nonmetal_mean_columns)} if (
        cfg.regressor_from_members and nonmetal_mean_columns and nonmetal_mean_columns[1] > nonmetal_mean_columns[0]) else {}
    start_tr, start_va = regressor_start(x_tr[nm], start), regressor_start(x_va[vnm], start)
    # no start: LightGBM boosts from the label's average itself (an init_score of zeros would stop that)
    init = (lambda s, n: np.broadcast_to(np.asarray(s, np.float64), (n,)) if start else None)
    if cfg.regressor_fit_on not in ("train", "validation"):
        raise ValueError(f"HeadConfig.regressor_fit_on must be 'train' or 'validation', not {cfg.regressor_fit_on!r}")
    oof = None
    if cfg.regressor_fit_on == "validation":
        reg, oof = _crossfit_regressor(lgb, {**common, "objective": "l1"}, x_va, y_va, start, init, cfg)
    else:
        reg = lgb.train({**common, "objective": "l1"}, lgb.Dataset(x_tr[nm], y_tr[nm], init_score=init(start_tr, int(nm.sum()))),
                        num_boost_round=cfg.regressor_rounds,
                        valid_sets=[lgb.Dataset(x_va[vnm], y_va[vnm], init_score=init(start_va, int(vnm.sum())))], callbacks=stop)
    edges = list(PRED_BINS)
    raw_va = clf.predict(x_va[:, off:], num_iteration=clf.best_iteration)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw_va, (y_va > 0).astype(float))
    p_cal = {"classifier_first_column": off, "p_isotonic_x": [float(v) for v in iso.X_thresholds_],
             "p_isotonic_y": [float(v) for v in iso.y_thresholds_]}
    p_va = calibrated_p(raw_va, p_cal)
    r_va = np.clip(reg.predict(x_va, num_iteration=reg.best_iteration) + regressor_start(x_va, start), 0.0, None) \
        if oof is None else oof
    reg_scales = conformal_scales(r_va[vnm], s_va[vnm], y_va[vnm], edges)
    cal = {"edges": [None if not np.isfinite(e) else e for e in edges], "regressor_scales": reg_scales,
           "total_scales": [1.0] * (len(edges) - 1), **p_cal, **start}
    first = combine(p_va, r_va, s_va, cal)
    cal["residual_quantiles"] = residual_quantiles(r_va[vnm], first["std_if_nonmetal"][vnm].astype(np.float64),
                                                   y_va[vnm], edges)
    cal["total_scales"] = conformal_scales(first["mean"].astype(np.float64), first["std"].astype(np.float64), y_va, edges)
    cal.update(confidence=CONFIDENCE, fitted_on="validation split", n_val=int(len(y_va)), method=(
        "MAPIE SplitConformalRegressor, StdConformityScore, one conformalisation per predicted-gap bin; "
        "P(in window) from the quantiles of the non-metals' standardised residuals per bin"),
        config=asdict(cfg), classifier_rounds=int(clf.best_iteration),
        regressor_rounds=int(reg.best_iteration or reg.current_iteration()), regressor_fit_on=cfg.regressor_fit_on,
        **({} if oof is None else {"regressor_out_of_fold_mae": float(np.abs(oof[vnm] - y_va[vnm]).mean())}))
    # keep only the rounds early stopping chose, so the saved model predicts as validated
    clf = lgb.Booster(model_str=clf.model_to_string(num_iteration=clf.best_iteration))
    reg = lgb.Booster(model_str=reg.model_to_string(num_iteration=reg.best_iteration))
    return OracleHead(clf, reg, cal)
