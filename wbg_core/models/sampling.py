"""What every composition generator shares: probabilities -> decoded count rows -> formulas."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from ..composition import N_ELEMENTS, counts_to_formulas, onehot_to_counts
from . import compound_decoding


class CompositionSampler:
    """Subclasses provide sample_probs(n, seed, batch) -> (n, 87, 8) probabilities.

    compound_max_drop: a sample whose plain (argmax) decode is not a compound is read as its
    most likely compound reading within this many nats (models.compound_decoding), 0 keeps
    the plain decode. row_options: how a row's probabilities give its 9 options' likelihoods."""

    compound_max_drop: float = 0.0
    row_options = staticmethod(compound_decoding.row_options)

    def sample_probs(self, n: int, seed: int = 0, batch: int = 8192) -> np.ndarray:
        raise NotImplementedError

    def decode(self, probs: np.ndarray, compound_max_drop: float | None = None,
               search: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
               ) -> tuple[np.ndarray, np.ndarray, int]:
        """(counts (n, 87), validity, compound readings taken) of generator outputs: the argmax
        rule with 2-8 elements, as MATGAN kept, then the compound reading of the rows that
        search(counts, valid) selects (default all): a screen skips rows its filters drop."""
        drop = self.compound_max_drop if compound_max_drop is None else compound_max_drop
        c, v = onehot_to_counts(probs, rule="argmax")
        n_el = (c > 0).sum(axis=1)
        v &= (n_el >= 2) & (n_el <= 8)
        if drop <= 0:
            return c, v, 0
        rows = None if search is None else search(c, v)
        return c, v, compound_decoding.prefer_compound_counts(probs, c, v, drop, self.row_options, rows)

    def sample_counts(self, n: int, seed: int = 0, batch: int = 65536, compound_max_drop: float | None = None,
                      search: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Counts (n, 87) and validity of n samples, generated in memory-bounded batches."""
        counts = np.zeros((n, N_ELEMENTS), np.int8)
        valid = np.zeros(n, bool)
        for k, s in enumerate(range(0, n, batch)):
            m = min(batch, n - s)
            counts[s : s + m], valid[s : s + m], _ = self.decode(
                self.sample_probs(m, seed=seed * 100_003 + k), compound_max_drop, search)
        return counts, valid

    def sample(self, n: int, seed: int = 0, compound_max_drop: float | None = None) -> pd.DataFrame:
        """n samples, one row each (duplicates kept): formula ('' if invalid), valid (decodes),
        paper_rule_valid (the paper's SMACT defaults), compound_valid (the project's rule)."""
        from ..composition import compound_valid, smact_valid

        counts, valid = self.sample_counts(n, seed, compound_max_drop=compound_max_drop)
        formulas = counts_to_formulas(counts)
        formulas[~valid] = ""
        dec = np.where(valid, formulas, None)
        return pd.DataFrame({"formula": formulas, "valid": valid, "paper_rule_valid": smact_valid(dec),
                             "compound_valid": compound_valid(dec)})
