"""One interface for every band-gap model: the oracle, the random forest, the small Roost.

Why: screening, campaigns, experiments and the pages each asked "which method does this
model have?" (a DataFrame from the oracle, a tuple from the forest, arrays only from the
small Roost). A GapModel answers `predict(formulas) -> Prediction` for people and
`predict_arrays(z, w)` for the screening hot path (element indices and fractions from
composition.featurize, no parsing), and `fit(formulas, y)` where it can be fitted in-process
(the oracle is trained by `wbg train`). Nothing here imports torch.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Prediction:
    """Per formula, in input order: mean and σ of the gap (eV; NaN where the formula failed) and
    the reason it failed (None where it did not); `extra` holds model-specific columns such as
    the oracle's P(non-metal)."""

    formula: list[str]
    mean: np.ndarray
    std: np.ndarray
    error: list[str | None]
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    # what the model's window_probability reads beyond mean, σ and extra (not shown in tables)
    window_detail: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def ok(self) -> np.ndarray:
        return np.array([e is None for e in self.error], dtype=bool)

    def frame(self) -> pd.DataFrame:
        """formula, band_gap_mean, band_gap_std, the extra columns, error: the tables and CSVs."""
        return pd.DataFrame({"formula": self.formula, "band_gap_mean": self.mean, "band_gap_std": self.std,
                             **self.extra, "error": pd.array(self.error, dtype="string")})


class GapModel(ABC):
    """fit, predict and the array entry point; subclasses supply `predict_arrays` (and `fit`)."""

    #: columns of predict_detail beyond mean and std that Prediction.extra carries
    extra_columns: tuple[str, ...] = ()
    #: columns of predict_detail beyond mean and std that window_probability reads (screening keeps them)
    window_columns: tuple[str, ...] = ()

    def fit(self, formulas, y) -> "GapModel":
        raise NotImplementedError(f"{type(self).__name__} is not fitted in-process; train it with `wbg train`")

    @abstractmethod
    def predict_arrays(self, z: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, σ) per row of element indices z and fractions w (composition.featurize)."""

    def predict_detail(self, z: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
        mean, std = self.predict_arrays(z, w)
        return {"mean": mean, "std": std}

    def window_probability(self, detail: dict[str, np.ndarray], window: tuple[float, float]) -> np.ndarray:
        """P(lo < gap < hi) from predict_detail's columns: here a normal with the model's mean and σ."""
        from .oracle_eval import p_in_window

        return p_in_window(detail["mean"], detail["std"], window)

    def mean_gap_if_nonmetal(self, detail: dict[str, np.ndarray]) -> np.ndarray | None:
        """The gap a non-metal averages, for models that tell metals apart (None here): the mean the
        shown gap is P(non-metal) times, so a table can show both and they agree."""
        return None

    def predict(self, formulas) -> Prediction:
        """Any iterable of formulas; a bad one gets its error and NaN, the others their prediction."""
        from ..composition.featurize import featurise

        formulas = [f if isinstance(f, str) else str(f) for f in formulas]
        z, w, errors = featurise(formulas)
        ok = np.array([e is None for e in errors], dtype=bool)
        names = dict.fromkeys(("mean", "std", *self.extra_columns, *self.window_columns))
        cols = {c: np.full(len(formulas), np.nan, np.float32) for c in names}
        found = set()
        if ok.any():
            d = self.predict_detail(z[ok], w[ok])
            for c in cols:
                if c in d:
                    cols[c][ok] = d[c]
                    found.add(c)
        window_only = {c: cols.pop(c) for c in self.window_columns if c not in self.extra_columns}
        return Prediction(formulas, cols.pop("mean"), cols.pop("std"), list(errors), cols,
                          {c: v for c, v in window_only.items() if c in found})
