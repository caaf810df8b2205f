"""Element Mover's Distance (EMD) on the modified Pettifor scale, in closed form.

ElMD (Hargreaves et al., Chem. Mater. 2020) places each element at an integer position on
the modified Pettifor scale (Glawe et al., New J. Phys. 2016) and measures how much
"composition mass" must move, and how far along the scale, to turn one normalised
composition into another. On a 1-D scale with unit spacing the optimal transport cost
has a closed form: the L1 distance between the two cumulative distributions,

    EMD(p, q) = sum_k |P(k) - Q(k)|,   P(k) = sum_{j <= k} p_j,

which is what ElMD itself computes for its default metric (`simple_emd`). Here the
cumulative vectors of a whole pool are stacked once, so the distance from one query to
every composition is one vectorised subtraction and sum.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..composition.parse import FormulaError, parse_formula

# The modified Pettifor scale as ElMD ships it (ElMD/el_lookup/mod_petti.json, MIT licence),
# restricted to real elements. Noble gases sit at 0-5, H at the far end (102).
MOD_PETTI: dict[str, int] = {
    "He": 0, "Ne": 1, "Ar": 2, "Kr": 3, "Xe": 4, "Rn": 5, "Fr": 6, "Cs": 7, "Rb": 8, "K": 9,
    "Na": 10, "Li": 11, "Ra": 12, "Ba": 13, "Sr": 14, "Ca": 15, "Eu": 16, "Yb": 17, "Lu": 18,
    "Tm": 19, "Y": 20, "Er": 21, "Ho": 22, "Dy": 23, "Tb": 24, "Gd": 25, "Sm": 26, "Pm": 27,
    "Nd": 28, "Pr": 29, "Ce": 30, "La": 31, "Ac": 32, "Th": 33, "Pa": 34, "U": 35, "Np": 36,
    "Pu": 37, "Am": 38, "Cm": 39, "Bk": 40, "Cf": 41, "Es": 42, "Fm": 43, "Md": 44, "No": 45,
    "Lr": 46, "Sc": 47, "Zr": 48, "Hf": 49, "Ti": 50, "Ta": 51, "Nb": 52, "V": 53, "Cr": 54,
    "Mo": 55, "W": 56, "Re": 57, "Tc": 58, "Os": 59, "Ru": 60, "Ir": 61, "Rh": 62, "Pt": 63,
    "Pd": 64, "Au": 65, "Ag": 66, "Cu": 67, "Ni": 68, "Co": 69, "Fe": 70, "Mn": 71, "Mg": 72,
    "Zn": 73, "Cd": 74, "Hg": 75, "Be": 76, "Al": 77, "Ga": 78, "In": 79, "Tl": 80, "Pb": 81,
    "Sn": 82, "Ge": 83, "Si": 84, "B": 85, "C": 86, "N": 87, "P": 88, "As": 89, "Sb": 90,
    "Bi": 91, "Po": 92, "Te": 93, "Se": 94, "S": 95, "O": 96, "At": 97, "I": 98, "Br": 99,
    "Cl": 100, "F": 101, "H": 102,
}
SCALE_LENGTH = 103  # positions 0..102


def _composition(comp: str | Mapping[str, float]) -> dict[str, float]:
    if isinstance(comp, str):
        return parse_formula(comp)
    return dict(comp)


def composition_vector(comp: str | Mapping[str, float]) -> np.ndarray:
    """Normalised amounts (fractions summing to 1) at each position of the scale, shape (103,)."""
    comp = _composition(comp)
    vec = np.zeros(SCALE_LENGTH, dtype=np.float64)
    total = float(sum(comp.values()))
    if total <= 0:
        raise FormulaError("a composition needs a positive amount of at least one element")
    for el, amount in comp.items():
        if el not in MOD_PETTI:
            raise FormulaError(f"{el!r} has no position on the modified Pettifor scale")
        vec[MOD_PETTI[el]] += amount / total
    return vec


def cumulative(vectors: np.ndarray) -> np.ndarray:
    """Cumulative distributions along the scale (last axis)."""
    return np.cumsum(vectors, axis=-1)


def emd(a: str | Mapping[str, float], b: str | Mapping[str, float]) -> float:
    """EMD between two compositions (formulas or {element: amount}); equals ElMD(a).elmd(b)."""
    return float(np.abs(cumulative(composition_vector(a)) - cumulative(composition_vector(b))).sum())


def emd_to_many(query: str | Mapping[str, float] | np.ndarray, cdfs: np.ndarray,
                chunk: int = 16384) -> np.ndarray:
    """EMD from one composition to every row of `cdfs` (N, 103) cumulative vectors.

    `query` may be a formula, a composition or an already computed cumulative vector.
    Works in chunks so the temporary stays small (16k x 103 doubles = 13 MB).
    """
    if isinstance(query, np.ndarray):
        q = query
    else:
        q = cumulative(composition_vector(query))
    out = np.empty(len(cdfs), dtype=np.float64)
    for start in range(0, len(cdfs), chunk):
        block = cdfs[start:start + chunk]
        out[start:start + chunk] = np.abs(block - q).sum(axis=1)
    return out


# ---------------------------------------------------------------- sparse kernel for a pool
# A composition has a handful of elements, so the cumulative difference P - Q is piecewise
# constant between the (few) positions either composition occupies. Walking those positions
# in order gives the same sum over the 103 integer positions in O(elements) per composition
# instead of O(103): sum |P - Q| * (gap to the next occupied position).

def sparse_pool(compositions: list[Mapping[str, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded (positions, fractions, lengths) of compositions, positions sorted along the scale."""
    width = max((len(c) for c in compositions), default=1)
    pos = np.full((len(compositions), width), SCALE_LENGTH, dtype=np.int64)
    w = np.zeros((len(compositions), width), dtype=np.float64)
    n = np.zeros(len(compositions), dtype=np.int64)
    for r, comp in enumerate(compositions):
        total = float(sum(comp.values()))
        merged: dict[int, float] = {}
        for el, amount in comp.items():
            merged[MOD_PETTI[el]] = merged.get(MOD_PETTI[el], 0.0) + amount / total
        for k, p in enumerate(sorted(merged)):
            pos[r, k] = p
            w[r, k] = merged[p]
        n[r] = len(merged)
    return pos, w, n


def _sparse_kernel_py(rows, pos, w, n, qpos, qw, out):
    nq = len(qpos)
    for t in range(len(rows)):
        r = rows[t]
        m = n[r]
        i = 0
        j = 0
        diff = 0.0
        total = 0.0
        prev = 0
        while i < m or j < nq:
            if j >= nq or (i < m and pos[r, i] <= qpos[j]):
                x = pos[r, i]
            else:
                x = qpos[j]
            total += abs(diff) * (x - prev)
            prev = x
            while i < m and pos[r, i] == x:
                diff += w[r, i]
                i += 1
            while j < nq and qpos[j] == x:
                diff -= qw[j]
                j += 1
        out[t] = total + abs(diff) * (SCALE_LENGTH - 1 - prev)
    return out


try:  # numba ships with ElMD (pinned in requirements.txt); without it, the dense path is used
    from numba import njit as _njit

    _sparse_kernel = _njit(cache=True, nogil=True)(_sparse_kernel_py)
except ImportError:  # pragma: no cover
    _sparse_kernel = None


def emd_sparse(query: str | Mapping[str, float], pos: np.ndarray, w: np.ndarray, n: np.ndarray,
               rows: np.ndarray | None = None) -> np.ndarray:
    """EMD from `query` to the compositions of a sparse pool (see sparse_pool), optionally a subset."""
    (qpos,), (qw,), _ = sparse_pool([_composition(query) if not isinstance(query, dict) else query])
    k = int((qpos < SCALE_LENGTH).sum())
    qpos, qw = qpos[:k], qw[:k]
    rows = np.arange(len(pos), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    out = np.empty(len(rows), dtype=np.float64)
    if _sparse_kernel is None:
        return _sparse_kernel_py(rows, pos, w, n, qpos, qw, out)
    return _sparse_kernel(rows, pos, w, n, qpos, qw, out)
