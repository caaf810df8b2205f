"""Structures: EMD template alternatives ranked by a potential's energy, the structure in 3D, the hull, symmetry,
simulated XRD, CIF/DFT downloads."""
from __future__ import annotations

import pandas as pd
import streamlit as st

import app_common as ac
from wbg_core.services.inputs import plural
from wbg_core.services.structures_view import close_vote_note, ranking_evidence, relax_summary, relaxed_provenance
from wbg_core.composition import FormulaError, reduced_formula
from wbg_core.composition.validity import RULES
from wbg_core.settings import get_settings
from wbg_core.structures.potentials import POTENTIALS
from wbg_core.structures.ranking import ORDERS, VOTE_DECAY, VOTE_NEIGHBOURS, energy_tolerance

ac.page("Structures", "🧊")
st.caption("The paper's template step: Materials Project structures whose compositions are nearest by "
           "Element Mover's Distance (same stoichiometric coefficients) get the new elements, and by default the "
           f"structure type most of the {VOTE_NEIGHBOURS} nearest share comes first (a vote weighted by EMD); an "
           "interatomic "
           "potential (CHGNet or SevenNet) gives the energy, the formation energy against fitted elemental "
           "references and the energy above the MP hull, and can relax the top templates and rank them by "
           "energy. Candidate structures are hypotheses to check with DFT.")

cands = ac.selected_candidates()
c1, c2 = st.columns([2, 1])
with c1:
    if "struct_formula" not in st.session_state:
        st.session_state["struct_formula"] = ac.qp("formula", cands[0] if cands else "SrYF5")
    if cands:
        pick = st.selectbox("Candidates sent from screening", ["—"] + cands, key="cand_pick")
        if pick != "—" and pick != st.session_state.get("_last_pick"):
            st.session_state["_last_pick"] = pick
            st.session_state["struct_formula"] = pick
    text = st.text_input("Formula", key="struct_formula")
with c2:
    top_k = st.slider("Template alternatives", 1, 8, 3, key="top_k")
    order = st.radio("Template order", list(ORDERS), horizontal=True, key="order",
                     format_func={"vote": "prototype vote", "emd": "nearest EMD (paper)"}.get,
                     help="prototype vote: templates that are one structure type (pymatgen StructureMatcher) pool "
                          f"their weights, exp(-ΔEMD/{VOTE_DECAY:g}), over the {VOTE_NEIGHBOURS} nearest, and one "
                          "template of each type is shown, the heaviest first; nearest EMD: the nearest template "
                          "first, the paper's rule")
    default_pot = get_settings().potential
    pot_name = st.selectbox("Potential", list(POTENTIALS),
                            index=list(POTENTIALS).index(default_pot) if default_pot in POTENTIALS else 0,
                            format_func=lambda k: POTENTIALS[k].label, key="potential",
                            help="relaxes the structures and gives their energies; "
                                 + "; ".join(p.description for p in POTENTIALS.values()))

try:
    formula = reduced_formula(text)
except FormulaError as exc:
    st.error(f"Not a formula: {exc}")
    st.stop()
ac.set_qp(formula=formula)


@st.cache_resource(show_spinner="Searching templates and computing their energies…", max_entries=32)
def _candidates(formula: str, top_k: int, oracle_dir: str, pot_name: str, order: str):
    """Keyed by the oracle's directory: the gap comes from the checkpoint set the app uses."""
    from wbg_core.structures.pipeline import predict_structures

    return predict_structures(formula, top_k=top_k, potential=ac.potential(pot_name), relax=False, order=order,
                              oracle=ac.oracle(show=False))


pot = ac.potential(pot_name)
oracle_dir = str(ac.model_dir("oracle"))
ranked_runs = st.session_state.setdefault("ranked", {})  # "formula|potential" -> candidates relaxed and ranked
rank_key = f"{formula}|{pot_name}|{order}"
is_ranked = rank_key in ranked_runs
tie_key = f"rank_tol_{pot_name}"  # each potential keeps its own tolerance
tolerance = float(st.session_state.get(tie_key, energy_tolerance(pot_name)))
try:
    if is_ranked:  # re-ranked at the current tolerance: no new relaxation
        from wbg_core.structures.pipeline import rank_candidates

        found = rank_candidates(ranked_runs[rank_key], formula, tolerance)
    else:
        found = _candidates(formula, top_k, oracle_dir, pot_name, order)
except FormulaError as exc:  # NoTemplateError is one
    st.error(f"No structure for {formula}: {exc}")
    st.stop()
except Exception as exc:  # noqa: BLE001 - the data or CHGNet failed: say so, keep the page
    st.error(f"The structure search failed: {type(exc).__name__}: {exc}")
    st.stop()

relaxed = st.session_state.setdefault("relaxed", {})  # "formula|template|potential" -> (structure, provenance)


def _current(c, f: str = formula):
    """(structure, provenance) of a template candidate: the relaxed one once relaxed in this session."""
    return relaxed.get(f"{f}|{c.provenance['template_id']}|{pot_name}", (c.structure, c.provenance))


r1, r0, r2 = st.columns([1, 1, 2], vertical_alignment="bottom")
n_rank = r1.number_input("Relax the top N templates", min_value=2, max_value=30, value=10, step=1, key="rank_n",
                         help="each is relaxed (FIRE, cell and positions, fmax 0.1 eV/Å, at most 200 steps) and the "
                              "candidates are ordered by energy per atom, lowest first; usually 1-30 s per template")
r0.number_input("Energy tie (eV/atom)", min_value=0.0, max_value=1.0, value=energy_tolerance(pot_name), step=0.005,
                format="%.3f", key=tie_key,
                help=f"energies per atom closer than this count as a tie, which the template order breaks: polymorphs are "
                     f"often closer in energy than {pot.label}'s error. 0 ranks by energy alone. The default was "
                     "chosen on a tuning set of MP structures (bench structure_tuning). Changing it re-ranks the "
                     "relaxed templates without relaxing them again.")
if r2.button(f"Relax {n_rank} and rank by {pot.label} energy", key="rank"):
    from wbg_core.structures.pipeline import predict_structures

    with st.status(f"Relaxing the first {n_rank} templates of {formula} with {pot.label}…", expanded=True) as stt:
        bar = st.progress(0.0)
        try:
            ranked_runs[rank_key] = predict_structures(
                formula, n_rank, potential=pot, relax=True, order=order, rank_by_energy=True,
                energy_tolerance=tolerance,
                oracle=ac.oracle(show=False),
                progress=lambda d, t: bar.progress(d / t, text=f"{d} of {t} templates relaxed"))
            st.rerun()
        except Exception as exc:  # noqa: BLE001 - keep the page, say what failed
            stt.update(label="Ranking failed", state="error")
            st.error(f"Could not relax and rank the templates: {type(exc).__name__}: {exc}")
if is_ranked:
    how = (f"energy per atom after relaxation (lowest first), energies within {tolerance:g} eV/atom counting as "
           f"a tie that the {ORDERS[order]} breaks," if tolerance > 0 else "energy per atom alone after relaxation "
           "(lowest first; an energy tie above 0 lets the template order decide near-ties)")
    st.caption(f"Ranked by {pot.label} {how} over the first {plural(len(found), 'template')}; the vote and EMD ranks stay "
               "beside it. Change the formula or the potential to leave the ranking.")
if evidence := ranking_evidence():
    st.caption(f"ℹ️ {evidence}")
if not is_ranked and (close := close_vote_note([c.provenance for c in found])):
    st.caption(f"⚖️ {close}")

ranking_cols = ["energy_rank", "energy_above_lowest", "same_structure_as"] if is_ranked else []
cols = ranking_cols + ["vote_rank", "vote_share", "rank", "template_id", "template_formula", "template_spacegroup", "emd", "formula",
                       "spacegroup_symbol", "relaxed", "formation_energy_per_atom", "e_above_hull", "band_gap_mean",
                       "compound_valid", "passes_paper_rule"]
table = pd.DataFrame([{k: _current(c)[1].get(k) for k in cols} for c in found])
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"energy_rank": st.column_config.NumberColumn("energy rank",
                                                                         help="1: lowest energy per atom"),
                            "energy_above_lowest": st.column_config.NumberColumn(
                                "ΔE (eV/atom)", format="%.3f", help="above the lowest-energy relaxed template"),
                            "same_structure_as": st.column_config.NumberColumn(
                                "same as", help="relaxed into the same structure as this energy rank "
                                                "(pymatgen StructureMatcher)"),
                            "vote_rank": st.column_config.NumberColumn(
                                "vote rank", help="the prototype vote's order: one template of each structure type, "
                                                  "the heaviest type first"),
                            "vote_share": st.column_config.ProgressColumn(
                                "vote", min_value=0.0, max_value=1.0, format="percent",
                                help=f"the share of the {VOTE_NEIGHBOURS} nearest templates' EMD-weighted vote that "
                                     "this structure type holds"),
                            "rank": st.column_config.NumberColumn("EMD rank", help="by Element Mover's Distance"),
                            "formation_energy_per_atom": st.column_config.NumberColumn("E_f (eV/atom)", format="%.3f"),
                            "e_above_hull": st.column_config.NumberColumn("E_hull (eV/atom)", format="%.3f"),
                            "band_gap_mean": st.column_config.NumberColumn("gap (eV)", format="%.2f"),
                            "relaxed": st.column_config.CheckboxColumn("relaxed", help=f"relaxed with {pot.label}"),
                            "compound_valid": st.column_config.CheckboxColumn("compound", help=RULES["compound"]),
                            "passes_paper_rule": st.column_config.CheckboxColumn(
                                "paper rule", help=found[0].provenance.get("paper_rule"))})

ids = [c.provenance["template_id"] for c in found]
want = ac.qp("template")
choice = st.radio("Show", ids, index=ids.index(want) if want in ids else 0, horizontal=True, key="tmpl",
                  format_func=lambda i: f"{i} ({found[ids.index(i)].provenance['template_formula']})")
ac.set_qp(template=choice)
cand = found[ids.index(choice)]
key = f"{formula}|{choice}|{pot_name}"
structure, prov = _current(cand)
hull_note = [w for w in prov.get("warnings", []) if "not charge-balanced" in w]  # shown by E_hull
for w in prov.get("warnings", []):
    if w not in hull_note and "is not a valid compound" not in w:  # the validity box says that one
        st.caption(f"⚠️ {w}")

left, right = st.columns([3, 1])
with right:
    bonds = st.toggle("Bonds", True, key="bonds")
    poly = st.toggle("Polyhedra", False, key="poly")
    cell = st.toggle("Unit cell", True, key="cell")
    st.metric("Formation energy", f"{prov['formation_energy_per_atom']:.3f} eV/atom"
              if prov.get("formation_energy_per_atom") is not None else "—")
    st.metric("Energy above hull", f"{prov['e_above_hull']:.3f} eV/atom"
              if prov.get("e_above_hull") is not None else "—")
    for w in hull_note:
        st.warning(w)
    st.caption(f"{relax_summary(prov)} · {prov.get('n_sites')} sites · {prov.get('spacegroup_symbol') or '?'}")
    if prov.get("compound_valid"):
        st.success("Valid compound", icon=":material/check_circle:")
    else:
        st.warning(f"Not a valid compound: {prov.get('validity_reason') or 'fails the compound rule'}")
    st.caption(f"Compound rule: {RULES['compound'].split(': ', 1)[-1]} (the CIF header says the same).")
    if st.button(f"Relax with {pot.label}", disabled=key in relaxed or bool(prov.get("relaxed")), key="relax"):
        from wbg_core.structures.stability import assess

        with st.status(f"Relaxing {prov['formula']} with {pot.label} (FIRE, cell and positions)…",
                       expanded=True) as stt:
            try:
                final, stab = assess(cand.structure, pot, do_relax=True)
                new = relaxed_provenance(cand.provenance, final, stab, pot)
                relaxed[key] = (final, new)
                stt.update(label=f"Relaxed in {stab.relax_steps} steps ({stab.relax_seconds:.1f} s)", state="complete")
                st.rerun()
            except Exception as exc:  # noqa: BLE001
                stt.update(label="Relaxation failed", state="error")
                st.error(f"{pot.label} could not relax this structure: {exc}")
with left:
    try:
        from wbg_core.structures.scene import structure_figure

        fig = structure_figure(structure, bonds=bonds, polyhedra=poly, title=f"{prov['formula']} from {choice}")
        if not cell:
            fig.for_each_trace(lambda t: t.update(visible=False) if t.name == "unit cell" else None)
        st.plotly_chart(fig, width="stretch", key="structure3d")
    except Exception as exc:  # noqa: BLE001
        st.error(f"The 3D view failed: {exc}")


@st.cache_data(show_spinner="Building the phase diagram…", max_entries=32)
def _hull(formula: str, e_form: float, show_unstable: float, potential: str):
    from wbg_core.structures.hull import candidate_hull

    return candidate_hull(formula, e_form, show_unstable=show_unstable, potential=potential)


st.subheader("Energy above the hull")
if prov.get("formation_energy_per_atom") is None:
    st.info("No formation energy for this structure, so no place on the hull (see the notes above).")
else:
    from wbg_core.structures.hull import DEFAULT_SHOW_UNSTABLE, caveat

    h_left, h_right = st.columns([3, 2], gap="large")
    show_unstable = h_right.number_input("Draw MP phases up to (eV/atom above the hull)", min_value=0.0,
                                         max_value=1.0, value=DEFAULT_SHOW_UNSTABLE, step=0.05, format="%.2f",
                                         key="hull_unstable",
                                         help="PDPlotter's show_unstable; the candidate is drawn wherever it lies")
    try:
        hull = _hull(prov["formula"], float(prov["formation_energy_per_atom"]), float(show_unstable),
                     prov.get("potential") or "chgnet")
    except FormulaError as exc:  # HullError is one
        st.warning(f"No hull for {prov['formula']}: {exc}")
    else:
        with h_right:
            st.markdown(f"**{hull.formula}**: {hull.summary}")
            st.caption(f"{hull.chemsys}: {plural(hull.n_mp_phases, 'MP compound')} with an MP formation energy in "
                       f"the bundled data. {caveat(prov.get('potential') or 'chgnet')}")
            if hull.estimated_text:
                st.info(hull.estimated_text)
            if hull.missing_text:
                st.warning(hull.missing_text)
            for w in hull_note:
                st.caption(f"⚠️ {w}")
        if hull.figure is not None:
            h_left.plotly_chart(hull.figure, width="stretch", key="hull_figure")
        else:
            h_left.info(hull.no_figure_reason)
        # st.table, not st.dataframe: a short static list (and the page's dataframe order stays)
        st.table(pd.DataFrame(hull.table).rename(columns={
            "fraction": "atom fraction", "formation_energy_per_atom": "E_f (eV/atom)", "energy_source": "E_f from",
            "distance": "composition distance", "material_id": "MP id"}).style.format(
            {"atom fraction": "{:.3f}", "E_f (eV/atom)": "{:.3f}", "composition distance": "{:.3f}"},
            na_rep="").hide(axis="index"))

from wbg_core.structures.dft import DEFAULT_KPOINT_DENSITY, SSSP_LABEL
from wbg_core.structures.export import (DEFAULT_SYMPREC, bundle_zip, cif_string, safe_filename,
                                        symmetry_info)
from wbg_core.structures.xrd import DEFAULT_WAVELENGTH, wavelengths, xrd_figure, xrd_pattern

st.subheader("Symmetry, simulated XRD and DFT inputs")
sources = wavelengths()
w1, w2, w3 = st.columns(3)
symprec = w1.number_input("Symmetry tolerance, symprec (Å)", min_value=0.0001, max_value=1.0, value=DEFAULT_SYMPREC,
                          step=0.01, format="%.4f", key="symprec",
                          help="spglib's distance tolerance: the space group, the Wyckoff positions, the CIF's "
                               "symmetrised conventional cell and the XRD hkl all use it")
source = w2.selectbox("X-ray source", list(sources), index=list(sources).index(DEFAULT_WAVELENGTH), key="xrd_source",
                      format_func=lambda k: f"{k} ({sources[k]:.4f} Å)")
kdens = w3.number_input("k-points per reciprocal atom (DFT inputs)", min_value=10.0, max_value=1.0e6,
                        value=DEFAULT_KPOINT_DENSITY, step=100.0, format="%.0f", key="kdens",
                        help="pymatgen's Kpoints.automatic_density; the VASP and Quantum ESPRESSO inputs "
                             "share the grid")
state = f"{key}|{'relaxed' if key in relaxed else 'ranked' if is_ranked else 'template'}"  # what `structure` is


@st.cache_data(show_spinner=False, max_entries=64)
def _xrd(state: str, _structure, source: str, symprec: float):
    return xrd_pattern(_structure, source, symprec)


@st.cache_data(show_spinner="Writing the CIF, XRD peaks and DFT inputs…", max_entries=32)
def _bundle(state: str, _structure, _prov, symprec: float, source: str, kdens: float) -> bytes:
    return bundle_zip([(_structure, _prov)], symprec=symprec, wavelength=source, kpoint_density=kdens)


s_left, s_right = st.columns([3, 2], gap="large")
with s_left:
    try:
        info = symmetry_info(structure, symprec)
        st.markdown(f"**{info['symbol']}** (No. {info['number']}, {info['crystal_system']}) at symprec "
                    f"{symprec:g} Å; conventional cell of {info['n_conventional']} sites")
        st.dataframe(pd.DataFrame(info["sites"]), hide_index=True, width="stretch", key="wyckoff",
                     column_config={"wyckoff": st.column_config.TextColumn("Wyckoff", help="multiplicity and letter"),
                                    "site_symmetry": st.column_config.TextColumn("site symmetry"),
                                    **{c: st.column_config.NumberColumn(c, format="%.4f") for c in ("x", "y", "z")}})
    except ValueError as exc:
        st.warning(f"No space group at symprec {symprec:g} Å ({exc}); the CIF is written in P1.")
with s_right:
    try:
        st.download_button("Download CIF", cif_string(structure, prov, symprec).encode(),
                           safe_filename(prov.get("name") or prov["formula"]), "chemical/x-cif", key="dl_cif")
    except Exception as exc:  # noqa: BLE001
        st.error(f"CIF export failed: {exc}")
    try:
        one = _bundle(state, structure, prov, symprec, source, kdens)
        st.download_button("Download DFT inputs + XRD + CIF (zip)", one,
                           safe_filename(prov.get("name") or prov["formula"], suffix=".zip"), "application/zip",
                           key="dl_bundle")
        st.caption(f"DFT inputs: VASP (pymatgen MPRelaxSet; POTCAR.spec only, POTCARs are licensed) and "
                   f"Quantum ESPRESSO pw.x ({SSSP_LABEL}), with a README of how the structure was made.")
    except Exception as exc:  # noqa: BLE001
        st.error(f"Bundle export failed: {exc}")
    batch = list(dict.fromkeys([formula] + cands))
    st.caption(f"Zip: the best structure of each of {plural(len(batch), 'formula')} "
               f"({', '.join(batch[:6])}{'…' if len(batch) > 6 else ''}), each with its XRD peaks and DFT "
               "inputs, and index.csv")
    if st.button("Prepare zip", key="prep_zip"):
        items, bar = [], st.progress(0.0, text="Building structures…")
        for i, f in enumerate(batch):
            try:
                c = found[ids.index(choice)] if f == formula else (
                    (ranked_runs.get(f"{f}|{pot_name}") or _candidates(f, 1, oracle_dir, pot_name))[0])
                s_, p_ = _current(c, f)
                items.append((s_, p_))
            except Exception as exc:  # noqa: BLE001
                st.error(f"{f}: {exc}")
            bar.progress((i + 1) / len(batch), text=f"{i + 1}/{len(batch)} {f}")
        st.session_state["zip"] = bundle_zip(items, symprec=symprec, wavelength=source, kpoint_density=kdens)
    if st.session_state.get("zip"):
        st.download_button("Download zip of CIFs, XRD peaks and DFT inputs", st.session_state["zip"],
                           "candidates.zip", "application/zip", key="dl_zip")

try:
    pattern = _xrd(state, structure, source, symprec)
    st.plotly_chart(xrd_figure(pattern, title=f"{prov['formula']}: simulated powder XRD, {source} "
                                              f"({pattern.wavelength_A:.4f} Å), hkl of the conventional cell"),
                    width="stretch", key="xrd")
    for note in pattern.notes:
        st.caption(f"⚠️ {note}")
    st.download_button("Download XRD peaks (CSV)", pattern.csv().encode(),
                       safe_filename(f"{prov.get('name') or prov['formula']}_xrd_{source}", suffix=".csv"),
                       "text/csv", key="dl_xrd")
except ValueError as exc:
    st.error(f"No XRD pattern: {exc}")
