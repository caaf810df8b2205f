"""Element substitution into a template structure, with a volume guess and sanity checks.

Pairing rule. Both reduced formulas are sorted by (coefficient, position on the modified
Pettifor scale) and zipped: an element of the template is replaced by the query element of
the same coefficient, and where several share a coefficient (SrYF5 -> BaYF5: Sr, Y both 1)
they are matched in Pettifor order. For a fixed coefficient class this is the
minimum-cost matching on the Pettifor line (on a line, order-preserving matching is optimal
for |x - y| costs), so chemically similar elements take each other's sites: Sr -> Ba and
Y -> Y, never Sr -> Y. When the template is a fallback analogue (different coefficients),
the same sort pairs elements by amount rank, and the result's formula is reported.

Volume guess. Before relaxation the cell is rescaled by the ratio of summed cubed radii,
sum over sites r_new^3 / sum r_old^3, with Shannon ionic radii for the oxidation states
pymatgen guesses for each composition (Composition.oxi_state_guesses), and atomic radii for
an element pair where either side has no ionic radius (metals, intermetallics). The ratio is
clipped to [0.5, 2.0]; a warning says when the clip acts.

Validity: the project's one compound rule (wbg_core.composition.validity: at least two
elements, not all metals, SMACT charge neutrality with ICSD-24 oxidation states, Pauling
test) decides `charge_neutral` and `compound_valid`, so the page, the warnings and the CIF
header never disagree. pymatgen's oxidation-state guess is used only for the Shannon radii
of the volume guess.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from ..composition.parse import format_formula
from .emd import MOD_PETTI
from .templates import Template, reduce

VOLUME_CLIP = (0.5, 2.0)


@dataclass
class Substitution:
    structure: object  # pymatgen Structure, substituted and rescaled, no oxidation states
    formula: str  # requested reduced formula
    result_formula: str  # reduced formula of the substituted structure
    template_formula: str
    mapping: dict[str, str]  # template element -> new element
    volume_scale: float  # new volume / template volume
    oxidation_states: dict[str, float] | None  # a charge-balanced guess for the result, if any
    charge_neutral: bool  # the compound rule's charge-balance test (ICSD-24 states)
    compound_valid: bool  # the whole compound rule
    validity_reason: str  # "" when valid, else the test that failed
    warnings: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return self.result_formula == self.formula


def pair_elements(template_comp: dict[str, int], query_comp: dict[str, int]) -> dict[str, str]:
    """Template element -> query element, by coefficient then Pettifor position (see module doc)."""
    if len(template_comp) != len(query_comp):
        raise ValueError(f"cannot pair {len(template_comp)} template elements with {len(query_comp)}")

    def order(comp):
        return sorted(comp, key=lambda el: (comp[el], MOD_PETTI[el], el))

    return dict(zip(order(template_comp), order(query_comp)))


def _oxi_guess(comp) -> dict[str, float] | None:
    try:
        guesses = comp.oxi_state_guesses(max_sites=-20)
    except Exception:  # pymatgen raises bare ValueErrors for odd compositions
        return None
    return dict(guesses[0]) if guesses else None


def _radius(el: str, oxi: dict[str, float] | None) -> float | None:
    from pymatgen.core import Species

    if oxi is not None and el in oxi:
        state = oxi[el]
        if float(state).is_integer():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "No ionic radius for Bi2+!"
                    r = Species(el, int(state)).ionic_radius
                if r is not None:
                    return float(r)
            except (ValueError, KeyError):
                pass
    return None


def _atomic_radius(el: str) -> float:
    from pymatgen.core import Element

    e = Element(el)
    for r in (e.atomic_radius, e.atomic_radius_calculated, e.average_ionic_radius):
        if r is not None and float(r) > 0:
            return float(r)
    return 1.5


def volume_ratio(template_comp: dict[str, int], mapping: dict[str, str],
                 old_oxi: dict[str, float] | None, new_oxi: dict[str, float] | None) -> float:
    """Unclipped sum r_new^3 / sum r_old^3 over the formula's sites (see module doc)."""
    old_v = new_v = 0.0
    for el, n in template_comp.items():
        new = mapping[el]
        r_old, r_new = _radius(el, old_oxi), _radius(new, new_oxi)
        if r_old is None or r_new is None:
            r_old, r_new = _atomic_radius(el), _atomic_radius(new)
        old_v += n * r_old ** 3
        new_v += n * r_new ** 3
    return new_v / old_v


def substitute(template, formula: str, structure=None) -> Substitution:
    """Put the elements of `formula` on the sites of `template`.

    template: a Template from find_templates (its pool structure is loaded) or a pymatgen
    Structure; structure: the template's Structure if already at hand. Site counts are
    preserved; the cell is rescaled by the volume guess.
    """
    from pymatgen.core import Composition, Structure

    from ..composition import compound_verdict

    query = reduce(formula)
    if isinstance(template, Structure):
        structure = template
    elif structure is None:
        from ..data import load_structures

        structure = load_structures().structure(template.pool_index)
    if not structure.is_ordered:
        raise ValueError("the template structure is disordered (partial occupancies); substitution needs an ordered one")
    structure = structure.copy()
    structure.remove_oxidation_states()
    t_comp = reduce({el.symbol: amt for el, amt in structure.composition.element_composition.items()})
    mapping = pair_elements(t_comp, query)
    notes: list[str] = []

    old_oxi = _oxi_guess(Composition(t_comp))
    new_comp = {mapping[el]: n for el, n in t_comp.items()}
    result_formula = format_formula(reduce(new_comp))
    new_oxi = _oxi_guess(Composition(new_comp))
    ratio = volume_ratio(t_comp, mapping, old_oxi, new_oxi)
    clipped = min(max(ratio, VOLUME_CLIP[0]), VOLUME_CLIP[1])
    if clipped != ratio:
        notes.append(f"volume guess {ratio:.2f}x the template's was clipped to {clipped:.2f}x")

    structure.replace_species(mapping)
    structure.scale_lattice(structure.volume * clipped)

    query_name = format_formula(query)
    verdict = compound_verdict(result_formula)
    if not verdict.valid:
        notes.append(f"{result_formula} is not a valid compound: {verdict.reason}")
    if result_formula != query_name:
        notes.append(
            f"fallback analogue: the template {format_formula(t_comp)} has other coefficients, so the "
            f"structure is {result_formula}, not {query_name}"
        )
    return Substitution(
        structure=structure, formula=query_name, result_formula=result_formula,
        template_formula=format_formula(t_comp), mapping=mapping, volume_scale=float(clipped),
        oxidation_states=new_oxi, charge_neutral=verdict.charge_neutral, compound_valid=verdict.valid,
        validity_reason=verdict.reason, warnings=notes,
    )


__all__ = ["Substitution", "Template", "pair_elements", "substitute", "volume_ratio"]
