"""The paper's 87 x 8 one-hot composition matrix, encoded and decoded in bulk.

Row i is VOCAB[i]; an absent element is an all-zero row; column k means k + 1 atoms in the
reduced formula. Bulk paths work on integer count matrices (N, 87) so that a million
formulas never go through a per-formula Python loop: strings are parsed once per unique
formula (cached), and decoded strings are assembled with byte arrays and one split.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .elements import N_COUNTS, N_ELEMENTS, VOCAB, VOCAB_INDEX, formula_sort_key
from .parse import FormulaError, parse_formula, reduce_composition, reduced_formula

MATRIX_SHAPE = (N_ELEMENTS, N_COUNTS)

# Canonical order of vocabulary rows in formula strings (pymatgen's reduced-formula order).
_CANON_ORDER = np.array(sorted(range(N_ELEMENTS), key=lambda i: formula_sort_key(VOCAB[i])))

# Token bytes per (canonical position, count 0..8): the symbol plus the digit when > 1.
_TOKENS = np.zeros((N_ELEMENTS, N_COUNTS + 1, 3), dtype=np.uint8)
for _pos, _row in enumerate(_CANON_ORDER):
    for _c in range(1, N_COUNTS + 1):
        _tok = (VOCAB[_row] + (str(_c) if _c > 1 else "")).encode("ascii")
        _TOKENS[_pos, _c, : len(_tok)] = np.frombuffer(_tok, dtype=np.uint8)


@dataclass(frozen=True)
class EncodeResult:
    """Counts (N, 87) int8 for every input; rows that failed are all zero, with a reason.

    Reasons are kept per distinct input string (`_error_of_unique`, `_inverse`) so a million
    inputs cost no per-row Python work; `errors` expands them on demand.
    """

    counts: np.ndarray
    ok: np.ndarray  # bool (N,)
    _inverse: np.ndarray
    _error_of_unique: dict[int, str]

    def error(self, i: int) -> str | None:
        return None if self.ok[i] else self._error_of_unique.get(int(self._inverse[i]))

    @property
    def errors(self) -> list[str | None]:
        return [self.error(i) for i in range(len(self.ok))]

    def matrices(self, dtype=np.float32) -> np.ndarray:
        return counts_to_onehot(self.counts, dtype)


def composition_counts(text: str) -> np.ndarray:
    """Count vector (87,) of one formula; FormulaError says why it cannot be encoded."""
    comp, reason = reduce_composition(parse_formula(text))
    if comp is None:
        raise FormulaError(f"{text!r} cannot be encoded: {reason}")
    vec = np.zeros(N_ELEMENTS, dtype=np.int8)
    outside = [el for el in comp if el not in VOCAB_INDEX]
    if outside:
        raise FormulaError(
            f"{text!r} cannot be encoded: {', '.join(outside)} not in the 87-element vocabulary"
        )
    over = [f"{el}{n}" for el, n in comp.items() if n > N_COUNTS]
    if over:
        raise FormulaError(
            f"{text!r} cannot be encoded: count above {N_COUNTS} in the reduced formula ({', '.join(over)})"
        )
    for el, n in comp.items():
        vec[VOCAB_INDEX[el]] = n
    return vec


@lru_cache(maxsize=500_000)
def _cached_counts(text: str) -> np.ndarray:
    vec = composition_counts(text)
    vec.flags.writeable = False
    return vec


def encode_counts(formulas: Sequence[str] | Iterable[str]) -> EncodeResult:
    """Count matrix of many formulas, parsing each distinct string once."""
    arr = formulas if isinstance(formulas, np.ndarray) else np.asarray(list(formulas), dtype=object)
    if len(arr) == 0:
        empty = np.zeros(0, dtype=np.intp)
        return EncodeResult(np.zeros((0, N_ELEMENTS), np.int8), np.zeros(0, bool), empty, {})
    inverse, uniq = pd.factorize(arr, use_na_sentinel=False)
    u_counts = np.zeros((len(uniq), N_ELEMENTS), dtype=np.int8)
    u_ok = np.zeros(len(uniq), dtype=bool)
    u_err: dict[int, str] = {}
    for i, text in enumerate(uniq):
        try:
            u_counts[i] = _cached_counts(text)
            u_ok[i] = True
        except FormulaError as exc:
            u_err[i] = str(exc)
        except TypeError:
            u_err[i] = f"a formula must be text, got {type(text).__name__}"
    return EncodeResult(u_counts[inverse], u_ok[inverse], inverse, u_err)


def encode(formulas: Sequence[str]) -> np.ndarray:
    """One-hot matrices (N, 87, 8) float32; raises FormulaError naming the first bad formula."""
    res = encode_counts(formulas)
    if not res.ok.all():
        bad = int(np.flatnonzero(~res.ok)[0])
        raise FormulaError(res.errors[bad] or "cannot encode")
    return counts_to_onehot(res.counts)


def counts_to_onehot(counts: np.ndarray, dtype=np.float32) -> np.ndarray:
    """One-hot matrices (N, 87, 8); use dtype=np.uint8 for big batches (4x less memory)."""
    counts = np.asarray(counts)
    n = counts.shape[0]
    rows, cols = np.nonzero(counts)
    # Write each present element's row as one little-endian uint64 whose byte k is 1.
    words = np.zeros((n, N_ELEMENTS), dtype="<u8")
    words[rows, cols] = np.left_shift(np.uint64(1), (8 * (counts[rows, cols].astype(np.uint64) - 1)))
    onehot = words.view(np.uint8).reshape(n, N_ELEMENTS, N_COUNTS)
    return onehot if dtype == np.uint8 else onehot.astype(dtype)


def onehot_to_counts(matrices: np.ndarray, rule: str = "strict", threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Counts (N, 87) and validity (N,) from matrices (N, 87, 8), hard or soft.

    rule "strict" is the paper's: round each cell at `threshold`; a row with no 1 is absent,
    a row with exactly one 1 gives that count, a row with several 1s makes the matrix
    invalid. rule "argmax" is for soft outputs (decoder or generator probabilities): an
    element is present when its largest cell reaches `threshold`, with the argmax count,
    so no row can be ambiguous. Either way a matrix with no element is invalid.
    """
    m = np.asarray(matrices)
    if m.ndim == 2:
        m = m[None]
    if m.shape[1:] != MATRIX_SHAPE:
        raise ValueError(f"expected matrices of shape (N, 87, 8), got {m.shape}")
    n = m.shape[0]
    if rule == "strict":
        if m.dtype == np.uint8 or m.dtype == np.bool_:
            hard = m  # hard matrices: 0/1 bytes already
        else:
            hard = m >= threshold
        # Each row of 8 bytes read as one uint64: 0 is absent, a power of 256 is exactly
        # one 1 (its column from the exponent); anything else makes the matrix invalid.
        words = np.ascontiguousarray(hard).view(np.uint8).view(np.uint64)[..., 0]
        rows, cols = np.nonzero(words)
        w = words[rows, cols]
        single = (w & (w - np.uint64(1))) == 0
        column = (np.frexp(w.astype(np.float64))[1] - 1) // 8
        counts = np.zeros((n, N_ELEMENTS), dtype=np.int8)
        counts[rows, cols] = np.where(single, column + 1, 0)
        valid = np.zeros(n, dtype=bool)
        valid[rows] = True
        valid[rows[~single]] = False
    elif rule == "argmax":
        import torch

        peak, arg = torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32)).max(dim=2)
        counts = torch.where(peak >= threshold, arg + 1, 0).to(torch.int8).numpy()
        valid = (counts > 0).any(axis=1)
    else:
        raise ValueError(f"unknown decoding rule {rule!r}: use 'strict' or 'argmax'")
    counts[~valid] = 0
    return counts, valid


def counts_to_formulas(counts: np.ndarray) -> np.ndarray:
    """Formula strings (object array) of count rows; empty rows give ''.

    Vectorised: tokens are gathered as bytes in canonical element order, joined into one
    buffer with a newline per formula, and split once.
    """
    counts = np.asarray(counts)
    n = counts.shape[0]
    out = np.full(n, "", dtype=object)
    if n == 0:
        return out
    canon = counts[:, _CANON_ORDER]
    rows, pos = np.nonzero(canon)
    if len(rows) == 0:
        return out
    toks = np.zeros((len(rows), 4), dtype=np.uint8)
    toks[:, :3] = _TOKENS[pos, canon[rows, pos].astype(np.intp)]
    last = np.ones(len(rows), dtype=bool)
    last[:-1] = rows[1:] != rows[:-1]
    toks[last, 3] = ord("\n")
    buf = toks.ravel()
    text = buf[buf != 0].tobytes().decode("ascii")
    nonempty = rows[last]
    out[nonempty] = text.split("\n")[:-1]
    return out


def decode(matrices: np.ndarray, rule: str = "strict", threshold: float = 0.5) -> np.ndarray:
    """Formula per matrix, or None where it does not decode to a formula."""
    counts, valid = onehot_to_counts(matrices, rule=rule, threshold=threshold)
    formulas = counts_to_formulas(counts)
    formulas[~valid] = None
    return formulas


# The reduced formula as decode() writes it (for comparing formulas as strings).
canonical_formula = reduced_formula
