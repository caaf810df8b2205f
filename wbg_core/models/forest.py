"""Random-forest band-gap regressor on Magpie-style composition features.

The baseline the oracle must beat, and the fast screening model of the paper's experiments
(trained in seconds on 300-2,000 labelled formulas, never shipped as a pickle). Features
are fraction-weighted statistics (mean, mean absolute deviation, min, max, range, value of
the most abundant element) of element properties from pymatgen, plus the number of
elements and the L2, L3 and L5 norms of the fractions, as in Ward et al. (Magpie, 2016).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..composition.elements import PERIODIC_TABLE
from .oracle import MAX_ELEMENTS, featurise

PROPERTIES = (
    "Z", "row", "group", "atomic_mass", "X", "atomic_radius", "mendeleev_no", "melting_point",
    "molar_volume", "ionization_energy", "electron_affinity", "average_ionic_radius",
    "n_s", "n_p", "n_d", "n_f", "n_valence", "block_s", "block_p", "block_d", "block_f",
)


@lru_cache(maxsize=1)
def property_table() -> np.ndarray:
    """(len(PERIODIC_TABLE) + 1, len(PROPERTIES)) by atomic number; gaps filled with the mean."""
    from pymatgen.core import Element

    table = np.full((len(PERIODIC_TABLE) + 1, len(PROPERTIES)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for z, sym in enumerate(PERIODIC_TABLE[:103], start=1):
            el = Element(sym)
            row = []
            for prop in PROPERTIES[:12]:
                try:
                    v = getattr(el, prop)
                    row.append(float(v) if v is not None else np.nan)
                except Exception:
                    row.append(np.nan)
            shells: dict[str, int] = {"s": 0, "p": 0, "d": 0, "f": 0}
            try:
                outer_n = max(n for n, _, _ in el.full_electronic_structure)
                for n, orb, occ in el.full_electronic_structure:
                    if n == outer_n or (orb == "d" and n == outer_n - 1) or (orb == "f" and n >= outer_n - 2):
                        shells[orb] += occ
            except Exception:
                pass
            row += [shells["s"], shells["p"], shells["d"], shells["f"], sum(shells.values())]
            block = getattr(el, "block", "")
            row += [block == b for b in "spdf"]
            table[z] = row
    col_mean = np.nanmean(table[1:], axis=0)
    nan = np.isnan(table)
    table[nan] = np.take(col_mean, np.nonzero(nan)[1])
    table[0] = 0
    return table


def features_from_arrays(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    props = property_table()[z]  # (N, M, P)
    mask = (z > 0)[..., None]
    wf = w[..., None]
    mean = (wf * props).sum(axis=1)
    mad = (wf * np.abs(props - mean[:, None, :])).sum(axis=1)
    big = np.where(mask, props, np.inf).min(axis=1)
    small = np.where(mask, props, -np.inf).max(axis=1)
    mode = props[np.arange(len(z)), w.argmax(axis=1)]
    n_el = mask[..., 0].sum(axis=1, keepdims=True)
    norms = [((w ** p).sum(axis=1, keepdims=True)) ** (1 / p) for p in (2, 3, 5)]
    return np.hstack([mean, mad, big, small, small - big, mode, n_el, *norms]).astype(np.float32)


def composition_features(formulas) -> tuple[np.ndarray, list[str | None]]:
    z, w, errors = featurise(formulas)
    return features_from_arrays(z, w), errors


@dataclass
class ForestConfig:
    n_estimators: int = 100
    max_features: float = 0.33
    min_samples_leaf: int = 1
    seed: int = 0
    n_jobs: int = 2


class ForestRegressor:
    """fit/predict on formulas; the std is the spread over trees (a rough uncertainty)."""

    def __init__(self, config: ForestConfig | None = None):
        from sklearn.ensemble import RandomForestRegressor

        self.config = config or ForestConfig()
        c = self.config
        self.model = RandomForestRegressor(n_estimators=c.n_estimators, max_features=c.max_features,
                                           min_samples_leaf=c.min_samples_leaf, random_state=c.seed, n_jobs=c.n_jobs)

    def fit(self, formulas, y) -> "ForestRegressor":
        x, errors = composition_features(formulas)
        ok = np.array([e is None for e in errors])
        if not ok.any():
            raise ValueError("no formula could be featurised")
        self.model.fit(x[ok], np.asarray(y, dtype=np.float64)[ok])
        return self

    def predict_features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        per_tree = np.stack([t.predict(x) for t in self.model.estimators_])
        return np.clip(per_tree.mean(axis=0), 0, None), per_tree.std(axis=0)

    def predict(self, formulas) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        x, errors = composition_features(formulas)
        ok = np.array([e is None for e in errors], dtype=bool)
        mean = np.full(len(errors), np.nan)
        std = np.full(len(errors), np.nan)
        if ok.any():
            mean[ok], std[ok] = self.predict_features(x[ok])
        return mean, std, errors


__all__ = ["ForestConfig", "ForestRegressor", "composition_features", "MAX_ELEMENTS"]
