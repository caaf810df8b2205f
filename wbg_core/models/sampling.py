"""What every composition generator shares: probabilities -> decoded count rows -> formulas."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..composition import N_ELEMENTS, counts_to_formulas, onehot_to_counts


class CompositionSampler:
    """Subclasses provide sample_probs(n, seed, batch) -> (n, 87, 8) probabilities."""

    def sample_probs(self, n: int, seed: int = 0, batch: int = 8192) -> np.ndarray:
        raise NotImplementedError

    def sample_counts(self, n: int, seed: int = 0, batch: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        """Counts (n, 87) and validity (decodes with the argmax rule to 2-8 elements, as
        MATGAN kept), generated in memory-bounded batches."""
        counts = np.zeros((n, N_ELEMENTS), np.int8)
        valid = np.zeros(n, bool)
        for k, s in enumerate(range(0, n, batch)):
            m = min(batch, n - s)
            c, v = onehot_to_counts(self.sample_probs(m, seed=seed * 100_003 + k), rule="argmax")
            n_el = (c > 0).sum(axis=1)
            counts[s : s + m] = c
            valid[s : s + m] = v & (n_el >= 2) & (n_el <= 8)
        return counts, valid

    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        """n samples, one row each (duplicates kept): formula ('' if invalid), valid (decodes),
        paper_rule_valid (the paper's SMACT defaults), compound_valid (the project's rule)."""
        from ..composition import compound_valid, smact_valid

        counts, valid = self.sample_counts(n, seed)
        formulas = counts_to_formulas(counts)
        formulas[~valid] = ""
        dec = np.where(valid, formulas, None)
        return pd.DataFrame({"formula": formulas, "valid": valid, "paper_rule_valid": smact_valid(dec),
                             "compound_valid": compound_valid(dec)})
