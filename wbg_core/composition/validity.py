"""Charge neutrality and electronegativity balance (SMACT), as the paper screened formulas.

`smact_valid` follows smact.screening.smact_validity with its defaults, as the authors'
code did: some assignment of the ICSD-24 oxidation states sums to zero, and (Pauling test)
cations are less electronegative than anions. Compositions of metals only count as valid
"alloys" (include_alloys=True) unless asked otherwise; mixed valence (Fe3O4 as Fe2+ and
Fe3+) is off by default, so Fe3O4 fails unless mixed_valence=True. Each distinct formula is
checked once per process (cache), so a million mostly-duplicate formulas costs only its
distinct ones. SMACT enumerates oxidation-state combinations, exponential in the number of
elements and in the counts (worst cases here: 6 elements 0.2 s, 7: 0.3 s, 8: 1.1 s, 11:
30 s), so compositions with more than MAX_ELEMENTS = 6 distinct elements are reported not
valid without enumeration: 199 of the 89,885 bundled formulas (0.2%); the paper screens
fewer than 4 elements and MATGAN kept up to 8.
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd


MAX_ELEMENTS = 6


@lru_cache(maxsize=1_000_000)
def _smact_one(formula: str, include_alloys: bool, mixed_valence: bool) -> bool:
    from smact.screening import smact_validity

    from .parse import FormulaError, parse_formula

    if not formula:
        return False
    try:
        if len(parse_formula(formula)) > MAX_ELEMENTS:
            return False
    except FormulaError:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(
                smact_validity(formula, use_pauling_test=True, include_alloys=include_alloys,
                               mixed_valence=mixed_valence)
            )
    except Exception:  # SMACT raises assorted errors for elements it lacks data on
        return False


def smact_valid(
    formulas: Sequence[str | None] | np.ndarray,
    include_alloys: bool = True,
    mixed_valence: bool = False,
) -> np.ndarray:
    """Bool per formula (None or '' -> False), computed once per distinct formula."""
    arr = formulas if isinstance(formulas, np.ndarray) else np.asarray(list(formulas), dtype=object)
    if len(arr) == 0:
        return np.zeros(0, dtype=bool)
    codes, uniq = pd.factorize(arr, use_na_sentinel=True)
    u_valid = np.fromiter(
        (_smact_one(str(f), include_alloys, mixed_valence) for f in uniq), dtype=bool, count=len(uniq)
    )
    out = np.zeros(len(arr), dtype=bool)
    has = codes >= 0
    out[has] = u_valid[codes[has]]
    return out
