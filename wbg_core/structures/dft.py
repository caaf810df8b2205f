"""DFT input decks for a candidate structure: VASP (pymatgen's MPRelaxSet) and Quantum ESPRESSO (ASE).

A candidate is a hypothesis to check with DFT; these folders make that check one command away.
VASP: MPRelaxSet's INCAR, KPOINTS and POSCAR, and POTCAR.spec naming MP's POTCARs (POTCAR files
are licensed with VASP and never shipped). Quantum ESPRESSO: a pw.x vc-relax input written by ASE
with SSSP 1.3.0 PBE efficiency pseudopotential names and cutoffs (the largest over the elements).
Both use the same k-point grid, pymatgen's Kpoints.automatic_density at the density asked for.
Everything is checked before the first file is written, and the files are moved into place
only once all of them were written.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Mapping

MIN_DISTANCE = 0.5  # A: closer than this two atoms overlap (shortest real bonds, H-H, are ~0.74 A)
DEFAULT_KPOINT_DENSITY = 1000.0  # k-points per reciprocal atom, as Kpoints.automatic_density
MAX_KPOINT_DENSITY = 1.0e6
SSSP_LABEL = "SSSP 1.3.0 PBE efficiency"
SSSP_PATH = Path(__file__).with_name("data") / "sssp_efficiency.json"
FILES = ("INCAR", "KPOINTS", "POSCAR", "POTCAR.spec", "pw.in", "README.md")


class DFTInputError(ValueError):
    """A structure that cannot get DFT inputs (overlapping atoms, an element without pseudopotential...)."""


@lru_cache(maxsize=1)
def sssp_table() -> dict[str, dict]:
    """The shipped SSSP table: element -> filename, md5, pseudopotential (library), cutoff_wfc, cutoff_rho (Ry)."""
    return json.loads(SSSP_PATH.read_text())


def check_structure(structure, min_distance: float = MIN_DISTANCE) -> None:
    """Refuse what no DFT code should get: not a Structure, empty, disordered, or atoms closer than min_distance."""
    import numpy as np
    from pymatgen.core import IStructure

    if not isinstance(structure, IStructure):  # Structure is an IStructure
        raise DFTInputError(f"DFT inputs need a pymatgen Structure, not {type(structure).__name__}")
    if len(structure) == 0:
        raise DFTInputError("the structure has no atoms")
    name = structure.composition.reduced_formula
    if not structure.is_ordered:
        raise DFTInputError(f"{name} has partially occupied sites; DFT inputs need an ordered structure "
                            "(order it first, e.g. in a supercell)")
    if not (structure.volume > 0 and math.isfinite(structure.volume)):
        raise DFTInputError(f"{name}: the cell volume is {structure.volume}")
    iu = np.triu_indices(len(structure), 1)
    dists = structure.distance_matrix[iu]  # minimum-image distances; coincident atoms give 0
    if dists.size and dists.min() < min_distance:
        k = int(np.argmin(dists))
        i, j = int(iu[0][k]), int(iu[1][k])
        raise DFTInputError(
            f"{name}: atoms {i} ({structure[i].species_string}) and {j} ({structure[j].species_string}) are "
            f"{dists[k]:.3f} A apart, closer than {min_distance} A: overlapping atoms, no DFT inputs written")
    centres, points, _, dists = structure.get_neighbor_list(min_distance)
    for c, p, d in zip(centres, points, dists):
        if c == p:  # an atom and its own periodic image: a cell edge shorter than min_distance
            raise DFTInputError(f"{name}: atom {c} ({structure[int(c)].species_string}) is {d:.3f} A from its own "
                                f"periodic image, closer than {min_distance} A: the cell is too small")


def check_density(kpoint_density) -> float:
    try:
        v = float(kpoint_density)
    except (TypeError, ValueError):
        raise DFTInputError(f"the k-point density must be a number, not {kpoint_density!r}") from None
    if not math.isfinite(v) or not 0 < v <= MAX_KPOINT_DENSITY:
        raise DFTInputError(f"the k-point density must be in (0, {MAX_KPOINT_DENSITY:g}] k-points per reciprocal "
                            f"atom, not {kpoint_density}")
    return v


def pseudopotentials(elements) -> dict[str, dict]:
    """SSSP entries of the elements; DFTInputError naming any element the table lacks."""
    table = sssp_table()
    missing = [el for el in elements if el not in table]
    if missing:
        raise DFTInputError(f"no {SSSP_LABEL} pseudopotential for {', '.join(missing)} (the table has "
                            f"{len(table)} elements, H to Lr): no Quantum ESPRESSO input possible")
    return {el: table[el] for el in elements}


def _check_potcars(elements) -> None:
    from pymatgen.io.vasp.sets import MPRelaxSet

    missing = [el for el in elements if el not in MPRelaxSet.CONFIG["POTCAR"]]
    if missing:
        raise DFTInputError(f"pymatgen's MPRelaxSet has no POTCAR choice for {', '.join(missing)}: "
                            "no VASP input possible")


def kpoints_for(structure, kpoint_density: float):
    """pymatgen's automatic_density grid: Gamma-centred, or Monkhorst-Pack when every division is even."""
    from pymatgen.io.vasp import Kpoints

    return Kpoints.automatic_density(structure, check_density(kpoint_density))


def qe_offsets(kpoints) -> tuple[int, int, int]:
    """pw.x offsets for the same k-points as a VASP grid: a Monkhorst-Pack grid with an even division
    misses Gamma, which in pw.x is a half-step shift (offset 1)."""
    mp = str(kpoints.style).lower().endswith("monkhorst")
    return tuple(int(mp and n % 2 == 0) for n in kpoints.kpts[0])


def qe_input_data(structure, pseudos: Mapping[str, dict]) -> dict:
    """pw.x namelists: vc-relax like MPRelaxSet's ISIF 3, SSSP cutoffs (the largest of the elements)."""
    prefix = "".join(ch for ch in structure.composition.reduced_formula if ch.isalnum()) or "candidate"
    return {
        "control": {"calculation": "vc-relax", "prefix": prefix, "pseudo_dir": "./pseudo", "outdir": "./out",
                    "tprnfor": True, "tstress": True, "forc_conv_thr": 1.0e-3, "etot_conv_thr": 1.0e-5},
        "system": {"ecutwfc": max(p["cutoff_wfc"] for p in pseudos.values()),
                   "ecutrho": max(p["cutoff_rho"] for p in pseudos.values()),
                   "occupations": "smearing", "smearing": "gaussian", "degauss": 0.005},
        "electrons": {"conv_thr": 1.0e-8, "mixing_beta": 0.4},
        "ions": {"ion_dynamics": "bfgs"},
        "cell": {"cell_dynamics": "bfgs", "press_conv_thr": 0.5},
    }


def write_dft_inputs(structure, folder: str | Path, *, provenance: Mapping | None = None,
                     kpoint_density: float = DEFAULT_KPOINT_DENSITY) -> dict[str, Path]:
    """Write folder/vasp/{INCAR,KPOINTS,POSCAR,POTCAR.spec}, folder/qe/pw.in and folder/README.md.

    Returns file name -> path (keys as in FILES). Raises DFTInputError, before anything is written,
    for overlapping atoms (closer than MIN_DISTANCE), disorder, a bad density, or an element without
    an SSSP pseudopotential or an MP POTCAR choice.
    """
    import ase.io
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.vasp.sets import MPRelaxSet

    check_structure(structure)
    elements = [el.symbol for el in structure.composition.elements]
    kpoints = kpoints_for(structure, kpoint_density)
    pseudos = pseudopotentials(elements)
    _check_potcars(elements)
    try:
        vis = MPRelaxSet(structure, user_kpoints_settings=kpoints)
        potcar_symbols = list(vis.potcar_symbols)
        incar = vis.incar
    except Exception as exc:  # noqa: BLE001 - pymatgen's own refusal, worded for the user
        raise DFTInputError(f"MPRelaxSet refused {structure.composition.reduced_formula}: {exc}") from exc
    sorted_structure = vis.structure  # sites sorted by electronegativity; pw.in gets the same order

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".dft-", dir=folder))
    try:
        vis.write_input(str(tmp / "vasp"), potcar_spec=True)
        (tmp / "qe").mkdir()
        atoms = AseAtomsAdaptor.get_atoms(sorted_structure)
        ase.io.write(tmp / "qe" / "pw.in", atoms, format="espresso-in",
                     input_data=qe_input_data(structure, pseudos),
                     pseudopotentials={el: p["filename"] for el, p in pseudos.items()},
                     kpts=tuple(int(n) for n in kpoints.kpts[0]), koffset=qe_offsets(kpoints))
        (tmp / "README.md").write_text(dft_readme(sorted_structure, provenance, kpoints=kpoints, incar=incar,
                                                  potcar_symbols=potcar_symbols, pseudos=pseudos,
                                                  qe_data=qe_input_data(structure, pseudos),
                                                  kpoint_density=check_density(kpoint_density)))
        rel = {"INCAR": "vasp/INCAR", "KPOINTS": "vasp/KPOINTS", "POSCAR": "vasp/POSCAR",
               "POTCAR.spec": "vasp/POTCAR.spec", "pw.in": "qe/pw.in", "README.md": "README.md"}
        out = {}
        for name, r in rel.items():
            dest = folder / r
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / r, dest)
            out[name] = dest
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- the folder's README

def _num(v, fmt: str = ".3f") -> str | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def _made_lines(p: Mapping) -> list[str]:
    """How the structure was made, from whatever provenance the candidate carries."""
    lines = []
    if p.get("requested_formula"):
        lines.append(f"Requested formula: {p['requested_formula']}")
    if p.get("template_id"):
        t = f"Template: {p['template_id']}"
        sg = p.get("template_spacegroup")
        extra = ", ".join(x for x in (p.get("template_formula"), sg and f"space group {sg}") if x)
        t += f" ({extra})" if extra else ""
        if p.get("emd") is not None:
            t += f", Element Mover's Distance {_num(p['emd'], '.4f')}" + (
                f" (EMD rank {p['rank']})" if p.get("rank") is not None else "")
        if p.get("exact_stoichiometry") is False:
            t += "; a fallback analogue: the template's stoichiometry differs from the request"
        lines.append(t)
    if p.get("vote_share") is not None:
        chosen = "chose it" if p.get("order") == "vote" else "was reported; the nearest EMD chose it"
        lines.append(f"Template order: a prototype vote of the {p.get('vote_neighbours')} nearest templates "
                     f"(EMD-weighted, structure types by StructureMatcher) {chosen}: this structure type holds "
                     f"{p['vote_share']:.0%} of the vote, vote rank {p.get('vote_rank')}")
    if isinstance(p.get("substitution"), Mapping) and p["substitution"]:
        lines.append("Substitution: " + ", ".join(f"{a} -> {b}" for a, b in p["substitution"].items()))
    if p.get("volume_scale_guess") is not None:
        lines.append(f"Cell volume guess: template volume x {p['volume_scale_guess']} (ionic radii)")
    if p.get("relaxed"):
        steps, conv, secs = p.get("relax_steps"), p.get("relax_converged"), p.get("relax_seconds")
        bits = [f"{steps} steps" if steps is not None else None,
                None if conv is None else ("converged" if conv else "NOT converged"),
                f"{_num(secs, '.1f')} s" if secs is not None else None]
        pot = p.get("potential_label") or "CHGNet 0.3.0"
        lines.append(f"Relaxation: {pot} (ASE FIRE, cell and positions): " + ", ".join(b for b in bits if b))
    elif "relaxed" in p:
        lines.append("Relaxation: none (the template's geometry in the scaled cell); DFT relaxes it from here")
    energies = [(k, label) for k, label in (("energy_per_atom", "energy"), ("formation_energy_per_atom", "formation energy"),
                                            ("e_above_hull", "energy above the MP hull")) if p.get(k) is not None]
    if energies:
        lines.append(f"Energies ({p.get('potential_label') or 'CHGNet 0.3.0'} potential, eV/atom): "
                     + "; ".join(f"{label} {_num(p[k])}" for k, label in energies))
    if p.get("energy_rank") is not None:
        lines.append(f"Energy ranking: {p['energy_rank']} of the relaxed templates by energy per atom "
                     f"({_num(p.get('energy_above_lowest'))} eV/atom above the lowest"
                     + (f"; energies within {p['energy_tolerance']:g} eV/atom count as a tie, broken by the template order"
                        if p.get("energy_tolerance") else "") + f"); EMD rank {p.get('rank')}"
                     + (f"; relaxes into the same structure as energy rank {p['same_structure_as']}"
                        if p.get("same_structure_as") else ""))
    if isinstance(p.get("decomposition"), Mapping) and p["decomposition"]:
        lines.append("Hull decomposition: " + ", ".join(f"{k} {v}" for k, v in p["decomposition"].items()))
    if p.get("band_gap_mean") is not None:
        std = f" +/- {_num(p['band_gap_std'], '.2f')}" if p.get("band_gap_std") is not None else ""
        lines.append(f"Band gap (the project's oracle, a prediction): {_num(p['band_gap_mean'], '.2f')}{std} eV")
    if "compound_valid" in p:
        lines.append("Compound rule: " + ("passes" if p["compound_valid"] else
                                          f"fails ({p.get('validity_reason') or 'see the rule'})"))
    for w in p.get("warnings") or []:
        lines.append(f"Warning: {w}")
    return lines


def dft_readme(structure, provenance: Mapping | None, *, kpoints, incar, potcar_symbols, pseudos, qe_data,
               kpoint_density: float) -> str:
    """README.md of a DFT folder: how the structure was made, what each file is, what is not shipped."""
    import ase
    import pymatgen.core

    p = dict(provenance or {})
    formula = p.get("formula") or structure.composition.reduced_formula
    grid = " x ".join(str(n) for n in kpoints.kpts[0])
    style = "Monkhorst-Pack" if str(kpoints.style).lower().endswith("monkhorst") else "Gamma-centred"
    ldau = " with MP's GGA+U for this chemistry" if incar.get("LDAU") else ""
    made = _made_lines(p) or ["No provenance was given with this structure."]
    sys_ = qe_data["system"]
    pp_rows = "\n".join(f"| {el} | {d['filename']} | {d['pseudopotential']} | {d['cutoff_wfc']:g} | "
                         f"{d['cutoff_rho']:g} | {d['md5']} |" for el, d in pseudos.items())
    prov_json = json.dumps(p, indent=2, default=str, sort_keys=True)
    return f"""# DFT inputs for {formula}

Written by the wide band-gap discovery studio (`wbg_core.structures.dft`) with pymatgen
{pymatgen.core.__version__} and ASE {ase.__version__}. The structure ({len(structure)} atoms in the
cell) is a hypothesis from a template and a machine-learned potential; these inputs let DFT
relax it and judge it.

## How the structure was made

{chr(10).join("- " + line for line in made)}

## Files

| file | what it is |
|---|---|
| `vasp/INCAR` | pymatgen's MPRelaxSet (Materials Project relaxation settings): PBE, ENCUT {incar.get('ENCUT')} eV, ISIF {incar.get('ISIF')}, ISPIN {incar.get('ISPIN')}{ldau} |
| `vasp/KPOINTS` | {style} grid {grid}, from {kpoint_density:g} k-points per reciprocal atom (pymatgen `Kpoints.automatic_density`) |
| `vasp/POSCAR` | the structure, sites sorted as MPRelaxSet sorts them |
| `vasp/POTCAR.spec` | the POTCARs MP uses, one per line: {', '.join(potcar_symbols)} ({pymatgen_functional()}) |
| `qe/pw.in` | Quantum ESPRESSO pw.x `vc-relax` written by ASE: same cell, atoms and k-point grid; {SSSP_LABEL} pseudopotentials; ecutwfc {sys_['ecutwfc']:g} Ry and ecutrho {sys_['ecutrho']:g} Ry (the largest of the elements' SSSP cutoffs); spin-unpolarised, Gaussian smearing {sys_['degauss']} Ry |
| `README.md` | this file |

## Not included: POTCAR files (licence)

VASP's POTCAR files are licensed with VASP and may not be redistributed, so no POTCAR is in this
folder. With your own licensed PBE PAW set, build it from `POTCAR.spec`, e.g.
`pmg config --add PMG_VASP_PSP_DIR /path/to/potcars` and then
`Potcar(open("POTCAR.spec").read().split(), functional="{pymatgen_functional()}").write_file("POTCAR")`
in Python (pymatgen), or concatenate the named POTCARs in the order listed.

## Pseudopotentials for pw.x

`pw.in` expects these files in `qe/pseudo/` (`pseudo_dir = './pseudo'`); get them from the
{SSSP_LABEL} set (https://www.materialscloud.org/discover/sssp/table/efficiency; Prandini et al.,
npj Comput. Mater. 4, 72 (2018)) and check the md5 sums:

| element | file | library | cutoff_wfc (Ry) | cutoff_rho (Ry) | md5 |
|---|---|---|---|---|---|
{pp_rows}

The VASP input is spin-polarised as MP's (ISPIN 2); `pw.in` is not: for a magnetic candidate add
`nspin = 2` and `starting_magnetization`. Converge the cutoffs and k-points for production work.

## All provenance

```json
{prov_json}
```
"""


def pymatgen_functional() -> str:
    from pymatgen.io.vasp.sets import MPRelaxSet

    return MPRelaxSet.CONFIG.get("POTCAR_FUNCTIONAL", "PBE")
