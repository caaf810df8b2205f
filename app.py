"""Home page of the wide band-gap discovery studio (`streamlit run app.py`)."""
from __future__ import annotations

import streamlit as st

import app_common as ac
from wbg_core.app_support import data_status, model_status

ac.page("Wide band-gap discovery studio", "💎")

st.markdown(
    "Search composition space for **wide band-gap materials** the way Xin et al. (J. Phys. Chem. C "
    "2021) did: an autoencoder maps formulas to a latent space, Gaussian-process active learning "
    "with a band-gap oracle proposes new formulas there, and screening, template structures and "
    "CHGNet turn the best of them into candidate crystals you can download.  \n"
    "Every page below drives the same core package (`wbg_core`) the command line uses."
)

PIPELINE = """
digraph {
  rankdir=LR; bgcolor="transparent";
  node [shape=box, style="rounded,filled", fillcolor="#efeafc", color="#6b4bd6", fontname="Helvetica", fontsize=11];
  edge [color="#6b4bd6"];
  mp [label="Materials Project\\n89,885 formulas", fillcolor="#e6f2ff"];
  ae [label="Autoencoder\\n87×8 → 128-d latent"];
  al [label="Active learning\\nGP + UCB in latent space"];
  or [label="Oracle\\nRoost ensemble: gap ± σ"];
  gan [label="Generator\\n(MATGAN)"];
  scr [label="Window screening"];
  st [label="Structures\\nEMD template + CHGNet → CIF", fillcolor="#e9f7ef"];
  mp -> ae -> al; or -> al [label=" labels", fontsize=9]; al -> scr [label=" AL data", fontsize=9];
  gan -> scr; or -> scr; scr -> st; al -> st;
}
"""
st.graphviz_chart(PIPELINE, width="stretch")

st.subheader("Pages")
cols = st.columns(3)
links = [
    ("pages/1_Latent_explorer.py", "Latent explorer", ":material/scatter_plot:", "the map of all formulas, decoding and interpolation"),
    ("pages/2_Oracle.py", "Oracle", ":material/bolt:", "band gap ± uncertainty of any formulas, with known neighbours"),
    ("pages/3_Active_learning.py", "Active learning", ":material/autorenew:", "GP + UCB campaigns in the latent space"),
    ("pages/4_Band_gap_window.py", "Band-gap window", ":material/filter_alt:", "screen generated formulas for a gap window"),
    ("pages/5_Structures.py", "Structures", ":material/deployed_code:", "template structures in 3D, CHGNet, CIF downloads"),
    ("pages/6_Models.py", "Models", ":material/monitoring:", "model cards, diagnostics, retraining"),
]
for i, (path, label, icon, text) in enumerate(links):
    with cols[i % 3]:
        st.page_link(path, label=label, icon=icon)
        st.caption(text)

st.subheader("Status")
st.caption(f"Checkpoint set in use: **{ac.active_label()}**")
mcols = st.columns(3)
for col, m in zip(mcols, model_status(ac.model_dirs())):
    with col:
        if not m["ok"]:
            st.error(f"**{m['model']}**: {m['error']}")
            continue
        st.markdown(f"**{m['model']}** · trained {m['created'] or '?'} · {m['epochs']} epochs")
        for label, value in list(m["metrics"].items())[:2]:
            st.metric(label, value)

with st.expander("Bundled data"):
    st.dataframe(data_status(), hide_index=True, width="stretch")

st.divider()
st.caption(
    "Band gaps, formation energies and crystal structures: **Materials Project** "
    "(Jain et al., APL Materials 1, 011002, 2013), used under "
    "[CC-BY 4.0](https://creativecommons.org/licenses/by/4.0/) — see `data/SOURCES.md`. "
    "Method: Xin et al., J. Phys. Chem. C 2021 (arXiv 2103.00608); MATGAN: Dan et al., npj Comput. Mater. 2020."
)
