"""Random-forest band-gap regressor on Magpie-style composition features.

The baseline the oracle must beat, and the fast screening model of the paper's experiments
(trained in seconds on 300-2,000 labelled formulas, never shipped as a pickle). Features
are fraction-weighted statistics (mean, mean absolute deviation, min, max, range, value of
the most abundant element) of element properties from pymatgen, plus the number of
elements and the L2, L3 and L5 norms of the fractions, as in Ward et al. (Magpie, 2016).
"""
from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..composition.elements import PERIODIC_TABLE
from ..composition.featurize import MAX_ELEMENTS, featurise
from ..files import atomic_write_bytes
from .base import GapModel

PROPERTIES = (
    "Z", "row", "group", "atomic_mass", "X", "atomic_radius", "mendeleev_no", "melting_point",
    "molar_volume", "ionization_energy", "electron_affinity", "average_ionic_radius",
    "n_s", "n_p", "n_d", "n_f", "n_valence", "block_s", "block_p", "block_d", "block_f",
)


TABLE_VERSION = 1  # bump when _build_property_table changes, so no cache of the old table is read


@lru_cache(maxsize=1)
def property_table() -> np.ndarray:
    """(len(PERIODIC_TABLE) + 1, len(PROPERTIES)) by atomic number; gaps filled with the mean.

    Kept under the cache directory (settings.cache_dir), keyed by pymatgen's version and this
    table's definition, with a sha256 of its content: a cold start then reads 17 KB instead of
    importing pymatgen (a tenth of a second of the oracle's first prediction). A damaged or
    foreign cache is rebuilt, never trusted; an unwritable directory is skipped."""
    from ..settings import get_settings

    return table_from_cache(get_settings().cache_dir)


def table_from_cache(cache_dir: str | Path) -> np.ndarray:
    """property_table's work for one cache directory ('' or None: no cache)."""
    path = _table_path(cache_dir)
    if path is not None and path.is_file():
        hit = _read_table(path)
        if hit is not None:
            return hit
    table = _build_property_table()
    if path is not None:
        buf = io.BytesIO()
        np.savez(buf, table=table, digest=np.array(_table_digest(table, path.stem)))
        try:
            atomic_write_bytes(path, buf.getvalue())
        except OSError:
            pass
    return table


def _table_path(cache_dir: str | Path | None) -> Path | None:
    if not cache_dir:
        return None
    from importlib.metadata import version

    key = json.dumps([version("pymatgen"), TABLE_VERSION, PROPERTIES, len(PERIODIC_TABLE)])
    return Path(cache_dir) / f"element-properties-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def _table_digest(table: np.ndarray, key: str) -> str:
    return hashlib.sha256(key.encode() + np.ascontiguousarray(table, dtype=np.float64).tobytes()).hexdigest()


def _read_table(path: Path) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            table, digest = z["table"], str(z["digest"])
    except Exception:  # noqa: BLE001 (any damage: rebuild)
        return None
    if table.shape != (len(PERIODIC_TABLE) + 1, len(PROPERTIES)) or table.dtype != np.float64 \
            or not np.isfinite(table).all() or digest != _table_digest(table, path.stem):
        return None
    return table


def _build_property_table() -> np.ndarray:
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
    # ties (AB, ABC2 ...) go to the heavier element, so the column order of z never matters
    mode = props[np.arange(len(z)), (w.astype(np.float64) + z * 1e-9).argmax(axis=1)]
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


class ForestRegressor(GapModel):
    """A GapModel fitted in seconds; the std is the spread over trees (a rough uncertainty)."""

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

    def predict_arrays(self, z: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_features(features_from_arrays(z, w))


__all__ = ["ForestConfig", "ForestRegressor", "composition_features", "MAX_ELEMENTS"]


# ---------------------------------------------------------------- Magpie's ionic-compound attributes

MAX_STATES = 3  # common oxidation states kept per element (pymatgen lists at most 3 for most)
EXACT_ELEMENTS = 4  # exact charge-neutrality search up to this many elements (3^4 = 81 assignments)


@lru_cache(maxsize=1)
def _state_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(states (Z, MAX_STATES) padded by repeating the first, has-states flag, Pauling X) by atomic number."""
    from pymatgen.core import Element

    states = np.zeros((len(PERIODIC_TABLE) + 1, MAX_STATES), np.float64)
    has = np.zeros(len(PERIODIC_TABLE) + 1, bool)
    chi = np.zeros(len(PERIODIC_TABLE) + 1, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for z, sym in enumerate(PERIODIC_TABLE[:103], start=1):
            el = Element(sym)
            common = sorted(el.common_oxidation_states, key=abs)[:MAX_STATES]
            if common:
                has[z] = True
                states[z] = (list(common) * MAX_STATES)[:MAX_STATES]
            chi[z] = el.X if np.isfinite(el.X) else 0.0
    return states, has, chi


def ionic_features(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Magpie's ionic-compound attributes (Ward et al. 2016), vectorised over rows:
    can some assignment of common oxidation states be charge neutral (exact up to 4 elements,
    else the interval test), how far 0 lies outside the reachable charge interval, whether the
    most electronegative element can be an anion, and the max and mean ionic character
    1 - exp(-(Δχ)²/4) over element pairs. Metals are told from salts by these more than by any
    average property: MgO and Mg2O share their statistics but not their neutrality."""
    states, has, chi = _state_table()
    s = states[z]  # (N, M, S)
    mask = z > 0
    lo = (w * s.min(axis=2)).sum(axis=1)
    hi = (w * s.max(axis=2)).sum(axis=1)
    distance = np.maximum(lo, 0.0) + np.maximum(-hi, 0.0)
    n_el = mask.sum(axis=1)
    neutral = (distance <= 1e-9).astype(np.float64)
    small = n_el <= EXACT_ELEMENTS
    if small.any():
        k = min(EXACT_ELEMENTS, z.shape[1])
        ss, ww = s[small, :k], w[small, :k]
        grids = np.stack(np.meshgrid(*[np.arange(MAX_STATES)] * k, indexing="ij"), -1).reshape(-1, k)  # (C, k)
        picked = ss[:, np.arange(k)[None, :], grids]  # (n, C, k)
        total = (picked * ww[:, None, :]).sum(axis=2)
        neutral[small] = (np.abs(total) < 1e-6).any(axis=1)
    # no element with a known state (noble gases) or only one element: not an ionic compound
    neutral[(~has[z] & mask).any(axis=1) | (n_el < 2)] = 0.0
    c = np.where(mask, chi[z], -np.inf)
    is_top = mask & (c == c.max(axis=1, keepdims=True))  # ties never depend on the column order
    anion_top = (is_top & (s.min(axis=2) < 0)).any(axis=1).astype(np.float64)
    cc = np.where(mask, chi[z], 0.0)
    ion = 1 - np.exp(-0.25 * (cc[:, :, None] - cc[:, None, :]) ** 2)
    pair = mask[:, :, None] & mask[:, None, :]
    max_ion = np.where(pair, ion, 0.0).max(axis=(1, 2))
    mean_ion = (w[:, :, None] * w[:, None, :] * ion * pair).sum(axis=(1, 2))
    return np.stack([neutral, distance, anion_top, max_ion, mean_ion], axis=1).astype(np.float32)


def statistics_with_ionic(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Magpie-style property statistics and the ionic-compound attributes: the oracle head's statistics.

    Computed at the full MAX_ELEMENTS width whatever width the arrays come in (screening trims
    them to its chunk's widest formula): numpy's sums then add the same terms in the same
    blocks, so a formula gets bit-identical statistics on every path, and the head's boosters,
    which jump at their thresholds, one answer."""
    if z.shape[1] < MAX_ELEMENTS:
        pad = ((0, 0), (0, MAX_ELEMENTS - z.shape[1]))
        z, w = np.pad(z, pad), np.pad(w, pad)
    return np.hstack([features_from_arrays(z, w), ionic_features(z, w)])
