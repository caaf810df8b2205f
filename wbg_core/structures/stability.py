"""Formation energy from a potential, fitted elemental references, energy above the MP convex hull.

- The potential (structures.potentials: CHGNet or SevenNet, weights in their wheels) relaxes
  cell and positions and gives the total energy.
- Formation energy per atom: E_f = (E - sum_i n_i mu_i) / N. The bundled pool holds no
  elemental structures (MP's element entries were not bundled), so the references mu_i cannot
  be the potential's energies of elemental ground states. They are *fitted elemental reference
  energies* instead (as in FERE, Stevanovic et al., PRB 85, 115104, 2012): least squares of
  E/N - E_f(MP) = sum_i x_i mu_i over pool compounds with a known MP formation energy, per
  potential. This puts each potential's formation energies on MP's scale: CHGNet learned MP's
  corrected energies, SevenNet-0 the uncorrected ones, and the fitted mu absorb the difference
  (the anion corrections). The fit is computed once per potential (`fit_element_references`, a
  few minutes on 1 thread) and stored in models/<name>_element_refs.json with the material ids
  it used, which the validation benchmark keeps out of its test set.
- Energy above hull: pymatgen PhaseDiagram of the bundled MP formation energies of the
  chemical system (elements at 0), completed by CHGNet estimates for the MP compounds bundled
  without one (estimated_phases), with the candidate at the potential's formation energy. The
  energies come from different methods (DFT hull, ML candidate): treat e_hull as a screen,
  not a verdict.
- The paper's rule: keep candidates with negative formation energy that are charge neutral
  and electronegativity balanced (SMACT).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..composition.parse import FormulaError, format_formula
from ..data.estimates import MP_SOURCE  # noqa: F401 - re-exported: the hull marks MP-priced phases with it
from .potentials import DEFAULT_FMAX, DEFAULT_STEPS, POTENTIALS
from .templates import reduce

# ---------------------------------------------------------------- elemental references

def refs_file(potential_name: str) -> str:
    return f"{potential_name}_element_refs.json"


REFS_FILE = refs_file("chgnet")  # the default potential's


def refs_path(potential_name: str = "chgnet") -> Path:
    from ..settings import get_settings

    return Path(get_settings().models_dir) / refs_file(potential_name)


@lru_cache(maxsize=None)
def element_references(potential_name: str = "chgnet") -> dict:
    """The fitted elemental references of a potential (models/<name>_element_refs.json)."""
    path = refs_path(potential_name)
    refit = f"`python -m wbg_core structure --fit-references --potential {potential_name}`"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run {refit} once to compute it")
    from ..files import read_json_object

    refs = read_json_object(path, ValueError, "the element references", f": rerun {refit}")
    if not isinstance(refs.get("elements"), dict) or not refs["elements"]:
        raise ValueError(f"{path} holds no element references: rerun {refit}")
    return refs


def _fit_set(per_element: int, max_atoms: int, seed: int) -> np.ndarray:
    """Pool rows used to fit the references: up to `per_element` small compounds per element."""
    from ..data import load_structures
    from .templates import template_index

    pool = load_structures()
    ix = template_index()
    n_atoms = np.diff(pool.offsets)
    ok = ~np.isnan(ix.e_form) & (n_atoms <= max_atoms)
    rng = np.random.default_rng(seed)
    chosen: set[int] = set()
    rows = np.flatnonzero(ok)
    rng.shuffle(rows)
    counts: dict[int, int] = {}
    for i in rows:
        zs = set(pool.sites(i)[0].tolist())
        if any(counts.get(z, 0) < per_element for z in zs):
            chosen.add(int(i))
            for z in zs:
                counts[z] = counts.get(z, 0) + 1
    return np.array(sorted(chosen))


def fit_element_references(potential, per_element: int = 40, max_atoms: int = 24, seed: int = 0,
                           write: bool = True, progress=None) -> dict:
    """Fit mu_i by least squares over pool compounds (see module doc); writes models/<name>_element_refs.json.

    The fit set depends on the pool and the seed only, so every potential is fitted on the same
    compounds and the validation benchmark keeps the same ones out."""
    from pymatgen.core import Element

    from ..data import load_structures
    from .templates import template_index

    pool = load_structures()
    ix = template_index()
    rows = _fit_set(per_element, max_atoms, seed)
    t0 = time.perf_counter()
    energies = np.empty(len(rows))
    batch = 64
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        energies[start:start + batch] = potential.energies([pool.structure(i) for i in part])
        if progress:
            progress(start + len(part), len(rows))
    keep = np.isfinite(energies)
    rows, energies = rows[keep], energies[keep]
    elements = sorted({int(z) for i in rows for z in pool.sites(i)[0]})
    col = {z: k for k, z in enumerate(elements)}
    x = np.zeros((len(rows), len(elements)))
    for r, i in enumerate(rows):
        zs, counts = np.unique(pool.sites(i)[0], return_counts=True)
        for z, c in zip(zs, counts):
            x[r, col[int(z)]] = c / counts.sum()
    y = energies - ix.e_form[rows]
    mu, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ mu
    symbols = [Element.from_Z(z).symbol for z in elements]
    per_el = {}
    for k, sym in enumerate(symbols):
        has = x[:, k] > 0
        per_el[sym] = {"mu_eV_per_atom": round(float(mu[k]), 6), "n_compounds": int(has.sum()),
                       "mae_eV_per_atom": round(float(np.abs(resid[has]).mean()), 4)}
    out = {
        "method": f"fitted elemental reference energies: least squares of {potential.label} E/atom - MP "
                  "E_form/atom = sum_i x_i mu_i over pool compounds (the pool holds no elemental structures)",
        "model": f"{potential.label} (static energies at the MP geometries)",
        "potential": potential.name,
        "per_element": per_element, "max_atoms": max_atoms, "seed": seed,
        "n_compounds": int(len(rows)),
        "fit_mae_eV_per_atom": round(float(np.abs(resid).mean()), 4),
        "seconds": round(time.perf_counter() - t0, 1),
        "elements": per_el,
        "material_ids": [str(ix.material_ids[i]) for i in rows],
    }
    if write:
        path = refs_path(potential.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1) + "\n")
        element_references.cache_clear()
    return out


def formation_energy_per_atom(composition, energy_per_atom: float, refs: dict) -> float:
    """E_f per atom from a potential's energy per atom and that potential's fitted references."""
    if hasattr(composition, "element_composition"):  # a pymatgen Composition
        comp = {el.symbol: float(n) for el, n in composition.element_composition.items()}
    elif isinstance(composition, str):
        comp = reduce(composition)
    else:
        comp = dict(composition)
    total = float(sum(comp.values()))
    missing = [el for el in comp if el not in refs["elements"]]
    if missing:
        info = POTENTIALS.get(refs.get("potential"))
        raise FormulaError(f"no {info.label if info else 'potential'} reference energy for {missing}: "
                           "the pool has no compound of them with an MP formation energy")
    mu = sum(n / total * refs["elements"][el]["mu_eV_per_atom"] for el, n in comp.items())
    return float(energy_per_atom - mu)


# ---------------------------------------------------------------- convex hull

@lru_cache(maxsize=1)
def _hull_table():
    """The hull's phases (data.estimates.hull_phases: MP's formation energies, then the ML
    estimates for MP compounds the data holds without one) as arrays: formulas, energies,
    compositions, sources and an element-membership matrix."""
    from ..composition.elements import VOCAB
    from ..data.estimates import hull_phases

    phases = hull_phases()
    formulas = phases["formula"].to_numpy(dtype=object)
    ef = phases["formation_energy_per_atom"].to_numpy(dtype=np.float64)
    sources = phases["source"].to_numpy(dtype=object)
    col = {el: k for k, el in enumerate(VOCAB)}
    member = np.zeros((len(formulas), len(VOCAB)), dtype=bool)
    comps = []
    for r, f in enumerate(formulas):
        comp = reduce(f)
        comps.append(comp)
        for el in comp:
            member[r, col[el]] = True
    return formulas, ef, comps, sources, member, col


def hull_entries(elements) -> list:
    """PDEntries (formation energies, elements at 0) of the known compositions of a chemical
    system; `attribute` says where the energy comes from: MP_SOURCE, or the potential's name
    for an ML estimate."""
    from pymatgen.analysis.phase_diagram import PDEntry
    from pymatgen.core import Composition

    formulas, ef, comps, sources, member, col = _hull_table()
    elements = sorted(set(elements))
    unknown = [el for el in elements if el not in col]
    if unknown:
        raise FormulaError(f"{unknown} are outside the 87-element vocabulary")
    outside = np.ones(member.shape[1], dtype=bool)
    outside[[col[el] for el in elements]] = False
    rows = np.flatnonzero(~member[:, outside].any(axis=1))
    entries = [PDEntry(Composition({el: 1}), 0.0, name=el, attribute=MP_SOURCE) for el in elements]
    for r in rows:
        comp = Composition(comps[r])
        entries.append(PDEntry(comp, float(ef[r]) * comp.num_atoms, name=str(formulas[r]),
                               attribute=str(sources[r])))
    return entries


def energy_above_hull(formula, formation_energy: float) -> dict:
    """E above the MP hull (eV/atom) of a composition at `formation_energy` (eV/atom).

    Negative values mean the candidate would lie below MP's hull. Returns e_above_hull and
    the decomposition products (formulas and fractions).
    """
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    comp = Composition(reduce(formula) if isinstance(formula, str) else formula)
    entries = hull_entries([el.symbol for el in comp.elements])
    if len(comp.elements) > 1 and all(e.composition.is_element for e in entries):
        # the hull of the bare elements: any compound at a negative formation energy would be
        # "below the hull" by that energy, which says nothing about its stability
        raise ValueError(f"no Materials Project compound of the {'-'.join(sorted(e.symbol for e in comp.elements))} "
                         "system in the bundled data: no hull to measure against")
    pd_ = PhaseDiagram(entries)
    cand = PDEntry(comp, formation_energy * comp.num_atoms, name="candidate")
    decomp, e_hull = pd_.get_decomp_and_e_above_hull(cand, allow_negative=True)
    return {
        "e_above_hull": float(e_hull),
        "decomposition": {e.name: round(float(f), 4) for e, f in decomp.items()},
        "hull_entries": len(entries),
    }


# ---------------------------------------------------------------- the whole assessment

@dataclass
class Stability:
    formula: str
    potential: str  # the potential's name (POTENTIALS)
    energy_per_atom: float  # the potential's eV/atom (relaxed if relaxed)
    formation_energy_per_atom: float | None
    e_above_hull: float | None
    decomposition: dict[str, float] | None
    relaxed: bool
    relax_steps: int
    relax_converged: bool | None
    relax_seconds: float
    volume_change: float | None
    charge_neutral: bool  # the compound rule's charge balance (ICSD-24 oxidation states)
    compound_valid: bool  # the whole compound rule (wbg_core.composition.validity)
    passes_paper_rule: bool  # E_f < 0 and the compound rule (charge neutral, electronegativity balanced)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        return d


def assess(structure, potential, *, do_relax: bool = True, fmax: float = DEFAULT_FMAX,
           steps: int = DEFAULT_STEPS) -> tuple[object, Stability]:
    """Relax (optionally) with `potential` (structures.potentials) and judge one structure;
    returns (final structure, Stability). An element the potential lacks raises
    UnsupportedElementError."""
    from ..composition import compound_verdict

    notes: list[str] = []
    comp = structure.composition.element_composition
    formula = format_formula(reduce({el.symbol: n for el, n in comp.items()}))
    if do_relax:
        rel = potential.relax(structure, fmax=fmax, steps=steps)
        final, e_atom = rel.structure, rel.energy_per_atom
        if not rel.converged:
            notes.append(f"relaxation stopped after {rel.steps} steps with max force {rel.max_force:.3f} eV/A "
                         f"(> fmax {fmax})")
        steps_done, conv, secs, dv = rel.steps, rel.converged, rel.seconds, rel.volume_change
    else:
        t0 = time.perf_counter()
        final, e_atom = structure, float(potential.energies(structure)[0])
        if not math.isfinite(e_atom):
            raise ValueError(f"{potential.label} cannot compute this structure's energy: an atom has no neighbour "
                             "within the cutoff")
        steps_done, conv, secs, dv = 0, None, time.perf_counter() - t0, None
        notes.append("not relaxed: energies are of the substituted template geometry")
    e_form = e_hull = decomp = None
    try:
        e_form = formation_energy_per_atom(final.composition, e_atom, element_references(potential.name))
    except (FileNotFoundError, FormulaError, ValueError) as exc:
        notes.append(f"no formation energy: {exc}")
    if e_form is not None:
        try:
            hull = energy_above_hull(formula, e_form)
            e_hull, decomp = hull["e_above_hull"], hull["decomposition"]
        except (FileNotFoundError, FormulaError, ValueError) as exc:
            notes.append(f"no energy above the hull: {exc}")
    verdict = compound_verdict(formula)
    neutral, valid = verdict.charge_neutral, verdict.valid
    if e_hull is not None and not neutral:
        notes.append(f"{formula} is not charge-balanced ({verdict.reason}): its energy above the hull "
                     "compares a composition no ionic crystal holds and means little")
    passes = bool(e_form is not None and e_form < 0 and valid)
    return final, Stability(
        formula=formula, potential=potential.name, energy_per_atom=float(e_atom), formation_energy_per_atom=e_form,
        e_above_hull=e_hull, decomposition=decomp, relaxed=do_relax, relax_steps=steps_done,
        relax_converged=conv, relax_seconds=round(secs, 3), volume_change=dv,
        charge_neutral=bool(neutral), compound_valid=bool(valid), passes_paper_rule=passes, warnings=notes,
    )
