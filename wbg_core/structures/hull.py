"""The candidate on the MP convex hull, as a picture: a pymatgen phase diagram and its decomposition.

`stability.hull_entries` gives the known phases of the chemical system (the bundled MP ones,
plus ML estimates for MP compounds bundled without a formation energy: estimated_phases) and
`stability.energy_above_hull` the candidate's e_hull and decomposition; this module only adds
the candidate as a PDEntry to the diagram that is plotted (pymatgen PDPlotter, plotly backend),
names the products, marks the estimated phases, and lists the nearby phases where no 2-D plot
reads well (4+ elements).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..composition.parse import FormulaError
from ..data.estimates import estimate_validation
from .potentials import potential_label
from .stability import MP_SOURCE, energy_above_hull, hull_entries
from .templates import reduce

ON_HULL_TOL = 5e-4  # eV/atom: |e_hull| below this is "on the hull" (MP rounds energies to 1e-6)
DEFAULT_SHOW_UNSTABLE = 0.1  # eV/atom: MP phases drawn above the hull


def caveat(potential: str = "chgnet") -> str:
    """What the hull mixes, naming the potential that priced the candidate."""
    return ("The hull is DFT (Materials Project formation energies, with MP's corrections), completed by CHGNet "
            "estimates where the bundled data has an MP structure but no MP energy (marked); the candidate's "
            f"energy is a {potential_label(potential)} (ML potential) estimate put on MP's scale by fitted "
            "elemental references. Treat E_hull as a screen, not a verdict.")


class HullError(FormulaError):
    """A composition whose hull cannot be built from the bundled MP phases."""


@lru_cache(maxsize=1)
def _material_ids() -> dict[str, str]:
    """Hull formula -> MP material id (for an estimate: the polymorph it was computed at)."""
    from ..data.estimates import hull_phases

    phases = hull_phases()
    return dict(zip(phases["formula"], phases["material_id"]))


@lru_cache(maxsize=1)
def _unpriced() -> tuple[np.ndarray, list[frozenset]]:
    """data.estimates.unpriced_formulas and their elements."""
    from ..data.estimates import unpriced_formulas

    formulas = np.array(unpriced_formulas(), dtype=object)
    return formulas, [frozenset(reduce(f)) for f in formulas]


def phases_missing_from_hull(elements) -> list[str]:
    """MP compounds of the system that the bundled data holds with neither a formation energy
    nor a structure to estimate one: the hull is built without them, so a phase it calls
    stable may not be."""
    system = frozenset(elements)
    formulas, sets = _unpriced()
    return sorted(str(f) for f, els in zip(formulas, sets) if len(els) > 1 and els <= system)


@dataclass
class CandidateHull:
    formula: str  # reduced formula of the candidate
    chemsys: str  # "F-Sr-Y"
    formation_energy: float  # eV/atom, the candidate's estimate by `potential`
    e_above_hull: float  # eV/atom against the MP hull; negative = below it
    products: list[tuple[str, float]]  # decomposition: (reduced formula, atom fraction), largest first
    n_mp_phases: int  # compounds of the system priced by MP (elements not counted)
    estimated: dict[str, str] = field(default_factory=dict)  # compound -> potential, where the energy is ML
    estimate_error: dict | None = None  # the estimates' error against MP on a control sample (registry)
    table: list[dict] = field(default_factory=list)  # decomposition products, then the nearest stable phases
    figure: object | None = None  # plotly Figure (binary, ternary)
    no_figure_reason: str | None = None
    missing: list[str] = field(default_factory=list)  # MP compounds of the system without a formation energy

    @property
    def missing_text(self) -> str | None:
        """A warning when the hull lacks known compounds of the system, else None."""
        if not self.missing:
            return None
        shown = ", ".join(self.missing[:6]) + (" ..." if len(self.missing) > 6 else "")
        return (f"The bundled data holds {len(self.missing)} more MP compound(s) of {self.chemsys} without a "
                f"formation energy ({shown}: rows whose gap is the largest over MP polymorphs, with no ground "
                "state), so the hull is drawn without them: phases it shows as stable, and this E_hull, may be wrong.")

    @property
    def estimated_text(self) -> str | None:
        """Which phases of the system are priced by an ML estimate, else None."""
        if not self.estimated:
            return None
        names = sorted(self.estimated)
        shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        labels = sorted({potential_label(p) for p in self.estimated.values()})
        return (f"{len(names)} compound(s) of {self.chemsys} ({shown}) have MP structures but no MP formation "
                f"energy in the bundled data: their energies are {' and '.join(labels)} estimates at those structures, "
                "marked [ML]" + (f" (MAE {err['mae_eV_per_atom']:.3f} eV/atom against MP on "
                                 f"{err['control_formulas']} formulas where both are known)."
                                 if (err := self.estimate_error) else "."))

    @property
    def products_text(self) -> str:
        def name(f):
            return f"{f} [ML]" if f in self.estimated else f
        return " + ".join(f"{name(f)} ({x:.2f})" if len(self.products) > 1 else name(f) for f, x in self.products)

    @property
    def summary(self) -> str:
        """One line, e.g. '0.365 eV/atom above SrF2 (0.43) + YF3 (0.57)'."""
        e = self.e_above_hull
        if abs(e) < ON_HULL_TOL:
            return f"on the hull (0.000 eV/atom): decomposes to {self.products_text}, i.e. it is a hull phase"
        if e > 0:
            return f"{e:.3f} eV/atom above {self.products_text}"
        return (f"{-e:.3f} eV/atom below the hull (of {self.products_text}): would be a new stable phase "
                "(ML estimate)")


def _reduced(name: str) -> str:
    from pymatgen.core import Composition

    return Composition(name).reduced_formula


def candidate_hull(formula, formation_energy: float, *, show_unstable: float = DEFAULT_SHOW_UNSTABLE,
                   n_nearby: int = 8, potential: str = "chgnet") -> CandidateHull:
    """E_hull with named products, and the phase diagram with the candidate (binary, ternary).

    Raises HullError for an element or a system with no bundled MP compound (the hull would be
    the elements alone), FormulaError for elements outside the vocabulary.
    """
    from pymatgen.analysis.phase_diagram import PDEntry, PDPlotter, PhaseDiagram
    from pymatgen.core import Composition

    comp = Composition(reduce(formula) if isinstance(formula, str) else formula)
    name = comp.reduced_formula
    elements = sorted(el.symbol for el in comp.elements)
    chemsys = "-".join(elements)
    if not np.isfinite(formation_energy):
        raise HullError(f"{name} has no finite formation energy: no hull")
    if len(elements) < 2:
        raise HullError(f"{name} is an element: it is the hull's reference at 0 eV/atom")
    entries = hull_entries(elements)
    ids = _material_ids()
    compounds = [e for e in entries if not e.composition.is_element]
    estimated = {e.name: e.attribute for e in compounds if e.attribute != MP_SOURCE}
    if not compounds:
        raise HullError(f"no Materials Project compound of the {chemsys} system in the bundled data: "
                        "the hull would be the bare elements, so E_hull would mean nothing")
    for e in entries:  # PDPlotter's hover text shows entry_id
        e.entry_id = ids.get(e.name, "element, 0 eV/atom" if e.composition.is_element else "MP")
        if e.name in estimated:
            e.entry_id += f", E_f {potential_label(e.attribute)} estimate"

    hull = energy_above_hull(comp, formation_energy)
    # an MP phase at its own energy is "in" the diagram: pymatgen returns the entry itself ("candidate")
    products = sorted(((name if n == "candidate" else _reduced(n), float(x)) for n, x in hull["decomposition"].items()),
                      key=lambda p: -p[1])
    out = CandidateHull(formula=name, chemsys=chemsys, formation_energy=float(formation_energy),
                        e_above_hull=float(hull["e_above_hull"]), products=products,
                        n_mp_phases=len(compounds) - len(estimated), estimated=estimated,
                        missing=phases_missing_from_hull(elements),
                        estimate_error=estimate_validation() if estimated else None)
    out.table = _phase_table(PhaseDiagram(entries), comp, products, ids, n_nearby, estimated)

    if len(elements) > 3:
        out.no_figure_reason = (f"{chemsys} has {len(elements)} elements: PDPlotter draws binaries and ternaries "
                                "in 2-D; a quaternary is a 3-D tetrahedron that does not read well (and 5+ elements "
                                "cannot be drawn), so the decomposition products and nearest phases are listed.")
        return out
    cand = PDEntry(comp, formation_energy * comp.num_atoms, name=f"{name} (candidate)")
    pot_label = potential_label(potential)
    cand.entry_id = f"candidate, {pot_label} estimate"

    # the candidate is drawn only within show_unstable of the hull: widen it to reach the candidate
    show = max(show_unstable, out.e_above_hull + 0.005)
    # a phase at the candidate's own composition and energy (e.g. an estimate computed at the very MP
    # structure the candidate was built from) is "equal" to it for pymatgen, and PDPlotter's highlight
    # then fails: the candidate stands for it in the figure
    plotted = [e for e in entries if not (e.composition.reduced_composition == comp.reduced_composition
                                          and np.isclose(e.energy_per_atom, cand.energy_per_atom))]
    fig = PDPlotter(PhaseDiagram([*plotted, cand]), backend="plotly", show_unstable=show).get_plot(
        highlight_entries=[cand])
    label = f"{name} (candidate)"
    for trace in fig.data:
        if trace.name == "Highlighted":
            trace.update(name=label, mode="markers+text", text=[label], textposition="middle left",
                         textfont={"size": 13, "color": "mediumvioletred"},
                         marker={"symbol": "star", "size": 18})
        elif trace.name == "Stable" and trace.type == "scatterternary":
            # PDPlotter leaves 2-D ternary phases unlabelled (hover only): name the compounds on the plot
            trace.update(mode="markers+text", textposition="middle right", textfont={"size": 13, "color": "black"},
                         text=["" if "(element" in h else h.split(" (")[0] for h in trace.hovertext])
    hull_kind = f"DFT, {len(estimated)} phase(s) ML-estimated" if estimated else "DFT"
    # two lines: one did not fit the page's column and was cut at both ends
    title = f"{chemsys}: the {name} candidate ({pot_label})<br><sup>on the MP hull ({hull_kind})</sup>"
    fig.update_layout(title={"text": title, "x": 0.5, "xanchor": "center"}, margin={"t": 80})
    out.figure = fig
    return out


def _source(formula: str, estimated: dict[str, str]) -> str:
    p = estimated.get(formula)
    return "MP (DFT)" if p is None else f"ML ({potential_label(p)})"


def _phase_table(pd_mp, comp, products, ids: dict, n_nearby: int, estimated: dict[str, str]) -> list[dict]:
    """Decomposition products, then the stable compounds nearest the candidate's composition."""
    els = pd_mp.elements
    x = np.array([comp.get_atomic_fraction(el) for el in els])
    by_formula = {e.composition.reduced_formula: e for e in pd_mp.stable_entries}
    rows = []
    for f, frac in products:
        e = by_formula.get(f)
        rows.append({"phase": f, "role": "decomposition product", "fraction": frac,
                     "formation_energy_per_atom": pd_mp.get_form_energy_per_atom(e) if e else None,
                     "energy_source": _source(f, estimated) if e else None,
                     "distance": None, "material_id": ids.get(e.name) if e else None})
    taken = {f for f, _ in products}
    near = []
    for f, e in by_formula.items():
        if f in taken or e.composition.is_element:
            continue
        d = float(np.linalg.norm(np.array([e.composition.get_atomic_fraction(el) for el in els]) - x))
        near.append((d, f, e))
    for d, f, e in sorted(near, key=lambda t: (t[0], t[1]))[:n_nearby]:
        rows.append({"phase": f, "role": "nearby stable phase", "fraction": None,
                     "formation_energy_per_atom": pd_mp.get_form_energy_per_atom(e),
                     "energy_source": _source(f, estimated), "distance": round(d, 3),
                     "material_id": ids.get(e.name)})
    return rows
