"""Which relaxed template comes first: energy per atom, within the potential's error.

Ranking by relaxed energy alone puts a wrong structure first whenever the potential's error
exceeds the true energy difference between polymorphs, which are often a few meV/atom apart
(CHGNet's formation-energy MAE on MP ground states is about 30 meV/atom). So energies closer
than a tolerance count as a tie, and a tie goes to the template nearest by EMD (the paper's
rule): tolerance 0 is pure energy ranking, an infinite one is the EMD order. The tolerance
per potential was chosen on a tuning set of MP ground states disjoint from the benchmark's
held-out set (`wbg bench structure_validation`, docs/benchmarks.md).
"""
from __future__ import annotations

import math
from typing import Sequence

# eV/atom. CHGNet: picked on the tuning split of bench_structure_validation (200 MP ground states,
# seed 1, disjoint from the held-out 200) as the value with the most top-1 matches: 0, i.e. energy
# alone (64.5%; 0.03 gave 62.5%, 0.15 59.5%, the EMD order 60.5%; bench/results/structure_tuning.json).
# SevenNet-0 has not been tuned (its ranking relaxations were not run): energy alone, as CHGNet.
ENERGY_TOLERANCE = {"chgnet": 0.0, "sevennet-0": 0.0}


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
