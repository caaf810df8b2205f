"""The structure benchmarks' splits and the ranking rule they score (bench/bench_structure_*.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bench_structure_validation as bsv  # noqa: E402
import structure_votes as sv  # noqa: E402


def test_the_tuning_split_never_touches_the_held_out_formulas():
    from wbg_core.structures.templates import template_index

    ix = template_index()
    test, tune = bsv.test_set(split="test"), bsv.test_set(split="tune")
    assert len(test) == len(tune) == bsv.N_TEST
    formulas = lambda rows: {ix.structure_formula[i] for i in rows}  # noqa: E731
    assert not formulas(test) & formulas(tune)  # disjoint as formulas, not only as rows
    assert bsv.test_set(split="test") == test  # the held-out set is fixed
    assert bsv._journal("tune") != bsv._journal("test")
    vote = bsv.test_set(split="vote")  # the 800 on which only the vote is measured
    assert len(vote) == bsv.SPLIT_SIZES["vote"] and not formulas(vote) & (formulas(test) | formulas(tune))
    assert sv._vote_journal("vote") != sv._vote_journal("tune")
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


def test_ties_go_to_the_vote_order_when_the_votes_are_given():
    """The app's rule after 'Relax and rank': energies within the tolerance are a tie that the
    vote order breaks; the vote rows must describe the same templates."""
    row = {"formula": "AB", "templates": [{"template": "mp-1"}, {"template": "mp-2"}, {"template": "mp-3"}],
           **_row([-5.00, -5.01, -5.30], [False, True, False])}
    vote = {"templates": ["mp-1", "mp-2", "mp-3", "mp-4"], "emd": [0.5, 0.5, 1.0, 1.0], "group": [0, 1, 1, 1],
            "match": [False, True, True, True]}
    assert bsv.top1_within([row], "chgnet", 0.0, [vote], 0.25) == 0  # energy alone: mp-3
    assert bsv.top1_within([row], "chgnet", 1.0, [vote], 0.25) == 1  # all a tie: the vote's mp-2
    assert bsv.top1_within([row], "chgnet", 1.0) == 0  # all a tie, no votes: EMD's mp-1
    assert sv.vote_top1([vote], 0.25) == 1 and sv.vote_top1([vote], 0.25, neighbours=1) == 0
    with pytest.raises(AssertionError, match="templates differ"):
        bsv.top1_within([row], "chgnet", 1.0, [{**vote, "templates": ["mp-9"] * 4}], 0.25)
