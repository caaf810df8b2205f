"""Parse what a person types as a chemical formula into a composition.

One error type, FormulaError, for every way input can be wrong, with a message that says
what to fix. Accepted: `SrYF5`, `Sr Y F5`, `(NH4)2SO4`, `[Co(NH3)6]Cl3`, hydrates
(`CuSO4·5H2O`, `CuSO4*5H2O`, `Fe2O3.H2O`; a dot between digits is a decimal point), unicode subscripts
(`Fe₂O₃`), decimal amounts (`Fe0.5Ni0.5`), and all-lower- or all-upper-case input when it
splits into element symbols in exactly one way (`sryf5` -> SrYF5; `co` is refused as
ambiguous between Co and CO).
"""
from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache

from .elements import ATOMIC_NUMBER, formula_sort_key

MAX_FORMULA_LENGTH = 1000
MAX_AMOUNT = 10_000.0

_SUBSCRIPTS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
_HYDRATE_DOTS = "·•∙⋅*"
_TOKEN = re.compile(r"([A-Z][a-z]?)|(\d+(?:\.\d+)?|\.\d+)|([(\[{])|([)\]}])")
_CLOSE = {")": "(", "]": "[", "}": "{"}


class FormulaError(ValueError):
    """A formula that cannot be understood; the message says why, in user terms."""


def _clean(text: object) -> str:
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be text, got {type(text).__name__}")
    if len(text) > MAX_FORMULA_LENGTH:
        raise FormulaError(
            f"formula is {len(text):,} characters long; the limit is {MAX_FORMULA_LENGTH}"
        )
    text = text.translate(_SUBSCRIPTS).strip()
    if not text:
        raise FormulaError("empty formula: type one such as SrYF5")
    return text


def _split_hydrate(text: str) -> list[tuple[float, str]]:
    """Split `A·nB` into [(1, A), (n, B)]."""
    for dot in _HYDRATE_DOTS:
        text = text.replace(dot, "·")
    # A "." directly before a capital or bracket (`Fe2O3.H2O`) or after a letter before a
    # multiplier (`Na.5H2O`) is a hydrate dot; between digits it is a decimal point
    # (`Fe0.5Ni0.5`), so `CuSO4.5H2O` must be written `CuSO4·5H2O`.
    text = re.sub(r"\.(?=[A-Z(\[{])", "·", text)
    text = re.sub(r"(?<=[A-Za-z)\]}])\.(?=\d+[A-Z(\[{])", "·", text)
    parts = []
    for part in text.split("·"):
        part = part.strip()
        if not part:
            raise FormulaError("a hydrate dot (·) needs a formula on both sides")
        m = re.match(r"^(\d+(?:\.\d+)?)\s*(?=[A-Z(\[{])", part)
        mult = 1.0
        if m and len(parts) > 0:
            mult = float(m.group(1))
            part = part[m.end():]
        parts.append((mult, part))
    return parts


def _parse_group(text: str) -> dict[str, float]:
    stack: list[tuple[str, dict[str, float]]] = [("", {})]
    last: dict[str, float] | str | None = None  # what a following number multiplies
    pos = 0
    compact = re.sub(r"\s+", "", text)
    while pos < len(compact):
        m = _TOKEN.match(compact, pos)
        if m is None:
            bad = compact[pos]
            raise FormulaError(
                f"unexpected character {bad!r} at position {pos + 1} in {text!r}"
            )
        element, number, opening, closing = m.groups()
        pos = m.end()
        current = stack[-1][1]
        if element:
            if element not in ATOMIC_NUMBER:
                raise FormulaError(f"{element!r} is not an element symbol (in {text!r})")
            current[element] = current.get(element, 0.0) + 1.0
            last = element
        elif number:
            value = float(number)
            if last is None:
                raise FormulaError(f"number {number} in {text!r} does not follow an element or group")
            if value <= 0:
                raise FormulaError(f"amount {number} in {text!r} must be positive")
            if isinstance(last, str):
                current[last] += value - 1.0
            else:
                for el, amt in last.items():
                    current[el] += amt * (value - 1.0)
            last = None
        elif opening:
            stack.append((opening, {}))
            last = None
        else:
            if len(stack) == 1 or stack[-1][0] != _CLOSE[closing]:
                raise FormulaError(f"unbalanced {closing!r} in {text!r}")
            _, group = stack.pop()
            if not group:
                raise FormulaError(f"empty brackets in {text!r}")
            parent = stack[-1][1]
            for el, amt in group.items():
                parent[el] = parent.get(el, 0.0) + amt
            last = group
    if len(stack) != 1:
        raise FormulaError(f"unclosed {stack[-1][0]!r} in {text!r}")
    return stack[0][1]


def _resolve_case(text: str) -> str:
    """Turn single-case input into element symbols, when exactly one reading exists."""
    letters_digits = re.sub(r"\s+", "", text)
    if re.search(r"[^A-Za-z0-9.()\[\]{}·]", letters_digits):
        return text  # let the main parser report the odd character
    low = letters_digits.lower()
    symbols = {s.lower(): s for s in ATOMIC_NUMBER}
    readings: list[str] = []

    def walk(i: int, acc: str) -> None:
        if len(readings) > 2:
            return
        if i == len(low):
            readings.append(acc)
            return
        ch = low[i]
        if not ch.isalpha():
            walk(i + 1, acc + letters_digits[i])
            return
        for width in (2, 1):
            piece = low[i : i + width]
            if len(piece) == width and piece.isalpha() and piece in symbols:
                walk(i + width, acc + symbols[piece])

    walk(0, "")
    if not readings:
        raise FormulaError(f"{text!r} does not split into element symbols")
    if len(readings) > 1:
        raise FormulaError(
            f"{text!r} is ambiguous ({' or '.join(readings[:2])}); write symbols with capitals"
        )
    return readings[0]


def _parse_text(text: str) -> dict[str, float]:
    total: dict[str, float] = {}
    for mult, part in _split_hydrate(text):
        for el, amt in _parse_group(part).items():
            total[el] = total.get(el, 0.0) + mult * amt
    return total


@lru_cache(maxsize=200_000)
def parse_formula(text: str) -> dict[str, float]:
    """Composition of a formula as {element: amount}, amounts as written (not reduced)."""
    text = _clean(text)
    try:
        total = _parse_text(text)
    except FormulaError:
        letters = [c for c in text if c.isalpha()]
        if not (letters and (text.lower() == text or text.upper() == text)):
            raise
        total = _parse_text(_resolve_case(text))
    if not total:
        raise FormulaError(f"no element found in {text!r}")
    for el, amt in total.items():
        if not math.isfinite(amt) or amt > MAX_AMOUNT:
            raise FormulaError(f"amount of {el} ({amt:g}) is larger than {MAX_AMOUNT:g}")
    return dict(sorted(total.items(), key=lambda kv: formula_sort_key(kv[0])))


def reduce_composition(comp: dict[str, float], max_denominator: int = 20) -> tuple[dict[str, int] | None, str | None]:
    """Integer reduced composition, or (None, reason) when the ratios are not integers.

    Decimal amounts are turned into the smallest integers with the same ratios when each
    is within 1e-6 of a fraction with denominator <= max_denominator (Fe0.5Ni0.5 -> FeNi).
    """
    fracs = {}
    for el, amt in comp.items():
        f = Fraction(amt).limit_denominator(max_denominator)
        if abs(float(f) - amt) > 1e-6 * max(1.0, amt):
            return None, f"non-integer ratio: {el}{amt:g} is not a simple fraction"
        fracs[el] = f
    lcm = 1
    for f in fracs.values():
        lcm = lcm * f.denominator // math.gcd(lcm, f.denominator)
    ints = {el: int(f * lcm) for el, f in fracs.items()}
    g = 0
    for v in ints.values():
        g = math.gcd(g, v)
    return {el: v // g for el, v in ints.items()}, None


def format_formula(comp: dict[str, int | float]) -> str:
    """Formula string in pymatgen's reduced-formula order (electronegativity, then symbol)."""
    out = []
    for el in sorted(comp, key=formula_sort_key):
        amt = comp[el]
        if amt == 1:
            out.append(el)
        elif float(amt).is_integer():
            out.append(f"{el}{int(amt)}")
        else:
            out.append(f"{el}{amt:g}")
    return "".join(out)


def reduced_formula(text: str) -> str:
    """Canonical reduced formula of user input; FormulaError when it cannot be reduced."""
    comp, reason = reduce_composition(parse_formula(text))
    if comp is None:
        raise FormulaError(f"{text!r}: {reason}")
    return format_formula(comp)
