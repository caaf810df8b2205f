"""The wide band-gap discovery studio (`streamlit run app.py`): the page list (st.navigation,
built from app_common.PAGES; URLs /Latent_explorer, /Oracle, ... as before) and the Home page."""
from __future__ import annotations

import streamlit as st

import app_common as ac
from wbg_core.services.status import data_status, model_status

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

# a first visit's path through the app: (page url, query parameters, what to do there)
START = [
    ("Oracle", {"formula": "SrYF5"}, "Ask for the band gap of a formula you know: SrYF5 opens ready, MP value beside it."),
    ("Band_gap_window", {"gap_min": "5", "pool": "2000"},
     "Screen 2,000 generated compositions for gaps of 5 eV and more (the link runs it)."),
    ("Structures", None, "Tick candidates on the window page and send them here: template structure in 3D, "
                         "CHGNet energies, CIF download."),
    ("Active_learning", None, "Run the paper's search yourself: start a small campaign and step a few rounds."),
]


def home() -> None:
    """The Home page: what the app does, links to every page, status of checkpoints and data."""
    ac.page("Wide band-gap discovery studio", "💎")

    st.markdown(
        "Search composition space for **wide band-gap materials** the way Xin et al. (J. Phys. Chem. C "
        "2021) did: an autoencoder maps formulas to a latent space, Gaussian-process active learning "
        "with a band-gap oracle proposes new formulas there, and screening, template structures and "
        "CHGNet turn the best of them into candidate crystals you can download.  \n"
        "Every page drives the same core package (`wbg_core`) the command line uses."
    )

    st.subheader("Start here")
    by_url = {p.url: p for p in ac.PAGES}
    cols = st.columns(len(START))
    for i, (col, (url, query, what)) in enumerate(zip(cols, START), start=1):
        with col:
            p = by_url[url]
            st.page_link(p.path, label=f"{i}. {p.title}", icon=p.icon, query_params=query)
            st.caption(what)
    rest = [p for p in ac.PAGES if p.url not in {u for u, _, _ in START}]
    more = st.columns(len(rest) + 2)
    more[0].caption("Also:")
    for col, p in zip(more[1:], rest):
        with col:
            st.page_link(p.path, label=p.title, icon=p.icon, help=p.blurb)

    st.graphviz_chart(PIPELINE, width="stretch")

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


st.navigation(
    [st.Page(home, title="Home", icon=":material/home:", default=True)]
    + [st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url) for p in ac.PAGES]
).run()
