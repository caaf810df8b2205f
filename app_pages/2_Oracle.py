"""Oracle: band gap with uncertainty for one or many formulas, MP value, EMD neighbours, CSV out."""
from __future__ import annotations

import streamlit as st

import app_common as ac
from wbg_core.services.inputs import plural, read_formula_csv, read_formula_text
from wbg_core.services.known import oracle_report
from wbg_core.data.provenance import EXPLANATION

ac.page("Band-gap oracle", "🔮")
st.caption("A deep ensemble of Roost-style networks trained on Materials Project PBE gaps stands in for DFT, "
           "with a head that weighs P(non-metal) against the gap a non-metal would have: expected gap and one "
           "standard deviation (calibrated per predicted-gap bin on held-out data), in eV.")
st.caption(EXPLANATION)

orc = ac.oracle()
if orc is None:
    st.stop()

if "oracle_text" not in st.session_state:
    st.session_state["oracle_text"] = ac.qp("formula", "SrYF5")
left, right = st.columns([2, 1])
with left:
    text = st.text_area("Formulas — one per line, or separated by commas", key="oracle_text", height=110,
                        help="Any formula pymatgen would read: SrYF5, (NH4)2SO4, CuSO4·5H2O, Fe2O3 …")
    st.button("Predict", type="primary", key="predict")
with right:
    upload = st.file_uploader("…or upload a CSV (a `formula` column, or a single column)", type=["csv"],
                              key="oracle_csv")
    k = st.slider("Nearest known neighbours (EMD)", 1, 20, 5, key="k")

typed = read_formula_text(text)
formulas = typed.formulas
if typed.skipped_message():
    st.info(f"Typed formulas: {typed.skipped_message()}.")
if upload is not None:
    try:
        got = read_formula_csv(upload.getvalue())
    except ValueError as exc:
        st.error(f"{upload.name} cannot be read, so none of it was used: {exc}.")
    else:
        formulas += got.formulas
        said = [got.skipped_message()] if got.skipped_message() else []
        st.info(f"{upload.name}: {plural(len(got.formulas), 'formula')} read"
                + "".join(f"; {m}" for m in said + (got.notes or [])) + ".")
if not formulas:
    st.info("Type a formula or upload a CSV to get a prediction.")
    st.stop()
ac.set_qp(formula=formulas[0] if len(formulas) == 1 else None)


@st.cache_data(show_spinner="Predicting…", max_entries=64)
def _report(formulas: tuple[str, ...], model_dir: str):
    return oracle_report(ac.oracle(show=False), list(formulas), ac.known_data())


try:
    rep = _report(tuple(formulas), str(ac.model_dir("oracle")))
except ValueError as exc:
    st.error(str(exc))
    st.stop()

good = rep[rep["error"].isna()]
bad = rep[rep["error"].notna()]
if len(good) == 1 and len(rep) == 1:
    r = good.iloc[0]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(f"Predicted gap of {r['formula']}", f"{r['band_gap_mean']:.2f} eV",
              help="expected gap: P(non-metal) x the gap of a non-metal")
    c2.metric("Uncertainty (1σ)", f"± {r['band_gap_std']:.2f} eV",
              help="holds the MP value for about 68% of held-out formulas in this predicted-gap range")
    c3.metric("P(non-metal)", "n/a" if r["p_nonmetal"] != r["p_nonmetal"] else f"{r['p_nonmetal']:.0%}")
    c4.metric("Materials Project", f"{r['mp_band_gap']:.2f} eV" if r["in_data"] else "not in the data",
              help=r["mp_label_source"] if r["in_data"] else "novel composition for the bundled data")
    if r["in_data"]:
        st.caption(f"MP value: {r['mp_label_source']}.")
if len(good):
    st.subheader(f"Predictions ({len(good)})")
    st.dataframe(
        good.drop(columns=["error"]), hide_index=True, width="stretch",
        column_config={
            "band_gap_mean": st.column_config.NumberColumn("gap (eV)", format="%.3f"),
            "band_gap_std": st.column_config.NumberColumn("± σ (eV)", format="%.3f"),
            "p_nonmetal": st.column_config.NumberColumn("P(non-metal)", format="%.2f"),
            "mp_band_gap": st.column_config.NumberColumn("MP gap (eV)", format="%.3f"),
            "mp_label_source": st.column_config.TextColumn("MP value is", width="large"),
        },
    )
if len(bad):
    st.warning(f"{plural(len(bad), 'row')} could not be answered:")
    st.dataframe(bad[["input", "error"]], hide_index=True, width="stretch")
st.download_button("Download results (CSV)", rep.to_csv(index=False).encode(), "oracle_predictions.csv",
                   "text/csv", key="dl_oracle")

if len(good):
    st.subheader("Nearest known compositions (Element Mover's Distance)")
    choice = st.selectbox("Neighbours of", good["formula"].tolist(), key="nb_of")
    try:
        st.dataframe(ac.known_data().nearest(choice, k), hide_index=True, width="stretch",
                     column_config={"band_gap": st.column_config.NumberColumn("MP gap (eV)", format="%.3f")})
    except Exception as exc:  # an element off the Pettifor scale, ...
        st.error(f"No neighbours for {choice}: {exc}")
