"""Formula -> candidate structures with provenance: templates, substitution, a potential, the oracle's gap.

`predict_structures` is what the CLI (`wbg structure`) and the web app call; `write_outputs`
writes a result to a folder: per candidate its CIF, simulated XRD peaks and DFT inputs, and
provenance.json.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..composition.parse import format_formula
from ..composition.validity import RULES
from .export import DEFAULT_SYMPREC
from .potentials import DEFAULT_FMAX, DEFAULT_STEPS
from .ranking import ORDERS, VOTE_DECAY, VOTE_NEIGHBOURS, prototype_groups, vote_order, vote_weights
from .stability import assess
from .substitute import substitute
from .templates import find_templates, reduce


@dataclass
class Candidate:
    structure: object  # pymatgen Structure (relaxed when asked)
    provenance: dict = field(default_factory=dict)


def oracle_gap(formula: str, oracle) -> tuple[float | None, float | None, str | None]:
    """(band_gap_mean, band_gap_std, warning) from the given band-gap model (None: no gap), whose
    own failures become a warning: a structure is worth showing without its gap."""
    if oracle is None:
        return None, None, "no band-gap model given: no predicted gap"
    try:
        df = oracle.predict([formula]).frame()
    except Exception as exc:  # the model's own errors (ModelError, DataError, ...)
        if type(exc).__name__.endswith("Error"):
            return None, None, f"band-gap oracle failed ({type(exc).__name__}: {exc})"
        raise
    row = df.iloc[0]
    if isinstance(row.get("error"), str) and row.get("error"):
        return None, None, f"oracle: {row['error']}"
    mean, std = float(row["band_gap_mean"]), float(row["band_gap_std"])
    return (mean if math.isfinite(mean) else None), (std if math.isfinite(std) else None), None


def predict_structures(formula: str, top_k: int = 3, *, potential=None, relax: bool = False,
                       order: str = "vote", rank_by_energy: bool = False, energy_tolerance: float | None = None,
                       fmax: float = DEFAULT_FMAX, steps: int = DEFAULT_STEPS,
                       exclude_formulas=(), max_per_formula: int | None = 1,
                       fallback: bool = True, oracle=None, progress=None) -> list[Candidate]:
    """Candidate structures for `formula`, best template first.

    order: "vote" puts first the structure type that the VOTE_NEIGHBOURS nearest templates share,
    weighted by EMD (structures.ranking), and takes the top_k in that order; "emd" the top_k
    nearest (the paper). Either way provenance["rank"] is the EMD rank, "vote_rank" and
    "vote_share" the vote's (over the same neighbours).
    For each of the top_k templates (by default one polymorph per template formula, the most
    stable, so the alternatives are different compositions): substitute, optionally relax with
    the potential, compute formation energy and energy above the MP hull, and collect provenance.
    potential: a structures.potentials.Potential; None leaves the energies out (fast: templates only).
    rank_by_energy: order the candidates by the potential's energy per atom (relaxed when `relax`),
    lowest first, instead of the template order; the energy rank goes in "energy_rank". Energies
    within `energy_tolerance` eV/atom of each other are a tie that the template order breaks
    (None: the potential's tolerance, structures.ranking). Only candidates of
    the requested composition are ranked (a fallback analogue has another composition, whose
    energy per atom compares nothing); they follow, by EMD.
    oracle: the band-gap model whose prediction goes in the provenance (the caller's choice, e.g.
    the checkpoint set the app uses); None leaves the gap out.
    progress: called as progress(done, total) after each template.
    Raises FormulaError for bad formulas and NoTemplateError when no template exists.
    """
    if (relax or rank_by_energy) and potential is None:
        raise ValueError("relaxing or ranking by energy needs a potential (structures.potentials.load_potential)")
    if order not in ORDERS:
        raise ValueError(f"unknown template order {order!r}; known: {', '.join(ORDERS)}")
    query = format_formula(reduce(formula))
    neighbours = max(top_k, VOTE_NEIGHBOURS)  # the vote is reported in either order
    templates = find_templates(query, neighbours, exclude_formulas=exclude_formulas,
                               max_per_formula=max_per_formula, fallback=fallback)
    subs, failed = [], None
    for emd_rank, t in enumerate(templates, 1):
        try:
            subs.append((emd_rank, t, substitute(t, query)))
        except ValueError as exc:  # e.g. a disordered template: it neither votes nor is shown
            failed = failed or exc
    if not subs:
        raise failed
    groups = prototype_groups([s.structure for _, _, s in subs])
    emds = [t.emd for _, t, _ in subs]
    share = vote_weights(emds, groups, VOTE_DECAY)
    voted = vote_order(emds, groups, VOTE_DECAY)
    vote_rank = {i: k for k, i in enumerate(voted, 1)}
    chosen = (voted if order == "vote" else range(len(subs)))[:top_k]
    gap_mean = gap_std = None
    gap_note = None
    if oracle is not None:
        gap_mean, gap_std, gap_note = oracle_gap(query, oracle)
    out = []
    for done, i in enumerate(chosen, 1):
        rank, t, sub = subs[i]
        notes = list(sub.warnings)
        final, stab = sub.structure, {}
        if potential is None:
            notes.append("energies not computed (no potential was chosen): the structure is the template's "
                         "geometry in a scaled cell")
        else:
            try:
                final, st = assess(sub.structure, potential, do_relax=relax, fmax=fmax, steps=steps)
                notes += st.warnings
                stab = st.to_dict()
            except ValueError as exc:  # the potential refuses the structure (isolated atoms, an element, ...)
                notes.append(f"no {potential.label} energy: {exc}")
        if gap_note:
            notes.append(gap_note)
        sg_symbol = sg_number = None
        try:
            from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

            sga = SpacegroupAnalyzer(final, symprec=0.1)
            sg_symbol, sg_number = sga.get_space_group_symbol(), sga.get_space_group_number()
        except Exception:
            notes.append("no space group found at symprec 0.1")
        prov = {
            "name": f"{sub.result_formula}_{rank}_{t.material_id}",
            "formula": sub.result_formula,
            "requested_formula": query,
            "rank": rank,  # by EMD
            "order": order,
            "vote_rank": vote_rank[i],
            "vote_share": round(share[i], 4),
            "prototype_of": subs[groups[i]][0],  # the EMD rank of the nearest template of its structure type
            "vote_neighbours": len(subs),
            "energy_rank": None,
            "energy_above_lowest": None,
            "energy_tolerance": None,
            "same_structure_as": None,
            "template_id": t.material_id,
            "template_formula": t.formula,
            "template_spacegroup": t.spacegroup,
            "emd": round(t.emd, 6),
            "exact_stoichiometry": sub.exact,
            "substitution": sub.mapping,
            "volume_scale_guess": round(sub.volume_scale, 4),
            "spacegroup": sg_number,
            "spacegroup_symbol": sg_symbol,
            "n_sites": len(final),
            "band_gap_mean": gap_mean if sub.exact else None,
            "band_gap_std": gap_std if sub.exact else None,
            "potential": potential.name if potential is not None else None,
            "potential_label": potential.label if potential is not None else None,
            "energy_per_atom": stab.get("energy_per_atom"),
            "formation_energy_per_atom": stab.get("formation_energy_per_atom"),
            "e_above_hull": stab.get("e_above_hull"),
            "decomposition": stab.get("decomposition"),
            "relaxed": relax,
            "relax_steps": stab.get("relax_steps"),
            "relax_converged": stab.get("relax_converged"),
            "relax_seconds": stab.get("relax_seconds"),
            "charge_neutral": sub.charge_neutral,
            "compound_valid": sub.compound_valid,
            "validity_rule": RULES["compound"],
            "validity_reason": sub.validity_reason or None,
            "passes_paper_rule": stab.get("passes_paper_rule", False),
            "paper_rule": "formation energy < 0 and the compound rule",
            "warnings": notes,
        }
        out.append(Candidate(structure=final, provenance=prov))
        if progress:
            progress(done, len(chosen))
    if not rank_by_energy:
        return out
    if energy_tolerance is None:
        from .ranking import energy_tolerance as tolerance_of

        energy_tolerance = tolerance_of(potential.name)
    return rank_candidates(out, query, energy_tolerance)


def prior_rank(c: Candidate) -> int:
    """A candidate's place before any energy: its vote rank when the templates were voted, else its EMD rank."""
    p = c.provenance
    return p["vote_rank"] if p.get("order") == "vote" and p.get("vote_rank") is not None else p["rank"]


def rank_candidates(candidates: list[Candidate], formula: str, tolerance: float = 0.0) -> list[Candidate]:
    """The candidates of `formula`'s composition ranked by energy per atom within `tolerance`
    (structures.ranking.energy_order: energies closer than that are a tie, which the template
    order, prior_rank, breaks); the others (other compositions, or no energy) after them in that
    order. Sets
    energy_rank, energy_above_lowest (eV/atom), energy_tolerance and same_structure_as: the
    energy rank of a better-ranked candidate that is the same structure (pymatgen
    StructureMatcher, default tolerances), since several templates often relax into one structure."""
    from .ranking import energy_order

    target = format_formula(reduce(formula))
    candidates = sorted(candidates, key=prior_rank)  # the template order, whatever order they came in

    def energy(c):
        e = c.provenance.get("energy_per_atom")
        same = c.provenance.get("formula") == target
        return e if same and e is not None and math.isfinite(e) else None

    energies = [energy(c) for c in candidates]
    ranked = [candidates[i] for i in energy_order(energies, tolerance) if energies[i] is not None]
    rest = [c for c, e in zip(candidates, energies) if e is None]
    if ranked:
        from pymatgen.analysis.structure_matcher import StructureMatcher

        matcher = StructureMatcher()
        lowest = min(e for e in energies if e is not None)
        for k, c in enumerate(ranked, 1):
            c.provenance["energy_rank"] = k
            c.provenance["energy_tolerance"] = tolerance
            c.provenance["energy_above_lowest"] = round(energy(c) - lowest, 6)
            c.provenance["same_structure_as"] = next(
                (j for j, other in enumerate(ranked[:k - 1], 1)
                 if other.provenance.get("same_structure_as") is None and matcher.fit(c.structure, other.structure)),
                None)
    for c in rest:  # once, however often the candidates are re-ranked (the page re-ranks on a new tolerance)
        note = "not ranked by energy: " + (
            "no energy" if c.provenance.get("formula") == target else f"another composition than {target}")
        if note not in c.provenance["warnings"]:
            c.provenance["warnings"].append(note)
    return ranked + rest


def write_outputs(candidates: list[Candidate], output: str | Path, zip_name: str | None = None, *,
                  symprec: float | None = DEFAULT_SYMPREC, wavelength: str = "CuKa",
                  kpoint_density: float = 1000.0) -> dict:
    """Write each candidate's bundle into `output`, provenance.json, and optionally a zip of it all.

    A bundle is <name>.cif (symmetrised at `symprec`), <name>/xrd_<source>.csv and <name>/dft/
    (VASP and Quantum ESPRESSO inputs with a README). Returns output, files (the CIFs first, in
    candidate order, then the folders, provenance.json and the zip) and bundles (index rows,
    with a note where XRD or DFT inputs were refused).
    """
    from .export import bundle_stem, safe_filename, write_bundle, zip_bundles

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    rows, records = [], []
    for c in candidates:
        stem = bundle_stem(c.provenance, c.structure, used)
        row = write_bundle(c.structure, c.provenance, out, stem, symprec=symprec, wavelength=wavelength,
                           kpoint_density=kpoint_density)
        rows.append(row)
        sym = {k: row[k] for k in ("spacegroup", "spacegroup_symbol") if k in row}  # as the CIF says
        records.append({"file": row["file"], "folder": row["folder"], "xrd": row["xrd"], "dft": row["dft"],
                        "bundle_notes": row["notes"], **c.provenance, **sym, "symprec": symprec})
    (out / "provenance.json").write_text(json.dumps(records, indent=2, default=str) + "\n")
    files = [r["file"] for r in rows] + [r["folder"] for r in rows] + ["provenance.json"]
    result = {"output": str(out), "files": files, "bundles": rows}
    if zip_name:
        zpath = out / safe_filename(zip_name, suffix=".zip")
        zpath.write_bytes(zip_bundles(out, rows))
        result["files"].append(zpath.name)
    return result
