"""Formulas: parsing user input, the paper's 87 x 8 encoding, chemical validity."""
from .elements import N_COUNTS, N_ELEMENTS, VOCAB
from .encoding import (
    EncodeResult,
    canonical_formula,
    counts_to_formulas,
    counts_to_onehot,
    decode,
    encode,
    encode_counts,
    onehot_to_counts,
)
from .parse import FormulaError, parse_formula, reduce_each, reduced_formula
from .validity import RULES, Verdict, compound_valid, compound_verdict, rule_valid, smact_valid

__all__ = [
    "N_COUNTS", "N_ELEMENTS", "VOCAB", "EncodeResult", "FormulaError", "canonical_formula",
    "counts_to_formulas", "counts_to_onehot", "decode", "encode", "encode_counts",
    "onehot_to_counts", "parse_formula", "reduce_each", "reduced_formula", "smact_valid", "RULES", "Verdict",
    "compound_valid", "compound_verdict", "rule_valid",
]
