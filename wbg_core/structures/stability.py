"""CHGNet relaxation and energies, formation energy, energy above the MP convex hull.

- CHGNet 0.3.0 (weights in its wheel, offline) relaxes cell and positions with FIRE, bounded
  by `steps` and `fmax`, and gives the total energy.
- Formation energy per atom: E_f = (E_CHGNet - sum_i n_i mu_i) / N. The bundled pool holds no
  elemental structures (MP's element entries were not bundled), so the references mu_i cannot
  be CHGNet energies of elemental ground states. They are *fitted elemental reference
  energies* instead (as in FERE, Stevanovic et al., PRB 85, 115104, 2012): least squares of
  E_CHGNet/N - E_f(MP) = sum_i x_i mu_i over pool compounds with a known MP formation energy.
  This puts CHGNet formation energies on MP's scale (MP's anion corrections included). The
  fit is computed once (`fit_element_references`, a few minutes on 1 thread) and stored in
  models/chgnet_element_refs.json with the material ids it used, which the validation
  benchmark keeps out of its test set.
- Energy above hull: pymatgen PhaseDiagram of the bundled MP formation energies of the
  chemical system (elements at 0), with the candidate at its CHGNet formation energy. The
  two energies come from different methods (DFT hull, CHGNet candidate): treat e_hull as a
  screen, not a verdict.
- The paper's rule: keep candidates with negative formation energy that are charge neutral
  and electronegativity balanced (SMACT).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..composition.parse import FormulaError, format_formula
from .templates import reduce

REFS_FILE = "chgnet_element_refs.json"
DEFAULT_FMAX = 0.1  # eV/A
DEFAULT_STEPS = 200


@lru_cache(maxsize=1)
def chgnet_model():
    """The pretrained CHGNet (0.1 s; weights ship in the wheel)."""
    from chgnet.model import CHGNet

    from ..settings import set_torch_threads

    set_torch_threads()
    with contextlib.redirect_stdout(io.StringIO()):
        return CHGNet.load(verbose=False)


def chgnet_energies(structures, batch_size: int = 16) -> np.ndarray:
    """Static CHGNet energies per atom (eV/atom) of one or several pymatgen Structures.

    A structure CHGNet refuses (an atom with no neighbour within 6 A) gets NaN.
    """
    single = not isinstance(structures, (list, tuple))
    items = [structures] if single else list(structures)
    if not items:
        return np.empty(0)
    model = chgnet_model()
    model.graph_converter.set_isolated_atom_response("error")  # StructOptimizer sets "warn"
    try:
        preds = model.predict_structure(items, task="e", batch_size=batch_size)
    except ValueError:
        if len(items) == 1:
            return np.array([np.nan])
        return np.concatenate([chgnet_energies([s], batch_size) for s in items])
    if isinstance(preds, dict):
        preds = [preds]
    return np.array([float(p["e"]) for p in preds])


@dataclass
class Relaxation:
    structure: object  # relaxed pymatgen Structure
    energy_per_atom: float  # CHGNet, eV/atom, of the relaxed structure
    initial_energy_per_atom: float
    steps: int
    converged: bool  # max force below fmax within the step budget
    max_force: float  # eV/A at the end
    volume_change: float  # relaxed / initial volume
    seconds: float


def relax(structure, *, fmax: float = DEFAULT_FMAX, steps: int = DEFAULT_STEPS,
          relax_cell: bool = True) -> Relaxation:
    """Relax cell and positions with CHGNet (FIRE), at most `steps` steps."""
    from chgnet.model import StructOptimizer

    if not structure.is_ordered:
        raise ValueError("CHGNet cannot relax a disordered structure (partial occupancies)")
    t0 = time.perf_counter()
    from threadpoolctl import threadpool_limits

    # One thread for OpenMP and BLAS during the relaxation: between CHGNet calls the cell filter
    # solves 3x3 systems with scipy while idle OpenMP workers spin-wait; on a busy 2-core machine
    # that made a 12-step relaxation of 4-atom GaN take 7-25 s instead of 0.5 s.
    import torch

    model = chgnet_model()
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")  # CHGNet's "tensor with requires_grad" notice
            opt = StructOptimizer(model=model, on_isolated_atoms="error")
            result = opt.relax(structure.copy(), fmax=fmax, steps=steps, relax_cell=relax_cell, verbose=False)
    except ValueError as exc:
        if "isolated" in str(exc):
            raise ValueError("CHGNet cannot relax this structure: an atom has no neighbour within 6 A") from exc
        raise
    finally:
        torch.set_num_threads(torch_threads)
    traj = result["trajectory"]
    final = result["final_structure"]
    n = len(final)
    forces = np.asarray(traj.forces[-1]) if len(traj.forces) else np.zeros((n, 3))
    max_force = float(np.linalg.norm(forces, axis=1).max()) if len(forces) else 0.0
    return Relaxation(
        structure=final,
        energy_per_atom=float(traj.energies[-1]) / n,
        initial_energy_per_atom=float(traj.energies[0]) / n,
        steps=max(len(traj.energies) - 1, 0),
        converged=max_force <= fmax,
        max_force=max_force,
        volume_change=float(final.volume / structure.volume),
        seconds=time.perf_counter() - t0,
    )


# ---------------------------------------------------------------- elemental references

def refs_path() -> Path:
    from ..settings import get_settings

    return Path(get_settings().models_dir) / REFS_FILE


@lru_cache(maxsize=1)
def element_references() -> dict:
    """The fitted CHGNet elemental references (models/chgnet_element_refs.json)."""
    path = refs_path()
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run `python -m wbg_core structure --fit-references` once to compute it"
        )
    try:
        refs = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is corrupt ({exc}): rerun `python -m wbg_core structure --fit-references`") from exc
    if not isinstance(refs, dict) or not refs:
        raise ValueError(f"{path} holds no element references: rerun `python -m wbg_core structure --fit-references`")
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


def fit_element_references(per_element: int = 40, max_atoms: int = 24, seed: int = 0,
                           write: bool = True, progress=None) -> dict:
    """Fit mu_i by least squares over pool compounds (see module doc); writes models/... json."""
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
        energies[start:start + batch] = chgnet_energies([pool.structure(i) for i in part])
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
        "method": "fitted elemental reference energies: least squares of CHGNet E/atom - MP E_form/atom "
                  "= sum_i x_i mu_i over pool compounds (the pool holds no elemental structures)",
        "model": "CHGNet 0.3.0 (static energies at the MP geometries)",
        "per_element": per_element, "max_atoms": max_atoms, "seed": seed,
        "n_compounds": int(len(rows)),
        "fit_mae_eV_per_atom": round(float(np.abs(resid).mean()), 4),
        "seconds": round(time.perf_counter() - t0, 1),
        "elements": per_el,
        "material_ids": [str(ix.material_ids[i]) for i in rows],
    }
    if write:
        path = refs_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1) + "\n")
        element_references.cache_clear()
    return out


def formation_energy_per_atom(composition, energy_per_atom: float, refs: dict | None = None) -> float:
    """E_f per atom from a CHGNet energy per atom and the fitted references."""
    refs = refs or element_references()
    if hasattr(composition, "element_composition"):  # a pymatgen Composition
        comp = {el.symbol: float(n) for el, n in composition.element_composition.items()}
    elif isinstance(composition, str):
        comp = reduce(composition)
    else:
        comp = dict(composition)
    total = float(sum(comp.values()))
    missing = [el for el in comp if el not in refs["elements"]]
    if missing:
        raise FormulaError(f"no CHGNet reference energy for {missing}: the pool has no compound of them")
    mu = sum(n / total * refs["elements"][el]["mu_eV_per_atom"] for el, n in comp.items())
    return float(energy_per_atom - mu)


# ---------------------------------------------------------------- convex hull

@lru_cache(maxsize=1)
def _hull_table():
    """Bundled MP formation energies: formulas, compositions and an element-membership matrix."""
    from ..composition.elements import VOCAB
    from ..data import load_bandgaps

    df = load_bandgaps()
    df = df[df["formation_energy_per_atom"].notna()]
    formulas = df["formula"].to_numpy(dtype=object)
    ef = df["formation_energy_per_atom"].to_numpy(dtype=np.float64)
    col = {el: k for k, el in enumerate(VOCAB)}
    member = np.zeros((len(df), len(VOCAB)), dtype=bool)
    comps = []
    for r, f in enumerate(formulas):
        comp = reduce(f)
        comps.append(comp)
        for el in comp:
            member[r, col[el]] = True
    return formulas, ef, comps, member, col


def mp_hull_entries(elements) -> list:
    """PDEntries (formation energies, elements at 0) of the MP compositions in a chemical system."""
    from pymatgen.analysis.phase_diagram import PDEntry
    from pymatgen.core import Composition

    formulas, ef, comps, member, col = _hull_table()
    elements = sorted(set(elements))
    unknown = [el for el in elements if el not in col]
    if unknown:
        raise FormulaError(f"{unknown} are outside the 87-element vocabulary")
    outside = np.ones(member.shape[1], dtype=bool)
    outside[[col[el] for el in elements]] = False
    rows = np.flatnonzero(~member[:, outside].any(axis=1))
    entries = [PDEntry(Composition({el: 1}), 0.0, name=el) for el in elements]
    for r in rows:
        comp = Composition(comps[r])
        entries.append(PDEntry(comp, float(ef[r]) * comp.num_atoms, name=str(formulas[r])))
    return entries


def energy_above_hull(formula, formation_energy: float) -> dict:
    """E above the MP hull (eV/atom) of a composition at `formation_energy` (eV/atom).

    Negative values mean the candidate would lie below MP's hull. Returns e_above_hull and
    the decomposition products (formulas and fractions).
    """
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    comp = Composition(reduce(formula) if isinstance(formula, str) else formula)
    entries = mp_hull_entries([el.symbol for el in comp.elements])
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
    energy_per_atom: float  # CHGNet eV/atom (relaxed if relaxed)
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


def assess(structure, *, do_relax: bool = True, fmax: float = DEFAULT_FMAX,
           steps: int = DEFAULT_STEPS) -> tuple[object, Stability]:
    """Relax (optionally) and judge one structure; returns (final structure, Stability)."""
    from ..composition import compound_verdict

    notes: list[str] = []
    comp = structure.composition.element_composition
    formula = format_formula(reduce({el.symbol: n for el, n in comp.items()}))
    if do_relax:
        rel = relax(structure, fmax=fmax, steps=steps)
        final, e_atom = rel.structure, rel.energy_per_atom
        if not rel.converged:
            notes.append(f"relaxation stopped after {rel.steps} steps with max force {rel.max_force:.3f} eV/A "
                         f"(> fmax {fmax})")
        steps_done, conv, secs, dv = rel.steps, rel.converged, rel.seconds, rel.volume_change
    else:
        t0 = time.perf_counter()
        final, e_atom = structure, float(chgnet_energies(structure)[0])
        steps_done, conv, secs, dv = 0, None, time.perf_counter() - t0, None
        notes.append("not relaxed: energies are of the substituted template geometry")
    e_form = e_hull = decomp = None
    try:
        e_form = formation_energy_per_atom(final.composition, e_atom)
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
        formula=formula, energy_per_atom=float(e_atom), formation_energy_per_atom=e_form,
        e_above_hull=e_hull, decomposition=decomp, relaxed=do_relax, relax_steps=steps_done,
        relax_converged=conv, relax_seconds=round(secs, 3), volume_change=dv,
        charge_neutral=bool(neutral), compound_valid=bool(valid), passes_paper_rule=passes, warnings=notes,
    )
