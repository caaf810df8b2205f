"""Roost's input for a formula: element indices and fractions, and the element embedding table.

Kept apart from the models so that every model (the oracle, the random forest, the experiments'
small Roost) imports one featuriser without importing another model.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .elements import PERIODIC_TABLE
from .parse import FormulaError, parse_formula

MAX_ELEMENTS = 12
N_TABLE = len(PERIODIC_TABLE) + 1  # row 0 is padding


def embedding_table() -> np.ndarray:
    """(N_TABLE, 200) matscholar vectors by atomic number; zeros where the table has none."""
    from ..data import load_element_embedding

    emb = load_element_embedding()
    dim = len(next(iter(emb.values())))
    table = np.zeros((N_TABLE, dim), dtype=np.float32)
    for z, sym in enumerate(PERIODIC_TABLE, start=1):
        if sym in emb:
            table[z] = emb[sym]
    return table


def featurise(formulas) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """(atomic numbers (N, MAX_ELEMENTS) int64, fractions (N, MAX_ELEMENTS), errors).

    Elements go in order of atomic number, as count rows give them (screening): a formula then
    has one set of arrays however it is written ("SrYF5", "F5YSr") or reached, so the networks
    sum in one order and the head's boosters, which can jump at a threshold, see one input."""
    from .elements import ATOMIC_NUMBER

    formulas = list(formulas)
    z = np.zeros((len(formulas), MAX_ELEMENTS), dtype=np.int64)
    w = np.zeros((len(formulas), MAX_ELEMENTS), dtype=np.float32)
    errors: list[str | None] = [None] * len(formulas)
    known = _embedded_elements()
    for i, f in enumerate(formulas):
        try:
            comp = parse_formula(f)
        except FormulaError as exc:
            errors[i] = str(exc)
            continue
        if len(comp) > MAX_ELEMENTS:
            errors[i] = f"{len(comp)} elements; the oracle takes at most {MAX_ELEMENTS}"
            continue
        missing = [el for el in comp if el not in known]
        if missing:
            errors[i] = f"no element embedding for {', '.join(missing)}"
            continue
        total = sum(comp.values())
        for j, (el, amt) in enumerate(sorted(comp.items(), key=lambda kv: ATOMIC_NUMBER[kv[0]])):
            z[i, j] = ATOMIC_NUMBER[el]
            w[i, j] = amt / total
    return z, w, errors


@lru_cache(maxsize=1)
def _embedded_elements() -> frozenset:
    from ..data import load_element_embedding

    return frozenset(load_element_embedding())
