"""The one train/validation/test split used by every model, experiment and benchmark.

Splitting is by formula (one row per reduced formula in the data), 60/20/20, from a seeded
permutation of the sorted canonical formulas of the *full* set. Subsets (the paper's
gap > 0 "non-metals", the encodable formulas) inherit each formula's split, so a test
formula is a test formula under every subset and no model ever trains on it.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

Subset = Literal["full", "nonmetal", "encodable", "encodable_nonmetal"]
SPLIT_NAMES = ("train", "val", "test")
FRACTIONS = (0.6, 0.2, 0.2)


def split_labels(formulas: pd.Series | np.ndarray, seed: int = 0) -> np.ndarray:
    """'train' / 'val' / 'test' for each formula, independent of row order."""
    formulas = np.asarray(formulas, dtype=object)
    if len(set(formulas)) != len(formulas):
        raise ValueError("split_labels needs one row per formula; de-duplicate first")
    order = np.argsort(formulas.astype(str), kind="stable")
    perm = np.random.default_rng(seed).permutation(len(formulas))
    n_train = int(round(FRACTIONS[0] * len(formulas)))
    n_val = int(round(FRACTIONS[1] * len(formulas)))
    rank = np.empty(len(formulas), dtype=np.int64)
    rank[order[perm]] = np.arange(len(formulas))
    labels = np.where(rank < n_train, "train", np.where(rank < n_train + n_val, "val", "test"))
    return labels.astype(object)


def subset_mask(df: pd.DataFrame, subset: Subset) -> np.ndarray:
    if subset == "full":
        return np.ones(len(df), dtype=bool)
    if subset == "nonmetal":
        return (df["band_gap"] > 0).to_numpy()
    if subset == "encodable":
        return df["encodable"].to_numpy()
    if subset == "encodable_nonmetal":
        return (df["encodable"] & (df["band_gap"] > 0)).to_numpy()
    raise ValueError(f"unknown subset {subset!r}: use full, nonmetal, encodable or encodable_nonmetal")


def split(df: pd.DataFrame, seed: int = 0, subset: Subset = "full") -> dict[str, pd.DataFrame]:
    """{'train', 'val', 'test'} frames of the bundled data (load_bandgaps())."""
    labels = split_labels(df["formula"], seed)
    mask = subset_mask(df, subset)
    return {name: df[mask & (labels == name)] for name in SPLIT_NAMES}
