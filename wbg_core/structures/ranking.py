"""Which template comes first: a vote of the nearest templates, then energy within the potential's error.

Ranking by relaxed energy alone puts a wrong structure first whenever the potential's error
exceeds the true energy difference between polymorphs, which are often a few meV/atom apart
(CHGNet's formation-energy MAE on MP ground states is about 30 meV/atom). So energies closer
than a tolerance count as a tie, and a tie goes to the template order (the prototype vote below,
or the nearest EMD, the paper's rule): tolerance 0 is pure energy ranking, an infinite one the
template order. The tolerance per potential and the vote's decay were chosen on tuning sets of
MP ground states disjoint from the benchmark's held-out set (`wbg bench structure_tuning`).
"""
from __future__ import annotations

import math
from typing import Sequence

# eV/atom. CHGNet: picked on the tuning split of bench_structure_validation (200 MP ground states,
# seed 1, disjoint from the held-out 200) as the smallest with the most top-1 matches, ties going
# to the vote order: 0.02 (65.5%; energy alone 64.5%, the vote alone 64.0%, the EMD order 60.5%;
# bench/results/structure_tuning.json). The differences are 1-3 formulas of 200: within noise.
# SevenNet-0 has not been tuned (its ranking relaxations were not run): CHGNet's value.
ENERGY_TOLERANCE = {"chgnet": 0.02, "sevennet-0": 0.02}


def energy_tolerance(potential: str) -> float:
    """The tie tolerance for `potential` (eV/atom); an unknown name is an error, not a default."""
    try:
        return ENERGY_TOLERANCE[potential]
    except KeyError:
        raise KeyError(f"no energy tolerance for potential {potential!r}; known: {sorted(ENERGY_TOLERANCE)}") from None


def energy_order(energies: Sequence[float | None], tolerance: float) -> list[int]:
    """Indices of `energies` (given in EMD order) in ranked order.

    Repeatedly, among those left: the first in EMD order whose energy is within `tolerance` of
    the lowest left. Missing or non-finite energies come last, in EMD order.
    """
    if not tolerance >= 0:
        raise ValueError(f"the energy tolerance must be >= 0 eV/atom, not {tolerance}")
    left = [i for i, e in enumerate(energies) if e is not None and math.isfinite(e)]
    order = []
    while left:
        lowest = min(energies[i] for i in left)
        pick = next(i for i in left if energies[i] <= lowest + tolerance)
        order.append(pick)
        left.remove(pick)
    return order + [i for i, e in enumerate(energies) if e is None or not math.isfinite(e)]


# ---------------------------------------------------------------- the prototype vote
# The nearest template alone (the paper's rule) decides by an EMD rank that is often a tie
# (TbZn: four templates at EMD 0.5) or a near-tie, and one odd neighbour decides the structure.
# The vote is a distance-weighted k-nearest-neighbour choice of the structure type: the
# substituted templates that are one structure (StructureMatcher) pool their weights
# exp(-(emd - nearest emd) / VOTE_DECAY), and the heaviest prototype comes first, led by its
# nearest member. No potential is needed, so it orders the templates before any relaxation.
# VOTE_DECAY (in EMD units) is the one with the most top-1 matches on about 1,000 MP ground
# states disjoint from the held-out set (bench structure_tuning), with the vote over the 10
# nearest templates (VOTE_NEIGHBOURS); docs/structures.md.
VOTE_DECAY = 0.25
# The vote's neighbourhood: the nearest templates (one polymorph per formula) that vote, however
# few are shown; VOTE_DECAY was chosen for it.
VOTE_NEIGHBOURS = 10
# How the templates are ordered before any energy: "vote" (the structure type the nearest
# templates share) or "emd" (the nearest template first: the paper's rule).
ORDERS = {"vote": "prototype vote of the nearest templates", "emd": "nearest EMD template first (the paper)"}


def prototype_groups(structures: Sequence) -> list[int]:
    """For each structure, the index of the first one (in the given order) it matches under
    pymatgen's StructureMatcher (default tolerances); its own index when none earlier does.

    StructureMatcher.group_structures makes the same groups (the first unmatched structure takes
    every later one it matches) 2-3x faster than pairwise fit(), as it reduces each structure once.
    """
    from collections import defaultdict

    from pymatgen.analysis.structure_matcher import StructureMatcher

    where: dict[int, list[int]] = defaultdict(list)  # id -> indices, in case one object is passed twice
    for i, s in enumerate(structures):
        where[id(s)].append(i)
    group = list(range(len(structures)))
    for members in StructureMatcher().group_structures(list(structures)):
        idx = sorted(where[id(s)].pop(0) for s in members)
        for i in idx:
            group[i] = idx[0]
    return group


def vote_weights(emds: Sequence[float], groups: Sequence[int], decay: float = VOTE_DECAY) -> list[float]:
    """Each template's prototype's share of the vote (0-1): the summed weights of the templates in
    its group over the total."""
    if not decay > 0:
        raise ValueError(f"the vote's decay must be > 0 (EMD units), not {decay}")
    if len(emds) != len(groups):
        raise ValueError(f"{len(emds)} distances for {len(groups)} groups")
    if not len(emds):
        return []
    nearest = min(emds)
    w = [math.exp(-(d - nearest) / decay) for d in emds]
    per_group: dict[int, float] = {}
    for g, x in zip(groups, w):
        per_group[g] = per_group.get(g, 0.0) + x
    total = sum(w)
    return [per_group[g] / total for g in groups]


def vote_order(emds: Sequence[float], groups: Sequence[int], decay: float = VOTE_DECAY) -> list[int]:
    """Indices (given in EMD order) in voted order: the nearest template of each prototype, the
    heaviest prototype first (equal weights in EMD order), then the other templates in EMD order,
    so that the first few shown are different structures."""
    share = vote_weights(emds, groups, decay)
    leaders = sorted((i for i in range(len(emds)) if groups[i] == i), key=lambda i: (-round(share[i], 9), i))
    return leaders + [i for i in range(len(emds)) if groups[i] != i]
