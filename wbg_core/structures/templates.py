"""Template search: the pool structure whose composition is nearest by EMD, as in the paper.

Rule (the paper's template step): among the pool's structures whose reduced formula has the
same multiset of stoichiometric coefficients as the query (SrYF5 -> {1, 1, 5}: CaYF5, NaBiF5,
...), take the one with the smallest Element Mover's Distance (modified Pettifor scale).
Ties in EMD (polymorphs of one formula share it) are broken by the lower MP formation
energy per atom (the more stable polymorph first; unknown energies last), then by the
material id, so the ranking is deterministic.

Fallback when no structure has the query's coefficient multiset: search the structures with
the same number of elements instead (any coefficients), nearest by EMD. Substituting into
such a template cannot give the requested formula; it gives a structural analogue whose
composition is reported beside the request (see substitute.py and docs/structures.md).
When even that finds nothing, NoTemplateError says so.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from ..composition.parse import FormulaError, format_formula, parse_formula, reduce_composition
from .emd import SCALE_LENGTH, MOD_PETTI, cumulative, emd_sparse, emd_to_many, sparse_pool


class NoTemplateError(FormulaError):
    """No template structure can be found for a formula (the message says why)."""


@dataclass(frozen=True)
class Template:
    """One candidate template: a pool structure and its distance to the query."""

    material_id: str
    pool_index: int
    formula: str  # reduced formula of the template
    spacegroup: int | None
    emd: float
    exact: bool  # same coefficient multiset as the query (else a fallback analogue)
    mp_formation_energy_per_atom: float | None
    mp_band_gap: float | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TemplateIndex:
    """What the vectorised search needs, computed once per pool."""

    formulas: np.ndarray  # (F,) distinct reduced formulas (object)
    cdfs: np.ndarray  # (F, 103) cumulative Pettifor distributions (dense path, kept for checks)
    sparse: tuple[np.ndarray, np.ndarray, np.ndarray]  # (F, E) positions, fractions, lengths
    keys: list[tuple[int, ...]]  # (F,) sorted coefficient multiset of each formula
    n_elements: np.ndarray  # (F,)
    by_key: dict[tuple[int, ...], np.ndarray]  # multiset -> formula rows
    by_n: dict[int, np.ndarray]  # number of elements -> formula rows
    structure_formula: np.ndarray  # (M,) formula row of each pool structure
    members: list[np.ndarray]  # formula row -> pool indices, best polymorph first
    sizes: np.ndarray  # (F,) structures per formula
    material_ids: np.ndarray
    spacegroups: np.ndarray
    e_form: np.ndarray
    band_gap: np.ndarray


def coefficient_key(comp: dict[str, int]) -> tuple[int, ...]:
    """Sorted multiset of the reduced formula's coefficients: SrYF5 -> (1, 1, 5)."""
    return tuple(sorted(int(v) for v in comp.values()))


def reduce(formula: str | dict) -> dict[str, int]:
    """Integer reduced composition of a formula; FormulaError when it has none."""
    comp = parse_formula(formula) if isinstance(formula, str) else dict(formula)
    if comp and all(float(v).is_integer() and v > 0 for v in comp.values()):  # fast path: MP formulas
        ints = {el: int(v) for el, v in comp.items()}
        g = math.gcd(*ints.values())
        return {el: v // g for el, v in ints.items()}
    reduced, reason = reduce_composition(comp)
    if reduced is None:
        raise FormulaError(f"{formula!r}: {reason}; a template needs whole-number ratios")
    return reduced


def _mp_id_number(mid: str) -> int:
    try:
        return int(str(mid).split("-")[-1])
    except ValueError:
        return 1 << 62


def template_index(data_dir=None) -> TemplateIndex:
    """The search index of the structure pool, built once per process (a few seconds)."""
    return _build_index(data_dir)


@lru_cache(maxsize=2)
def _build_index(data_dir) -> TemplateIndex:
    from pymatgen.core import Element

    from ..data import load_structures

    pool = load_structures(data_dir)
    meta = pool.meta
    # Reduced compositions straight from the sites (vectorised), not by parsing MP's formula
    # strings: the structure is what gets substituted, and this is ~10x faster.
    m = len(pool)
    sid = np.repeat(np.arange(m), np.diff(pool.offsets))
    key, cnt = np.unique(sid * 128 + pool.numbers.astype(np.int64), return_counts=True)
    s_of, z_of = key // 128, key % 128
    starts = np.flatnonzero(np.r_[True, s_of[1:] != s_of[:-1]])
    ends = np.r_[starts[1:], len(key)]
    red = cnt // np.repeat(np.gcd.reduceat(cnt, starts), ends - starts)
    symbols = np.array([""] + [Element.from_Z(z).symbol for z in range(1, 128) if z <= 118] + [""] * 9,
                       dtype=object)
    by_sig: dict[tuple, int] = {}
    comps: list[dict[str, int]] = []
    sig_of = np.empty(m, dtype=np.int64)
    zs, rs = z_of.tolist(), red.tolist()
    for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
        sig = tuple(zs[a:b]) + tuple(rs[a:b])
        j = by_sig.get(sig)
        if j is None:
            j = by_sig[sig] = len(comps)
            comps.append({symbols[z]: r for z, r in zip(zs[a:b], rs[a:b])})
        sig_of[i] = j
    names = np.array([format_formula(c) for c in comps], dtype=object)
    formulas, first, inv2 = np.unique(names, return_index=True, return_inverse=True)
    structure_formula = inv2[sig_of]
    comps = [comps[k] for k in first]
    vec = np.zeros((len(formulas), SCALE_LENGTH), dtype=np.float64)
    for i, comp in enumerate(comps):
        total = float(sum(comp.values()))
        for el, n in comp.items():
            vec[i, MOD_PETTI[el]] += n / total
    cdfs = cumulative(vec)
    keys = [coefficient_key(c) for c in comps]
    n_el = np.array([len(c) for c in comps])
    by_key: dict[tuple[int, ...], list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    by_n = {int(n): np.flatnonzero(n_el == n) for n in np.unique(n_el)}
    e_form = meta["formation_energy_per_atom"].to_numpy(dtype=np.float64)
    ids = meta["material_id"].to_numpy(dtype=object)
    id_num = np.array([_mp_id_number(m) for m in ids])
    # members of each formula, most stable polymorph first (unknown energies last, then by id)
    order = np.lexsort((id_num, np.where(np.isnan(e_form), np.inf, e_form), structure_formula))
    splits = np.flatnonzero(np.diff(structure_formula[order])) + 1
    members = np.split(order, splits)
    sg = np.array([int(s) if str(s).isdigit() else -1 for s in meta["spacegroup"]])
    return TemplateIndex(
        formulas=formulas, cdfs=cdfs, sparse=sparse_pool(comps), keys=keys, n_elements=n_el,
        by_key={k: np.asarray(v) for k, v in by_key.items()}, by_n=by_n,
        structure_formula=structure_formula, members=members,
        sizes=np.array([len(m) for m in members]), material_ids=ids,
        spacegroups=sg, e_form=e_form, band_gap=meta["band_gap"].to_numpy(dtype=np.float64),
    )


def _template(ix: TemplateIndex, pool_i: int, dist: float, exact: bool) -> Template:
    ef = ix.e_form[pool_i]
    bg = ix.band_gap[pool_i]
    sg = int(ix.spacegroups[pool_i])
    return Template(
        material_id=str(ix.material_ids[pool_i]), pool_index=int(pool_i),
        formula=str(ix.formulas[ix.structure_formula[pool_i]]), spacegroup=sg if sg > 0 else None,
        emd=float(dist), exact=exact,
        mp_formation_energy_per_atom=None if np.isnan(ef) else float(ef),
        mp_band_gap=None if np.isnan(bg) else float(bg),
    )


def _rank(ix: TemplateIndex, rows: np.ndarray, dists: np.ndarray, top_k: int,
          max_per_formula: int | None, exact: bool) -> list[Template]:
    # Distinct formulas by EMD (rounded so float noise cannot reorder exact ties), then by
    # formula text; within a formula, its polymorphs in stability order.
    order = np.lexsort((ix.formulas[rows].astype(str), np.round(dists, 9)))
    out: list[Template] = []
    for j in order:
        members = ix.members[rows[j]]
        if max_per_formula is not None:
            members = members[:max_per_formula]
        for pool_i in members:
            out.append(_template(ix, pool_i, dists[j], exact))
            if len(out) >= top_k:
                return out
    return out


def find_templates(formula: str, top_k: int = 5, *, exclude_formulas: tuple[str, ...] | set[str] = (),
                   exclude_ids: tuple[str, ...] | set[str] = (), fallback: bool = True,
                   max_per_formula: int | None = None, data_dir=None) -> list[Template]:
    """Top-k template structures for `formula`, nearest first (the paper's rule).

    exclude_formulas: reduced formulas whose structures may not be used (e.g. the query's own
    formula, to hold it out); exclude_ids: material ids to skip. fallback: when no structure has
    the same coefficient multiset, return nearest structures with the same number of elements
    (Template.exact is False for those). max_per_formula: at most this many polymorphs of one
    template formula (None: all, stability order). Raises FormulaError for bad formulas and
    NoTemplateError when nothing fits.
    """
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    comp = reduce(formula)
    unknown = [el for el in comp if el not in MOD_PETTI]
    if unknown:
        raise FormulaError(f"{unknown} have no position on the modified Pettifor scale")
    ix = template_index(data_dir)
    key = coefficient_key(comp)
    excluded = {format_formula(reduce(f)) for f in exclude_formulas}
    def search(rows: np.ndarray, exact: bool) -> list[Template]:
        if excluded:
            rows = rows[~np.isin(ix.formulas[rows], list(excluded))]
        if len(rows) == 0:
            return []
        dists = emd_sparse(comp, *ix.sparse, rows=rows)
        found = _rank(ix, rows, dists, top_k + len(exclude_ids), max_per_formula, exact)
        return [t for t in found if t.material_id not in set(exclude_ids)][:top_k]

    rows = ix.by_key.get(key, np.empty(0, dtype=int))
    found = search(rows, True)
    if found:
        return found
    where = f"no structure in the pool has a reduced formula with coefficients {key}"
    if not fallback:
        raise NoTemplateError(f"{format_formula(comp)}: {where}")
    rows = ix.by_n.get(len(comp), np.empty(0, dtype=int))
    found = search(rows, False)
    if not found:
        raise NoTemplateError(f"{format_formula(comp)}: {where}, and none has {len(comp)} elements")
    return found


def emd_to_pool(formula: str, data_dir=None) -> np.ndarray:
    """EMD from `formula` to every structure of the pool (M,), in pool order."""
    ix = template_index(data_dir)
    return emd_sparse(reduce(formula), *ix.sparse)[ix.structure_formula]


def nearest_in_pool(formula: str, k: int = 5, data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """The k pool structures nearest to `formula` by EMD alone (any coefficients).

    Returns (pool indices, distances), nearest first, ties by pool index: the same order as a
    full sort of all M distances.
    """
    ix = template_index(data_dir)
    per_formula = emd_sparse(reduce(formula), *ix.sparse)
    # enough distinct formulas to hold k structures, then expand to their structures
    sizes = ix.sizes
    take = min(len(per_formula), max(k, 1))
    while True:
        part = np.argpartition(per_formula, take - 1)[:take] if take < len(per_formula) else np.arange(len(per_formula))
        cutoff = per_formula[part].max()
        if sizes[part].sum() >= k or take == len(per_formula):
            break
        take = min(len(per_formula), take * 2)
    rows = np.flatnonzero(per_formula <= cutoff + 1e-9)  # every formula tied with the cutoff too
    idx = np.concatenate([ix.members[r] for r in rows])
    d = per_formula[ix.structure_formula[idx]]
    order = np.lexsort((idx, np.round(d, 9)))[:k]
    return idx[order], d[order]
