"""The prototype vote measured on a split of bench_structure_validation: no potential, no relaxation.

For each formula of a split, the VOTE_NEIGHBOURS nearest templates (its own formula held out),
substituted as the app does, their EMDs, structure types (structures.ranking.prototype_groups)
and whether each matches the real MP structure. Journaled beside the relaxation rows; used by
bench_structure_validation (the held-out figures) and bench_structure_tuning (the decay).
"""
from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

from bench_structure_validation import (MAX_SITES, N_TEST, SPLIT_SIZES, SPLITS, _journal, _rate, _read_journal,
                                        held_out_substitutions, test_set)


def _vote_journal(split: str) -> Path:
    from wbg_core.structures.ranking import VOTE_NEIGHBOURS

    key = json.dumps(["vote", N_TEST, MAX_SITES, SPLITS[split], SPLIT_SIZES.get(split), VOTE_NEIGHBOURS])
    return _journal(split).parent / f"vote_{hashlib.sha256(key.encode()).hexdigest()[:10]}.jsonl"


def _vote_row(i: int) -> dict:
    """The VOTE_NEIGHBOURS nearest templates of the structure at pool row i (one polymorph per
    formula, its own formula held out), substituted as the app does: their EMDs, structure types
    (structures.ranking.prototype_groups) and whether each matches the real structure unrelaxed."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from wbg_core.data import load_structures
    from wbg_core.structures.ranking import VOTE_NEIGHBOURS, prototype_groups
    from wbg_core.structures.templates import template_index

    pool, ix, matcher = load_structures(), template_index(), StructureMatcher()
    formula = str(ix.formulas[ix.structure_formula[i]])
    real = pool.structure(i)
    subs = [(t, s.structure) for t, s in held_out_substitutions(formula, VOTE_NEIGHBOURS)]
    return {"pool_row": i, "formula": formula, "templates": [t.material_id for t, _ in subs],
            "emd": [t.emd for t, _ in subs], "group": prototype_groups([s for _, s in subs]),
            "match": [bool(matcher.fit(s, real)) for _, s in subs]}


def collect_votes(split: str = "test") -> list[dict]:
    """The vote rows of a split (journaled like the relaxations; no potential, so one process)."""
    journal = _vote_journal(split)
    journal.parent.mkdir(parents=True, exist_ok=True)
    done = _read_journal(journal)
    want = test_set(split=split)
    todo = [i for i in want if i not in done]
    if todo:
        print(f"validation: the vote of {len(todo)} formulas ({journal})", file=sys.stderr)
        warnings.simplefilter("ignore")
        for i in todo:
            row = _vote_row(i)
            with open(journal, "a") as fh:
                fh.write(json.dumps(row, default=float) + "\n")
            done[i] = row
    return [done[i] for i in want]


def vote_top1(votes: list[dict], decay: float, neighbours: int | None = None) -> float:
    """Top-1 match rate of the prototype vote (structures.ranking.vote_order) over the first
    `neighbours` templates (None: all the row has)."""
    from wbg_core.structures.ranking import vote_order

    hits = []
    for v in votes:
        k = len(v["emd"]) if neighbours is None else neighbours
        emd, group, match = v["emd"][:k], v["group"][:k], v["match"][:k]
        hits.append(bool(emd) and match[vote_order(emd, group, decay)[0]])
    return _rate(hits)
