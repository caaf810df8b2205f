"""Chemical validity: the one rule every page uses, and the paper's rule for comparisons.

The compound rule (`compound_valid`, `compound_verdict`) is what screening, active
learning, the GAN metrics, the Structures page and the CIF header call a valid candidate:
  1. at least two elements (H, Hf, "O5" are not compounds);
  2. not every element a metal (CuZn, Cu3Au are alloys, not wide-gap candidates);
  3. SMACT charge neutrality with the ICSD-24 oxidation states
     (`oxidation_states_set="icsd24"`: the states seen in at least one ICSD structure,
     which drops exotic ones such as Ba+1 that let BaCaI3 and MgPbBr3 balance);
  4. the Pauling test on that assignment: cations less electronegative than anions.
`allow_elements_and_alloys=True` lifts 1 and 2 (the option the pages offer); 3 and 4 stay.

The paper's rule (`smact_valid`, RULES["paper"]) is smact.screening.smact_validity with its
defaults, as the authors' code called it: SMACT's default oxidation-state set, Pauling test,
all-metal compositions valid as alloys, single elements valid. It stays for the experiments
so the comparison with the paper's numbers holds; nothing a user reads as "valid" uses it.

Mixed valence (Fe3O4 as Fe2+ and Fe3+) is off in both rules. Each distinct formula is
checked once per process (cache). Before SMACT enumerates, a set-sum over the same ICSD-24
states (`_cannot_balance`) turns away formulas that no assignment can balance, at ~1/30 of
SMACT's cost; SMACT still decides every formula that could balance, so the verdicts are
SMACT's (tests/test_validity.py compares them on MP and perturbed formulas). SMACT enumerates oxidation-state combinations,
exponential in the number of elements (6 elements 0.2 s, 8: 1.1 s, 11: 30 s), so
compositions with more than MAX_ELEMENTS = 6 distinct elements fail without enumeration:
199 of the 89,885 bundled formulas (0.2%); the paper screens fewer than 4 elements.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd

MAX_ELEMENTS = 6
ICSD = "icsd24"

RULES = {
    "compound": "compound: >= 2 elements, not all metals, SMACT charge-neutral with ICSD-24 "
                "oxidation states and electronegativity-balanced (Pauling)",
    "paper": "paper: smact_validity with SMACT's default oxidation states (alloys and single "
             "elements pass), as in Xin et al.'s code",
}


@dataclass(frozen=True)
class Verdict:
    """The compound rule's answer for one formula, with the first test it failed."""

    formula: str
    valid: bool
    charge_neutral: bool  # some ICSD-24 assignment sums to zero (Pauling not required)
    reason: str  # "" when valid


def _parse(formula: str) -> dict[str, float] | None:
    from .parse import FormulaError, parse_formula

    try:
        return parse_formula(formula)
    except FormulaError:
        return None


@lru_cache(maxsize=1)
def _smact_validity():
    """smact_validity, with its per-call element_dictionary served from a cache: SMACT builds
    fresh Element objects (file lookups) on every call, 70% of a call's millisecond; they are
    read-only data there, so one per symbol serves every call."""
    import smact
    import smact.screening as screening

    elements: dict[str, smact.Element] = {}

    def element_dictionary(symbols=None, oxi_states_custom_filepath=None):
        if symbols is None or oxi_states_custom_filepath:
            return smact.element_dictionary(symbols, oxi_states_custom_filepath)
        return {s: elements[s] if s in elements else elements.setdefault(s, smact.Element(s)) for s in symbols}

    screening.element_dictionary = element_dictionary
    return screening.smact_validity


def _smact(formula: str, **kw) -> bool:
    smact_validity = _smact_validity()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(smact_validity(formula, mixed_valence=False, **kw))
    except Exception:  # SMACT raises assorted errors for elements it lacks data on
        return False


@lru_cache(maxsize=None)
def _icsd_states(symbol: str) -> tuple[int, ...] | None:
    """SMACT's ICSD-24 oxidation states of an element (None: SMACT has no data, let it decide)."""
    import smact

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tuple(int(o) for o in (smact.Element(symbol).oxidation_states_icsd24 or ()))
    except Exception:  # SMACT raises assorted errors for elements it lacks data on
        return None


def _cannot_balance(comp: dict[str, float]) -> bool:
    """True when no choice of ICSD-24 states sums to zero charge with these amounts (SMACT's
    neutrality test with the formula's own stoichiometry), found by a set-sum instead of
    enumerating every combination; False whenever SMACT should look."""
    sums = {0}
    for el, amount in comp.items():
        states = _icsd_states(el)
        if states is None:
            return False
        n = int(amount)  # as smact_validity reads the amounts
        sums = {s + n * o for s in sums for o in states}
        if not sums:
            return True
    return 0 not in sums


@lru_cache(maxsize=200_000)
def _all_metal(elements: tuple[str, ...]) -> bool:
    from pymatgen.core import Element

    return all(Element(el).is_metal for el in elements)


# 100,000 formulas (about 40 MB): a long-lived screening worker that sees 10^7 samples filled a
# 1,000,000-entry cache to ~0.3 GB more than at 10^6 (bench scale_memory); the common formulas,
# which the cache is for, stay in it.
@lru_cache(maxsize=100_000)
def compound_verdict(formula: str, allow_elements_and_alloys: bool = False) -> Verdict:
    """The compound rule for one formula (see the module docstring), cached."""
    comp = _parse(formula) if formula else None
    if comp is None:
        return Verdict(formula, False, False, "not a formula")
    els = tuple(sorted(comp))
    if len(els) > MAX_ELEMENTS:
        return Verdict(formula, False, False, f"more than {MAX_ELEMENTS} elements (not enumerated)")
    if not allow_elements_and_alloys:
        if len(els) < 2:
            return Verdict(formula, False, False, "a single element, not a compound")
        if _all_metal(els):
            return Verdict(formula, False, False, "all metals: an alloy, not a compound")
    if len(els) < 2 or _all_metal(els):  # allowed elements and alloys: valid as such
        return Verdict(formula, True, True, "")
    if _cannot_balance(comp):
        return Verdict(formula, False, False, "no charge-balanced combination of ICSD-24 oxidation states")
    # Pauling first: passing it implies a neutral assignment, so a valid formula costs one call
    if _smact(formula, use_pauling_test=True, include_alloys=False, oxidation_states_set=ICSD):
        return Verdict(formula, True, True, "")
    if not _smact(formula, use_pauling_test=False, include_alloys=False, oxidation_states_set=ICSD):
        return Verdict(formula, False, False, "no charge-balanced combination of ICSD-24 oxidation states")
    return Verdict(formula, False, True, "charge-balanced only with an anion less electronegative "
                                         "than a cation (fails the Pauling test)")


@lru_cache(maxsize=1_000_000)
def _paper_one(formula: str, include_alloys: bool, mixed_valence: bool) -> bool:
    comp = _parse(formula) if formula else None
    if comp is None or len(comp) > MAX_ELEMENTS:
        return False
    from smact.screening import smact_validity

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(smact_validity(formula, use_pauling_test=True, include_alloys=include_alloys,
                                       mixed_valence=mixed_valence))
    except Exception:
        return False


def _per_distinct(formulas, one) -> np.ndarray:
    arr = formulas if isinstance(formulas, np.ndarray) else np.asarray(list(formulas), dtype=object)
    if len(arr) == 0:
        return np.zeros(0, dtype=bool)
    codes, uniq = pd.factorize(arr, use_na_sentinel=True)
    u = np.fromiter((one(str(f)) for f in uniq), dtype=bool, count=len(uniq))
    out = np.zeros(len(arr), dtype=bool)
    has = codes >= 0
    out[has] = u[codes[has]]
    return out


def compound_valid(formulas: Sequence[str | None] | np.ndarray,
                   allow_elements_and_alloys: bool = False) -> np.ndarray:
    """The compound rule per formula (None or '' -> False), once per distinct formula."""
    return _per_distinct(formulas, lambda f: compound_verdict(f, allow_elements_and_alloys).valid)


def smact_valid(formulas: Sequence[str | None] | np.ndarray, include_alloys: bool = True,
                mixed_valence: bool = False) -> np.ndarray:
    """The paper's rule per formula (None or '' -> False): for comparisons with the paper only."""
    return _per_distinct(formulas, lambda f: _paper_one(f, include_alloys, mixed_valence))


def rule_valid(formulas, rule: str = "compound") -> np.ndarray:
    """Validity under a named rule ("compound" or "paper"); an unknown name is an error."""
    if rule == "compound":
        return compound_valid(formulas)
    if rule == "paper":
        return smact_valid(formulas)
    raise ValueError(f"unknown validity rule {rule!r}; choose one of {sorted(RULES)}")
