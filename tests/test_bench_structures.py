"""The structure benchmarks' splits and the ranking rule they score (bench/bench_structure_*.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bench_structure_validation as bsv  # noqa: E402


def test_the_tuning_split_never_touches_the_held_out_formulas():
    from wbg_core.structures.templates import template_index

    ix = template_index()
    test, tune = bsv.test_set(split="test"), bsv.test_set(split="tune")
    assert len(test) == len(tune) == bsv.N_TEST
    formulas = lambda rows: {ix.structure_formula[i] for i in rows}  # noqa: E731
    assert not formulas(test) & formulas(tune)  # disjoint as formulas, not only as rows
    assert bsv.test_set(split="test") == test  # the held-out set is fixed
    assert bsv._journal("tune") != bsv._journal("test")
    with pytest.raises(ValueError, match="unknown split 'train'"):
        bsv.test_set(split="train")


def _row(energies, matches):
    return {"potentials": {"chgnet": {"relaxations": [
        {"error": "refused"} if e is None else {"energy_per_atom": e, "match": m} for e, m in zip(energies, matches)]}}}


def test_top1_scores_the_apps_rule_from_the_journal_rows():
    rows = [_row([-5.00, -5.02], [True, False]),  # a near tie: EMD's right answer wins it
            _row([-5.00, -5.20], [False, True]),  # a clear energy winner
            _row([None, -4.0], [True, False])]  # a refused relaxation cannot come first
    assert bsv.top1_within(rows, "chgnet", 0.0) == pytest.approx(1 / 3, abs=1e-4)
    assert bsv.top1_within(rows, "chgnet", 0.05) == pytest.approx(2 / 3, abs=1e-4)
    assert bsv.top1_within(rows, "chgnet", 1.0) == pytest.approx(1 / 3, abs=1e-4)  # the EMD order: a miss on row 2
