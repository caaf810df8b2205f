"""`wbg structure FORMULA`: candidate crystal structures for a formula: CIF, simulated XRD, DFT inputs, provenance."""
from __future__ import annotations

import argparse
import sys

from ..cli import float_in, int_in, output_dir
from ..structures.dft import DEFAULT_KPOINT_DENSITY, MAX_KPOINT_DENSITY
from ..structures.export import DEFAULT_SYMPREC
from ..structures.potentials import POTENTIALS
from ..structures.ranking import ORDERS, VOTE_NEIGHBOURS

# pymatgen's X-ray sources (pymatgen.analysis.diffraction.xrd.WAVELENGTHS), read lazily would cost the
# whole CLI pymatgen's import; the xrd module checks this list against pymatgen's (tested)
WAVELENGTHS = ("CuKa", "CuKa2", "CuKa1", "CuKb1", "MoKa", "MoKa2", "MoKa1", "MoKb1", "CrKa", "CrKa2", "CrKa1",
               "CrKb1", "FeKa", "FeKa2", "FeKa1", "FeKb1", "CoKa", "CoKa2", "CoKa1", "CoKb1", "AgKa", "AgKa2",
               "AgKa1", "AgKb1")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "structure",
        help="predict crystal structures for a formula: EMD template, substitution, CHGNet or SevenNet; "
             "writes CIFs, XRD peaks, DFT inputs",
        description="Template (smallest Element Mover's Distance among MP structures with the same "
                    "coefficient multiset), element substitution, optional relaxation with an interatomic "
                    "potential (--potential), optionally of the top N templates ranked by energy (--rank N), "
                    "formation energy and energy above the MP hull. Writes per candidate NAME.cif (symmetrised at "
                    "--symprec), NAME/xrd_SOURCE.csv (simulated powder XRD peaks) and NAME/dft/ (VASP "
                    "MPRelaxSet and Quantum ESPRESSO inputs with a README), and provenance.json.",
    )
    p.add_argument("formula", nargs="?", metavar="FORMULA", help="e.g. SrYF5")
    p.add_argument("--top-k", type=int_in(1, 50), default=3, help="number of alternative templates (default 3)")
    p.add_argument("--order", choices=list(ORDERS), default="vote",
                   help=f"template order before any energy: vote (default; the structure type the {VOTE_NEIGHBOURS} "
                        "nearest templates share, weighted by EMD) or emd (the nearest template first, the paper's "
                        "rule)")
    p.add_argument("--relax", action="store_true", help="relax cell and positions with the potential")
    p.add_argument("--rank", type=int_in(2, 50), nargs="?", const=10, default=None, metavar="N",
                   help="relax the first N templates (default 10) and order them by energy per atom, lowest "
                        "first; the EMD and vote ranks stay in the provenance (replaces --top-k, implies --relax)")
    p.add_argument("--energy-tolerance", type=float_in(0.0, 1.0, note=" eV/atom"), default=None, metavar="EV",
                   help="with --rank: energies per atom closer than this are a tie, which the template order "
                        "(--order) breaks "
                        "(0: energy alone; default: the potential's, chosen on a tuning set, "
                        "wbg_core/structures/ranking.py)")
    p.add_argument("--potential", choices=list(POTENTIALS), default=None,
                   help="interatomic potential for energies and relaxations (default: the setting "
                        "WBG_POTENTIAL, chgnet)")
    p.add_argument("--steps", type=int_in(1, 5000), default=200, help="maximum relaxation steps (default 200)")
    p.add_argument("--fmax", type=float_in(0.0, 10.0, lo_open=True, note=" eV/A"), default=0.1,
                   help="force threshold in eV/A (default 0.1)")
    p.add_argument("--polymorphs", action="store_true",
                   help="allow several polymorphs of one template formula among the top k")
    p.add_argument("--no-fallback", action="store_true",
                   help="fail when no template has the formula's coefficient multiset")
    p.add_argument("--symprec", type=float_in(0.0, 1.0, lo_open=True, note=" A"), default=DEFAULT_SYMPREC,
                   help=f"spglib symmetry tolerance in A for the CIF, the space group and the XRD hkl "
                        f"(default {DEFAULT_SYMPREC})")
    p.add_argument("--wavelength", choices=list(WAVELENGTHS), default="CuKa", metavar="SOURCE",
                   help="X-ray source of the simulated pattern, one of pymatgen's: "
                        f"{', '.join(WAVELENGTHS)} (default CuKa)")
    p.add_argument("--kpoint-density", type=float_in(0.0, MAX_KPOINT_DENSITY, lo_open=True,
                                                     note=" k-points per reciprocal atom"),
                   default=DEFAULT_KPOINT_DENSITY,
                   help="k-points per reciprocal atom for the DFT inputs (pymatgen's Kpoints.automatic_density; "
                        f"default {DEFAULT_KPOINT_DENSITY:g})")
    p.add_argument("--zip", action="store_true", help="also write structures.zip (all of it, with index.csv)")
    p.add_argument("--output", "-o", type=output_dir, help="output folder (created if missing, inside an existing one)")
    p.add_argument("--json", action="store_true", help="print the provenance as JSON")
    p.add_argument("--fit-references", action="store_true",
                   help="(maintainers) refit models/<potential>_element_refs.json and exit")
    p.add_argument("--estimate-hull-energies", action="store_true",
                   help="(maintainers) estimate with the potential the formation energies of the bundled MP "
                        "compounds that have a pool structure but no MP energy, score the procedure on priced "
                        "ones, write and register data/ml_formation_energies.csv, and exit")
    p.set_defaults(handler=_structure)


def _structure(args) -> int:
    from ..cli import UserError, print_json

    if args.fit_references:
        from ..structures.stability import fit_element_references

        r = fit_element_references(_potential(args), progress=lambda d, t: print(
            f"\r{d}/{t} compounds", end="", file=sys.stderr, flush=True))
        print(file=sys.stderr)
        print(f"fitted references for {len(r['elements'])} elements from {r['n_compounds']} compounds; "
              f"fit MAE {r['fit_mae_eV_per_atom']} eV/atom")
        return 0
    if args.estimate_hull_energies:
        from ..structures.estimated_phases import build

        r = build(_potential(args), progress=lambda what, d, t: print(
            f"\r{what}: {d}/{t} structures", end="", file=sys.stderr, flush=True))
        print(file=sys.stderr)
        print(f"estimated {r['estimated']:,} of {r['formulas']:,} formulas without an MP formation energy in "
              f"{r['seconds']:.0f} s; on {r['control_formulas']} priced control formulas: MAE "
              f"{r['mae_eV_per_atom']} eV/atom, mean error {r['mean_error_eV_per_atom']:+} eV/atom")
        return 0
    if not args.formula:
        raise UserError("give a formula, e.g. `wbg structure SrYF5 --output out/`")
    if not args.output:
        raise UserError("--output DIR is required (where the CIF files go)")
    out = args.output  # checked by cli.output_dir: a folder, or one that can be made in an existing one
    try:
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {out}: {exc.strerror or exc}") from exc

    from ..structures.pipeline import predict_structures, write_outputs

    try:
        candidates = predict_structures(
            args.formula, args.rank or args.top_k, potential=_potential(args), relax=args.relax or bool(args.rank),
            order=args.order, rank_by_energy=bool(args.rank), energy_tolerance=args.energy_tolerance,
            fmax=args.fmax, steps=args.steps,
            max_per_formula=None if args.polymorphs else 1, fallback=not args.no_fallback,
            oracle=_oracle_or_none(),
        )
    except ValueError as exc:  # FormulaError / NoTemplateError are ValueErrors with user messages
        from ..composition.parse import FormulaError

        if isinstance(exc, FormulaError):
            raise
        raise UserError(str(exc)) from exc
    try:
        written = write_outputs(candidates, out, zip_name="structures" if args.zip else None, symprec=args.symprec,
                                wavelength=args.wavelength, kpoint_density=args.kpoint_density)
    except OSError as exc:
        raise UserError(f"cannot write to {out}: {exc.strerror or exc}") from exc
    records = [c.provenance for c in candidates]
    if args.json:
        print_json({"output": written["output"], "files": written["files"], "bundles": written["bundles"],
                    "candidates": records})
        return 0
    for c, row in zip(candidates, written["bundles"]):
        p, name = c.provenance, row["file"]
        ef = p["formation_energy_per_atom"]
        eh = p["e_above_hull"]
        gap = p["band_gap_mean"]
        sg = row.get("spacegroup_symbol") or "P1 (no symmetry found)"
        if p.get("energy_rank") is not None:
            print(f"energy rank {p['energy_rank']} (+{p['energy_above_lowest']:.3f} eV/atom; ties within "
                  f"{p['energy_tolerance']:g} go to the {p['order']} order), {_ranks(p)}:")
        else:
            print(f"{_ranks(p)}:")
        print(f"{name}: {p['formula']} from {p['template_id']} ({p['template_formula']}, EMD {p['emd']:.3f}), "
              f"{sg} at symprec {args.symprec:g}; E_f {'%.3f' % ef if ef is not None else '-'} eV/atom, "
              f"E_hull {'%.3f' % eh if eh is not None else '-'} eV/atom, "
              f"gap {'%.2f' % gap if gap is not None else '-'} eV; "
              f"paper rule {'pass' if p['passes_paper_rule'] else 'fail'}")
        for w in p["warnings"]:
            print(f"  warning: {w}")
        parts = [row["xrd"] and row["xrd"].split("/", 1)[1], row["dft"] and "dft/ (VASP, Quantum ESPRESSO, README)"]
        print(f"  {row['folder']}/: " + (", ".join(x for x in parts if x) or "nothing"))
        if row["notes"]:
            print(f"  note: {row['notes']}")
    print(f"wrote {len(written['files'])} files and folders to {written['output']}")
    return 0


def _ranks(p: dict) -> str:
    """Where a candidate stands before any energy, e.g. "vote rank 1 (its structure type has 62% of the vote
    of the 10 nearest), EMD rank 3"."""
    return (f"vote rank {p['vote_rank']} (its structure type has {p['vote_share']:.0%} of the vote of the "
            f"{p['vote_neighbours']} nearest), EMD rank {p['rank']}")


def _potential(args):
    """The potential of --potential, else of the setting (WBG_POTENTIAL), loaded once."""
    from ..cli import UserError
    from ..settings import get_settings
    from ..structures.potentials import load_potential

    try:
        return load_potential(args.potential or get_settings().potential)
    except ValueError as exc:  # only an unknown WBG_POTENTIAL gets here: --potential has choices
        raise UserError(f"{exc} (WBG_POTENTIAL)") from exc


def _oracle_or_none():
    """The oracle of the models directory (Settings.models_dir), or None with a note on stderr:
    a structure is worth writing without its predicted gap."""
    from ..models.errors import ModelError

    try:
        from ..models import load_oracle

        return load_oracle()
    except (ModelError, OSError) as exc:
        print(f"note: no band-gap oracle ({exc}); the structures carry no predicted gap", file=sys.stderr)
        return None
