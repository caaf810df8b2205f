"""Parse what a person types as a chemical formula into a composition.

One error type, FormulaError, for every way input can be wrong, with a message that says
what to fix. Accepted: `SrYF5`, `Sr Y F5`, `(NH4)2SO4`, `[Co(NH3)6]Cl3`, hydrates
(`CuSO4·5H2O`, `CuSO4*5H2O`, `Fe2O3.H2O`; a dot between digits is a decimal point), unicode subscripts
(`Fe₂O₃`), decimal amounts (`Fe0.5Ni0.5`), and all-lower- or all-upper-case input when it
splits into element symbols in exactly one way (`sryf5` -> SrYF5; `co` is refused as
ambiguous between Co and CO).

The cost is bounded: at most MAX_FORMULA_LENGTH characters, each looked at a fixed number of
times (no recursion, no backtracking search), so text typed into the app cannot stall it.
Each element's total amount must lie in [MIN_AMOUNT, MAX_AMOUNT]: below 0.001 an amount is
noise that rounding or reduction would turn into 0 (or a formula that does not parse back).
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from fractions import Fraction
from functools import lru_cache

from .elements import ATOMIC_NUMBER, formula_sort_key

MAX_FORMULA_LENGTH = 1000
MAX_AMOUNT = 10_000.0
MIN_AMOUNT = 0.001  # smallest amount format_formula writes as a plain decimal (0.001)

_SUBSCRIPTS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
_HYDRATE_DOTS = "·•∙⋅*"
_TOKEN = re.compile(r"([A-Z][a-z]?)|(\d+(?:\.\d+)?|\.\d+)|([(\[{])|([)\]}])")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_CLOSE = {")": "(", "]": "[", "}": "{"}
_LOWER_SYMBOLS = {s.lower(): s for s in ATOMIC_NUMBER}
_QUOTE_LIMIT = 40


class FormulaError(ValueError):
    """A formula that cannot be understood; the message says why, in user terms."""


def _quote(text: str) -> str:
    """repr of the input, shortened so that a 1,000-character paste gives a readable message."""
    if len(text) <= _QUOTE_LIMIT:
        return repr(text)
    return repr(text[: _QUOTE_LIMIT - 3]) + f"… ({len(text):,} characters)"


def _clean(text: str) -> str:
    if len(text) > MAX_FORMULA_LENGTH:
        raise FormulaError(
            f"formula is {len(text):,} characters long; the limit is {MAX_FORMULA_LENGTH}"
        )
    text = text.translate(_SUBSCRIPTS).strip()
    if not text:
        raise FormulaError("empty formula: type one such as SrYF5")
    return text


def _positive(number: str, text: str, what: str = "amount") -> float:
    value = float(number)
    if value <= 0:
        raise FormulaError(f"{what} {number} in {_quote(text)} must be positive")
    return value


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
            mult = _positive(m.group(1), text, "hydrate multiplier")
            part = part[m.end():]
        parts.append((mult, part))
    return parts


def _parse_group(text: str) -> dict[str, float]:
    """Amounts of one hydrate part; a number is read together with the symbol or bracket it
    follows, so `H0.001` is exactly 0.001 (not 1 + (0.001 - 1))."""
    stack: list[tuple[str, dict[str, float]]] = [("", {})]
    pos = 0
    compact = re.sub(r"\s+", "", text)
    while pos < len(compact):
        m = _TOKEN.match(compact, pos)
        if m is None:
            raise FormulaError(
                f"unexpected character {compact[pos]!r} at position {pos + 1} in {_quote(text)}"
            )
        element, number, opening, closing = m.groups()
        pos = m.end()
        if number:
            raise FormulaError(
                f"number {number} in {_quote(text)} does not follow an element or group"
            )
        if opening:
            stack.append((opening, {}))
            continue
        amount = 1.0
        n = _NUMBER.match(compact, pos)
        if n:
            amount = _positive(n.group(), text)
            pos = n.end()
        current = stack[-1][1]
        if element:
            if element not in ATOMIC_NUMBER:
                raise FormulaError(f"{element!r} is not an element symbol (in {_quote(text)})")
            current[element] = current.get(element, 0.0) + amount
            continue
        if len(stack) == 1 or stack[-1][0] != _CLOSE[closing]:
            raise FormulaError(f"unbalanced {closing!r} in {_quote(text)}")
        _, group = stack.pop()
        if not group:
            raise FormulaError(f"empty brackets in {_quote(text)}")
        parent = stack[-1][1]
        for el, amt in group.items():
            parent[el] = parent.get(el, 0.0) + amt * amount
    if len(stack) != 1:
        raise FormulaError(f"unclosed {stack[-1][0]!r} in {_quote(text)}")
    return stack[0][1]


def _resolve_case(text: str) -> str:
    """Turn single-case input into element symbols, when exactly one reading exists.

    Dynamic programming from the right: ways[i] counts the readings of the rest, capped at 2
    (0 none, 1 unique, 2 ambiguous), so the work is linear where a search doubles per `co`.
    """
    compact = re.sub(r"\s+", "", text)
    if re.search(r"[^A-Za-z0-9.()\[\]{}·]", compact):
        return text  # let the main parser report the odd character
    low = compact.lower()
    n = len(low)
    steps: list[tuple[int, ...]] = [()] * n  # widths that can start at i, two letters first
    ways = [0] * (n + 1)
    ways[n] = 1
    for i in range(n - 1, -1, -1):
        if not low[i].isalpha():
            steps[i] = (1,)
        else:
            steps[i] = tuple(w for w in (2, 1) if i + w <= n and low[i : i + w] in _LOWER_SYMBOLS)
        ways[i] = min(2, sum(ways[i + w] for w in steps[i]))
    if ways[0] == 0:
        raise FormulaError(f"{_quote(text)} does not split into element symbols")

    def piece(i: int, w: int) -> str:
        return _LOWER_SYMBOLS[low[i : i + w]] if low[i].isalpha() else compact[i]

    def complete(i: int, out: list[str]) -> str:
        while i < n:
            w = next(w for w in steps[i] if ways[i + w])
            out.append(piece(i, w))
            i += w
        return "".join(out)

    first = complete(0, [])
    if ways[0] == 1:
        return first
    # The second reading: follow the first while the rest stays ambiguous, then take the
    # other step where the first reading's step leaves only one reading.
    out: list[str] = []
    i = 0
    viable = [w for w in steps[0] if ways[w]]
    while ways[i + viable[0]] >= 2:
        out.append(piece(i, viable[0]))
        i += viable[0]
        viable = [w for w in steps[i] if ways[i + w]]
    out.append(piece(i, viable[1]))
    second = complete(i + viable[1], out)
    d = next((k for k, (a, b) in enumerate(zip(first, second)) if a != b), 0)
    start = max(0, d - 12)
    first, second = (("…" if start else "") + r[start : d + 12] + ("…" if len(r) > d + 12 else "")
                     for r in (first, second))
    raise FormulaError(
        f"{_quote(text)} is ambiguous ({first} or {second}); write symbols with capitals"
    )


def _parse_text(text: str) -> dict[str, float]:
    total: dict[str, float] = {}
    for mult, part in _split_hydrate(text):
        for el, amt in _parse_group(part).items():
            total[el] = total.get(el, 0.0) + mult * amt
    return total


@lru_cache(maxsize=200_000)
def _parse_cached(text: str) -> dict[str, float]:
    text = _clean(text)
    try:
        total = _parse_text(text)
    except FormulaError:
        letters = [c for c in text if c.isalpha()]
        if not (letters and (text.lower() == text or text.upper() == text)):
            raise
        total = _parse_text(_resolve_case(text))
    if not total:
        raise FormulaError(f"no element found in {_quote(text)}")
    for el, amt in total.items():
        if not math.isfinite(amt) or amt > MAX_AMOUNT:
            raise FormulaError(f"amount of {el} ({amt:g}) is larger than {MAX_AMOUNT:g}")
        if amt < MIN_AMOUNT * (1 - 1e-9):
            raise FormulaError(
                f"amount of {el} ({amt:g}) is below the smallest amount kept, {MIN_AMOUNT:g}"
            )
    return dict(sorted(total.items(), key=lambda kv: formula_sort_key(kv[0])))


def parse_formula(text: str) -> dict[str, float]:
    """Composition of a formula as {element: amount}, amounts as written (not reduced).

    The type is checked before the cache (a list would fail there as unhashable), and the
    result is a copy so that a caller editing it cannot change the cached answer.
    """
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be text, got {type(text).__name__}")
    return dict(_parse_cached(str.__str__(text)))


parse_formula.cache_clear = _parse_cached.cache_clear  # type: ignore[attr-defined]
parse_formula.cache_info = _parse_cached.cache_info  # type: ignore[attr-defined]


def _checked(comp: object) -> dict[str, float]:
    """A composition handed in by code (templates, structures) held to the parser's rules, so
    that reducing or formatting it fails with a FormulaError, never a ZeroDivisionError."""
    if not isinstance(comp, Mapping):
        raise FormulaError(f"a composition must map element symbols to amounts, got {type(comp).__name__}")
    if not comp:
        raise FormulaError("empty composition: it needs at least one element")
    out: dict[str, float] = {}
    for el, amt in comp.items():
        if not isinstance(el, str) or el not in ATOMIC_NUMBER:
            raise FormulaError(f"{el!r} is not an element symbol")
        if isinstance(amt, bool) or not isinstance(amt, numbers.Real):
            raise FormulaError(f"amount of {el} must be a number, got {type(amt).__name__}")
        value = float(amt)
        if not math.isfinite(value) or value <= 0:
            raise FormulaError(f"amount of {el} ({value:g}) must be a positive number")
        if value < MIN_AMOUNT * (1 - 1e-9):
            raise FormulaError(
                f"amount of {el} ({value:g}) is below the smallest amount kept, {MIN_AMOUNT:g}"
            )
        out[el] = value
    return out


def reduce_composition(comp: dict[str, float], max_denominator: int = 20) -> tuple[dict[str, int] | None, str | None]:
    """Integer reduced composition, or (None, reason) when the ratios are not integers.

    Decimal amounts are turned into the smallest integers with the same ratios when each
    is within 1e-6 of a fraction with denominator <= max_denominator (Fe0.5Ni0.5 -> FeNi).
    """
    if isinstance(max_denominator, bool) or not isinstance(max_denominator, int) or max_denominator < 1:
        raise FormulaError(f"max_denominator must be a whole number >= 1, got {max_denominator!r}")
    fracs = {}
    for el, amt in _checked(comp).items():
        f = Fraction(amt).limit_denominator(max_denominator)
        if abs(float(f) - amt) > 1e-6 * max(1.0, amt):
            return None, f"non-integer ratio: {el}{amt:g} is not a simple fraction"
        fracs[el] = f
    lcm = 1
    for f in fracs.values():
        lcm = lcm * f.denominator // math.gcd(lcm, f.denominator)
    ints = {el: int(f * lcm) for el, f in fracs.items()}
    g = math.gcd(*ints.values())
    return {el: v // g for el, v in ints.items()}, None


def format_formula(comp: dict[str, int | float]) -> str:
    """Formula string in pymatgen's reduced-formula order (electronegativity, then symbol)."""
    comp = _checked(comp)
    out = []
    for el in sorted(comp, key=formula_sort_key):
        amt = comp[el]
        if amt == 1:
            out.append(el)
        elif amt.is_integer():
            out.append(f"{el}{int(amt)}")
        else:
            out.append(f"{el}{amt:g}")
    return "".join(out)


def reduced_formula(text: str) -> str:
    """Canonical reduced formula of user input; FormulaError when it cannot be reduced."""
    comp, reason = reduce_composition(parse_formula(text))
    if comp is None:
        raise FormulaError(f"{_quote(text)}: {reason}")
    return format_formula(comp)


def reduce_each(formulas) -> tuple[list[str | None], list[str | None]]:
    """(reduced formula or None, error or None) per input: a table of user formulas, row by row."""
    reduced: list[str | None] = []
    errors: list[str | None] = []
    for f in formulas:
        try:
            reduced.append(reduced_formula(f))
            errors.append(None)
        except FormulaError as exc:
            reduced.append(None)
            errors.append(str(exc))
    return reduced, errors
