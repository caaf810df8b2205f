"""Constrained decoding: the most likely reading of a decoder output that is a compound.

The decoder gives an independent probability per cell of the 87 x 8 matrix. Its plain
decode rounds each cell; when that reading is not a compound (the validity rule:
wbg_core.composition.validity), the same output often has a compound reading that is only
slightly less likely, e.g. one count one step lower. This module searches those readings,
best first, and keeps the first compound whose log-likelihood is within `max_drop` nats of
the best reading; if there is none the plain decode stands. Why: a point of the latent
map is a region, not an exact code, and a chemist asks it for a composition that can exist.

The log-likelihood of a reading sums, over the 87 rows, the log-probability of that row's
option. Two kinds of output: the autoencoder's cells are independent Bernoullis
(`row_options`: an absent element has all 8 cells off, count c has only cell c on); the
dense GAN's rows are a softmax over "absent" and the 8 counts (`categorical_row_options`).
"""
from __future__ import annotations

import heapq

import numpy as np

from ..composition import counts_to_formulas, onehot_to_counts
from ..composition.validity import MAX_ELEMENTS, compound_verdict

MAX_DROP = 8.0  # nats below the best reading (a reading at most e^-8 times as likely)
BEAM = 24  # readings tried per output before giving up
ALTERNATIVES = 2  # other options per uncertain element (absent, or another count)


def row_options(probs: np.ndarray) -> np.ndarray:
    """(87, 9) log-likelihoods of each element being absent (column 0) or having count 1..8."""
    p = np.clip(probs.astype(np.float64), 1e-6, 1 - 1e-6)
    absent = np.log1p(-p).sum(axis=1)
    counts = absent[:, None] - np.log1p(-p) + np.log(p)
    return np.concatenate([absent[:, None], counts], axis=1)


def categorical_row_options(probs: np.ndarray) -> np.ndarray:
    """(87, 9) log-probabilities when each row is one distribution: absent = 1 - sum of the 8."""
    p = np.clip(probs.astype(np.float64), 1e-9, 1.0)
    absent = np.clip(1.0 - p.sum(axis=1), 1e-9, 1.0)
    return np.log(np.concatenate([absent[:, None], p], axis=1))


def best_compound_counts(opts: np.ndarray, max_drop: float = MAX_DROP, beam: int = BEAM
                         ) -> tuple[np.ndarray | None, str | None, float | None]:
    """(counts row, formula, nats below the best reading) of the most likely compound reading
    of one output's (87, 9) row options within max_drop, or (None, None, None)."""
    best = opts.argmax(axis=1)
    drop = opts.max(axis=1)[:, None] - opts
    alts = []  # (drop, element, option) of the runner-up options of uncertain elements
    for e in np.nonzero((drop <= max_drop).sum(axis=1) > 1)[0]:
        for o in np.argsort(drop[e])[1:1 + ALTERNATIVES]:
            if drop[e, o] <= max_drop:
                alts.append((float(drop[e, o]), int(e), int(o)))
    alts.sort()
    heap: list[tuple[float, tuple[int, ...]]] = [(0.0, ())]
    tried = 0
    while heap and tried < beam:
        d, chosen = heapq.heappop(heap)
        counts = best.copy()
        for i in chosen:
            counts[alts[i][1]] = alts[i][2]
        tried += 1
        if 2 <= np.count_nonzero(counts) <= MAX_ELEMENTS:  # the rule refuses the others unread
            formula = counts_to_formulas(counts[None].astype(np.int8))[0]
            if compound_verdict(formula).valid:
                return counts.astype(np.int8), formula, d
        used = {alts[i][1] for i in chosen}
        for j in range((chosen[-1] + 1) if chosen else 0, len(alts)):  # increasing index: each subset once
            if alts[j][1] not in used and d + alts[j][0] <= max_drop:
                heapq.heappush(heap, (d + alts[j][0], chosen + (j,)))
    return None, None, None


def best_compound_reading(probs: np.ndarray, max_drop: float = MAX_DROP, beam: int = BEAM
                          ) -> tuple[str | None, float | None]:
    """(formula, nats below the best reading) of the most likely compound reading of one
    (87, 8) autoencoder output within max_drop, or (None, None)."""
    _, formula, d = best_compound_counts(row_options(probs), max_drop, beam)
    return formula, d


def prefer_compound_counts(probs: np.ndarray, counts: np.ndarray, ok: np.ndarray, max_drop: float,
                           options=categorical_row_options, search: np.ndarray | None = None,
                           beam: int = BEAM) -> int:
    """Replace, in place, the plain decode `counts`/`ok` of each output that is not a compound
    by its best compound reading within max_drop (a generator sample is a draw from a
    distribution; its most likely reading is one of several close ones). `search` limits
    the rows tried (default: all). Returns how many rows changed."""
    from ..composition import compound_valid

    rows = np.arange(len(counts)) if search is None else np.nonzero(search)[0]
    formulas = np.where(ok[rows], counts_to_formulas(counts[rows]), None)
    changed = 0
    for i in rows[~compound_valid(formulas)]:
        c, _, _ = best_compound_counts(options(probs[i]), max_drop, beam)
        if c is not None:
            counts[i], ok[i] = c, True
            changed += 1
    return changed


def decode_preferring_compounds(ae, z: np.ndarray, max_drop: float = MAX_DROP, beam: int = BEAM
                                ) -> tuple[np.ndarray, np.ndarray]:
    """(formulas, plain decodes) of latent codes: the plain (strict) decode where it is a
    compound, else the best compound reading within max_drop, else the plain decode (None
    where that does not decode either)."""
    z = np.atleast_2d(np.asarray(z, np.float32))
    probs = ae.decode_probs(z)
    counts, ok = onehot_to_counts(probs, rule="strict")  # what ae.decode(z) gives, without decoding twice
    plain = counts_to_formulas(counts)
    plain[~ok] = None
    prefer_compound_counts(probs, counts, ok, max_drop, row_options, beam=beam)
    out = counts_to_formulas(counts)
    out[~ok] = None
    return out, plain
