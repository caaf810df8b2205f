"""Band-gap window: screen generated compositions for a gap window, with filters and a model choice."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import plotly.graph_objects as go  # noqa: E402
import streamlit as st  # noqa: E402

import app_common as ac  # noqa: E402
from wbg_core.app_support import forest_on, screen_window, split_formula_text  # noqa: E402

ac.page("Band-gap window", "🎯")
st.caption("Sample a generator, keep compositions that pass the filters, label them with a "
           "screening model and rank by the probability that the gap lies in the window "
           "(normal with the model's mean and σ).")

GENERATORS = {
    "GAN (the paper's MATGAN route)": ac.gan,
    "autoencoder latent sampling (the AL search space)": ac.latent_sampler,
}

lo0, hi0 = ac.qp_float("gap_min", 3.0), ac.qp_float("gap_max", 5.0)
if not 0 <= lo0 < hi0 <= 15:
    st.warning(f"The window in the link ({lo0}, {hi0}) eV is not valid; using 3–5 eV.")
    lo0, hi0 = 3.0, 5.0
with st.form("screen"):
    a, b, c = st.columns(3)
    with a:
        window = st.slider("Band-gap window (eV)", 0.0, 12.0, (lo0, hi0), 0.1, key="window")
        open_top = st.checkbox("No upper bound (widest gaps)", False, key="open_top")
        p_thr = st.slider("Minimum probability in window", 0.0, 1.0, 0.5, 0.05, key="p_thr")
    with b:
        require = st.text_input("Must contain (elements)", "", key="require", placeholder="F, Sr")
        exclude = st.text_input("Must not contain", "", key="exclude", placeholder="Pb, Hg, Cd")
        max_atoms = st.number_input("Max atoms per formula unit", 2, 40, 7, key="max_atoms")
        max_el = st.number_input("Max elements", 2, 8, 3, key="max_el")
    with c:
        novel = st.checkbox("Novel only (not in the MP data)", True, key="novel")
        smact = st.checkbox("SMACT-valid only", True, key="smact")
        pool = st.select_slider("Generator samples", [2_000, 10_000, 50_000, 200_000], value=10_000, key="pool")
        models = ["oracle (Roost ensemble)", "random forest on random MP data", "random forest on my AL campaign"]
        model_name = st.selectbox("Screening model", models, key="model")
        gen_name = st.selectbox("Generator", list(GENERATORS), key="generator")
        seed = st.number_input("Seed", 0, 10_000, 0, key="seed")
    go_btn = st.form_submit_button("Screen", type="primary")

if go_btn:
    ac.set_qp(gap_min=window[0], gap_max=None if open_top else window[1])
    req = tuple(split_formula_text(require.replace(" ", ",")))
    exc = tuple(split_formula_text(exclude.replace(" ", ",")))
    bar = st.progress(0.0, text="starting…")
    try:
        gan = GENERATORS[gen_name]()
        if gan is None:
            st.stop()
        if model_name.startswith("oracle"):
            model = ac.oracle()
        elif "random MP" in model_name:
            from wbg_core.engine.campaign import pick_seeds

            bar.progress(0.0, text="fitting a random forest on 1,000 random MP formulas")
            train = pick_seeds(1000, seed=int(seed), subset="full")
            model = forest_on(train["formula"], train["band_gap"], seed=int(seed))
        else:
            cdir = st.session_state.get("campaign")
            if not cdir:
                raise ValueError("no active-learning campaign in this session: start one on the Active learning page")
            from wbg_core.engine.campaign import Campaign

            lab = Campaign.load(cdir, autoencoder=ac.autoencoder(show=False)).labelled()
            model = forest_on(lab["formula"], lab["band_gap"], seed=int(seed))
        if model is None:
            st.stop()
        cand, pool_df, funnel = screen_window(
            gan, model, min_gap=window[0], max_gap=None if open_top else window[1], pool=int(pool), seed=int(seed),
            p_threshold=p_thr, max_atoms=int(max_atoms), max_elements=int(max_el), require=req, exclude=exc,
            novel_only=novel, smact_only=smact, progress=lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=m))
        st.session_state["screen_result"] = {"cand": cand, "pool": pool_df, "funnel": funnel,
                                      "window": (window[0], None if open_top else window[1]), "model": model_name}
        bar.empty()
    except ValueError as err:  # ScreenError and bad inputs
        bar.empty()
        st.error(f"Screening failed: {err}")
    except Exception as err:  # noqa: BLE001
        bar.empty()
        st.error(f"Screening failed: {type(err).__name__}: {err}")

res = st.session_state.get("screen_result")
if not res:
    st.info("Set a window and press Screen.")
    st.stop()
cand, pool_df, funnel, (wlo, whi) = res["cand"], res["pool"], res["funnel"], res["window"]
st.caption("Funnel: " + " → ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in funnel.items())
           + f" · model: {res['model']}")

left, right = st.columns([3, 2])
with right:
    fig = go.Figure(go.Histogram(x=pool_df["band_gap_mean"], nbinsx=60, name="pool", marker_color="#8c7ae6"))
    fig.add_vrect(x0=wlo, x1=whi if whi is not None else max(pool_df["band_gap_mean"].max(), wlo + 1),
                  fillcolor="#2ecc71", opacity=0.2, line_width=0, annotation_text="window")
    fig.update_layout(title=f"Predicted gaps of the screened pool ({len(pool_df):,})", xaxis_title="gap (eV)",
                      yaxis_title="formulas", height=380, showlegend=False)
    st.plotly_chart(fig, width="stretch")
with left:
    st.subheader(f"{len(cand):,} candidates")
    if len(cand) == 0:
        st.warning("No candidate passed: widen the window, lower the probability, relax the filters or grow the pool.")
    else:
        ev = st.dataframe(
            cand, hide_index=True, width="stretch", height=380, on_select="rerun", selection_mode="multi-row",
            key="cand_table",
            column_config={"band_gap_mean": st.column_config.NumberColumn("gap (eV)", format="%.2f"),
                           "band_gap_std": st.column_config.NumberColumn("± σ", format="%.2f"),
                           "p_in_window": st.column_config.ProgressColumn("P(in window)", min_value=0, max_value=1,
                                                                          format="%.2f")})
        rows = list(ev.selection.rows) if ev is not None else []
        chosen = cand.iloc[rows]["formula"].tolist()
        c1, c2 = st.columns(2)
        if c1.button(f"Send {len(chosen)} selected to Structures", disabled=not chosen, key="send"):
            ac.send_candidates(chosen)
            # the structure page opens on the first one, shown as picked in its candidate list
            st.session_state["struct_formula"] = chosen[0]
            st.session_state["cand_pick"] = st.session_state["_last_pick"] = chosen[0]
            st.switch_page("app_pages/5_Structures.py")
        c2.download_button("Download the table (CSV)", cand.to_csv(index=False).encode(), "window_candidates.csv",
                           "text/csv", key="dl_cand")
