"""The oracle's head: a hurdle model stacked on the Roost ensemble, with conformal ±1σ.

Why: half the data are metals at exactly 0 eV, and one regressor fitted to both pulls every
wide gap down (MgO, LiF ran 1-2 eV low) while its σ held the truth for only half the
non-metals. The head splits the question as a scientist would: P(non-metal) from a
gradient-boosted classifier on Magpie-style statistics (isotonic-calibrated on the validation
split), and the gap of a non-metal from a gradient-boosted regressor on gap > 0 only (Roost's
L1 objective), which reads the ensemble's own outputs (each member's mean and σ, the mean
composition descriptor) beside the same statistics, and whose trees correct the non-metal
members' mean rather than a constant (a sum of leaves from a constant never passed 7.7 eV).
Where each booster learns, and why the shipped ones learn on the validation split, where the
members' outputs are out-of-sample: oracle_head_fit.py.
The point prediction is the mixture's mean, P(non-metal) x gap (with calibration "point":
"mean", the mean of the non-metal gap's calibrated distribution), so that in every bin of the
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

Files beside the ensemble's weights (booster_files): LightGBM's own text format (never a pickle) and a
JSON calibration, each checked against the sha256 that config.json records.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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
POINTS = ("median", "mean")  # the non-metal gap P(non-metal) multiplies: the regressor's, or its distribution's mean


def head_features(outputs, magpie: np.ndarray) -> np.ndarray:
    """Rows: each member's mean and σ, each non-metal member's mean and σ, the averaged descriptor,
    then the Magpie statistics (the classifier reads only those: `classifier_first_column`)."""
    return np.hstack([outputs.stacked(), magpie]).astype(np.float32)


def _bin_index(pred: np.ndarray, edges) -> np.ndarray:
    return np.clip(np.searchsorted(np.asarray(edges), pred, side="right") - 1, 0, len(edges) - 2)


def booster_files(cal: dict) -> dict[str, list[str]]:
    """role -> file names, as the calibration counts them: one gap regressor (REGRESSOR_FILE) or k
    cross-fitted ones, and k stacked classifiers after the train-split one (or none)."""
    k_reg, k_stack = int(cal.get("regressor_boosters", 1)), int(cal.get("classifier_stack_boosters", 0))
    return {"classifier": [CLASSIFIER_FILE],
            "stack": [f"head_nonmetal_stack.{i}.lgb.txt.gz" for i in range(k_stack)],
            "regressor": [REGRESSOR_FILE] if k_reg == 1 else [f"head_gap.{i}.lgb.txt.gz" for i in range(k_reg)]}


class OracleHead:
    """P(non-metal) x gap-of-a-non-metal, with per-bin conformal σ; see the module docstring.
    regressors: one booster, or k cross-fitted ones whose mean is the gap; stack: the cross-fitted
    classifiers that read the first classifier's score beside the features (oracle_head_fit)."""

    def __init__(self, classifier, regressors: list, calibration: dict, stack: list = ()):
        self.classifier = classifier
        self.regressors = list(regressors)
        self.stack = list(stack)
        self.calibration = {**calibration, "regressor_boosters": len(self.regressors),
                            "classifier_stack_boosters": len(self.stack)}

    def predict(self, features: np.ndarray, roost_std: np.ndarray) -> dict[str, np.ndarray]:
        """mean, std (calibrated, of the point prediction), p_nonmetal, gap_if_nonmetal, std_if_nonmetal."""
        n = len(features)
        if n == 0:
            e = np.zeros(0, np.float32)
            return {"mean": e, "std": e, "p_nonmetal": e, "gap_if_nonmetal": e, "std_if_nonmetal": e}
        from ..settings import get_settings

        off = int(self.calibration["classifier_first_column"])
        threads = get_settings().torch_threads  # the same budget as torch: oversubscribing 2 cores is slow
        raw = self.classifier.predict(features[:, off:], num_threads=threads)
        if self.stack:
            x = np.c_[features, raw]
            raw = np.mean([b.predict(x, num_threads=threads) for b in self.stack], axis=0)
        p = calibrated_p(raw, self.calibration)
        gap = np.mean([b.predict(features, num_threads=threads) for b in self.regressors], axis=0)
        r = np.clip(gap + regressor_start(features, self.calibration), 0.0, None)
        return combine(p, r, roost_std, self.calibration)

    def save(self, directory: Path) -> dict[str, str]:
        """Write the boosters and the calibration; returns {file: sha256} for config.json."""
        import gzip

        from ..data.registry import sha256_of
        from ..files import atomic_write_bytes, atomic_write_text

        directory = Path(directory)
        files = booster_files(self.calibration)
        boosters = dict(zip(files["classifier"] + files["stack"] + files["regressor"],
                            [self.classifier, *self.stack, *self.regressors]))
        for name, booster in boosters.items():  # mtime 0: the same model gives the same bytes
            atomic_write_bytes(directory / name, gzip.compress(booster.model_to_string().encode(), mtime=0))
        atomic_write_text(directory / CALIBRATION_FILE, json.dumps(self.calibration, indent=2) + "\n")
        return {name: sha256_of(directory / name) for name in [*boosters, CALIBRATION_FILE]}  # of the bytes on disk

    @classmethod
    def load(cls, directory: Path, sha256: dict[str, str]) -> "OracleHead":
        """Each file must exist and match config.json's sha256; anything else is a ModelError naming it."""
        import lightgbm as lgb

        directory = Path(directory)
        text = _read_head_file(directory, CALIBRATION_FILE, sha256)
        try:
            cal = json.loads(text)
            _check_calibration(cal)
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"oracle head file {directory / CALIBRATION_FILE} is corrupt: {exc}") from exc
        loaded = {}
        for role, names in booster_files(cal).items():
            loaded[role] = []
            for name in names:
                legacy = LEGACY_FILES.get(name)  # an older checkpoint: the plain-text boosters
                if legacy and (legacy in sha256 or (not (directory / name).exists() and (directory / legacy).exists())):
                    name = legacy
                text = _read_head_file(directory, name, sha256)
                try:
                    loaded[role].append(lgb.Booster(model_str=text))
                except lgb.basic.LightGBMError as exc:
                    raise ModelError(f"oracle head file {directory / name} is corrupt: {exc}") from exc
        return cls(loaded["classifier"][0], loaded["regressor"], cal, stack=loaded["stack"])


def _read_head_file(directory: Path, name: str, sha256: dict[str, str]) -> str:
    """The file's text, once it exists, matches its recorded sha256 and (a booster) is whole."""
    from .checkpoint import CONFIG, verify_file

    path = directory / name
    if not path.is_file():
        raise ModelError(f"oracle head file {path} is missing (re-create it: wbg calibrate oracle --dir {directory})")
    verify_file(path, sha256.get(name), directory / CONFIG)
    try:
        data = _unpack(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
        if name != CALIBRATION_FILE:
            _check_booster_layout(data)
        return data.decode()
    except (UnicodeDecodeError, ValueError, EOFError, OSError) as exc:
        raise ModelError(f"oracle head file {path} is corrupt: {exc}") from exc


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
    for key in ("regressor_boosters", "classifier_stack_boosters"):  # optional: heads before 2026-12-05 lack them
        if key in cal and not (isinstance(cal[key], int) and 0 <= cal[key] <= 64):
            raise ValueError(f"{CALIBRATION_FILE}: '{key}' must be a count of boosters, got {cal[key]!r}")
    if int(cal.get("regressor_boosters", 1)) < 1:
        raise ValueError(f"{CALIBRATION_FILE}: 'regressor_boosters' must be at least 1")
    if cal.get("point", "median") not in POINTS:
        raise ValueError(f"{CALIBRATION_FILE}: 'point' must be {' or '.join(map(repr, POINTS))}, got {cal.get('point')!r}")
    if cal.get("point") == "mean" and "residual_quantiles" not in cal:
        raise ValueError(f"{CALIBRATION_FILE}: 'point' is 'mean', which needs 'residual_quantiles', and it has none")
    if "residual_quantiles" in cal:  # optional: calibrations before 2026-12-03 lack it
        q = np.asarray(cal["residual_quantiles"], np.float64)
        if q.shape != (n, RESIDUAL_LEVELS) or not np.isfinite(q).all() or (np.diff(q, axis=1) < 0).any():
            raise ValueError(f"{CALIBRATION_FILE}: 'residual_quantiles' must hold {n} rising rows of "
                             f"{RESIDUAL_LEVELS} finite numbers")


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


def nonmetal_mean(r, s_r, cal: dict) -> np.ndarray:
    """The gap a non-metal averages, which the point prediction multiplies by P(non-metal).

    The L1 regressor's r is a median, which above 2 eV sat 0.1-0.2 eV above the truth's mean;
    with "point": "mean" the mean of r's calibrated residual distribution (per bin) is added.
    r and s_r are the detail's gap_if_nonmetal and std_if_nonmetal."""
    r = np.asarray(r, np.float64)
    if cal.get("point") != "mean":
        return r
    edges = _edges(cal)
    levels = np.linspace(0.0, 1.0, RESIDUAL_LEVELS)
    shift = np.array([np.trapezoid(q, levels) for q in cal["residual_quantiles"]])
    return np.maximum(r + np.asarray(s_r, np.float64) * shift[_bin_index(r, edges)], 0.0)


def combine(p: np.ndarray, r: np.ndarray, roost_std: np.ndarray, cal: dict) -> dict[str, np.ndarray]:
    """Point prediction and calibrated σ from P(non-metal), the non-metal gap and the ensemble's σ."""
    edges = _edges(cal)
    s_r = np.maximum(roost_std * np.asarray(cal["regressor_scales"])[_bin_index(r, edges)], STD_FLOOR_EV)
    g = nonmetal_mean(r, s_r, cal)
    # The mixture's mean: with the regressor's gap wherever P >= 0.5 (measured: MAE 0.306 vs 0.308)
    # the truth ran 0.2-0.3 eV below the prediction in every bin above 1 eV, the metals among them
    pred = p * g
    # second moment of the mixture p·(g + s_r·Z) + (1 - p)·δ(0) about the point prediction
    raw = np.sqrt(np.maximum(p * (s_r ** 2 + (g - pred) ** 2) + (1 - p) * pred ** 2, 1e-6))
    std = np.maximum(raw * np.asarray(cal["total_scales"])[_bin_index(pred, edges)], STD_FLOOR_EV)
    f = np.float32
    return {"mean": pred.astype(f), "std": std.astype(f), "p_nonmetal": p.astype(f),
            "gap_if_nonmetal": r.astype(f), "std_if_nonmetal": s_r.astype(f)}
