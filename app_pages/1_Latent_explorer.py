"""Latent explorer: the 2-D map of every formula's latent vector, selection, placement, decoding."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
import streamlit as st

import app_common as ac
from wbg_core.services.figures import gap_bins
from wbg_core.services.inputs import split_formula_text
from wbg_core.composition import FormulaError
from wbg_core.engine.map_decoding import decode_map_points, interpolate, place_formulas, sample_map

ac.page("Latent explorer", "🗺️")
st.caption("Every encodable Materials Project formula, placed by a UMAP of its 128-d autoencoder latent "
           "vector and coloured by its MP band gap (rows from matbench_mp_gap_max carry the largest gap "
           "over MP polymorphs). The axes are UMAP's, in arbitrary units: nearby points have similar latent "
           "codes, while distances between far-apart clusters mean little. A point of the map decodes "
           "through the codes of the 8 formulas nearest to it (an inverse-distance-weighted blend), so "
           "points inside the data's region decode to formulas; see the Models page for how often.")

ae, lm = ac.autoencoder(), ac.latent_map()
if ae is None or lm is None:
    st.stop()
orc = ac.oracle(show=False)
if orc is None:
    st.warning("The oracle is missing: decoded formulas get no predicted gap.")

xy, gaps, names = lm.xy, lm.band_gap, lm.formula
known_set = set(names.tolist())
N_BINS = 24  # colour steps of the map: one single-coloured WebGL trace each


@st.cache_resource(show_spinner="Drawing the latent map…", max_entries=4)
def _base_map(directory: str):
    """The map of every formula, built once per checkpoint: one WebGL trace per gap bin (the
    browser draws single-coloured traces much faster than 60k per-point colours), a colour bar,
    hover formula and gap. Returns the traces, the layout and each bin's point indices."""
    m = ac.latent_map_of(directory)
    bxy, bgap, bname = m.xy, m.band_gap, m.formula
    bins, edges = gap_bins(bgap, N_BINS)
    top = float(edges[-1])
    colours = sample_colorscale("Viridis", [(i + 0.5) / N_BINS for i in range(N_BINS)])
    traces = [go.Scattergl(x=bxy[ix, 0], y=bxy[ix, 1], mode="markers", name="MP formulas", legendgroup="mp",
                           showlegend=i == 0, marker=dict(size=2.5, color=colours[i], opacity=0.75),
                           text=bname[ix].tolist(), customdata=np.round(bgap[ix], 2),
                           hovertemplate="%{text}<br>gap %{customdata:.2f} eV<extra></extra>")
              for i, ix in enumerate(bins)]
    traces.append(go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                             marker=dict(color=[0.0], colorscale="Viridis", cmin=0, cmax=top, showscale=True,
                                         colorbar=dict(title="gap (eV)"))))
    # fixed margins (no automatic expansion): plotly would otherwise draw all points a second
    # time once the colour bar, legend and tick labels have measured themselves
    layout = go.Layout(height=620, margin=dict(l=64, r=90, t=40, b=52, autoexpand=False), dragmode="lasso",
                       clickmode="event", hovermode="closest",
                       xaxis=dict(title="UMAP 1 (arbitrary units)", automargin=False),
                       yaxis=dict(title="UMAP 2 (arbitrary units)", automargin=False),
                       legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0))
    return go.Figure(data=traces, layout=layout), bins


# ---- overlays chosen below are drawn on the map
placed_text = st.text_input("Place formulas on the map (comma-separated)", value=ac.qp("formula", ""),
                            key="place", placeholder="SrYF5, CaF2")
placed = pd.DataFrame()
if placed_text.strip():
    placed = place_formulas(ae, lm, split_formula_text(placed_text))
    for r in placed[placed["error"].notna()].itertuples():
        st.error(f"{r.formula}: {r.error}")
    first_ok = placed[placed["error"].isna()]
    ac.set_qp(formula=first_ok["formula"].iloc[0] if len(first_ok) else None)
else:
    ac.set_qp(formula=None)

base, bins = _base_map(str(ac.model_dir("autoencoder")))
overlays = []  # WebGL too: plotly draws WebGL traces above SVG ones, so SVG stars would hide under the map
ok = placed[placed["error"].isna()] if len(placed) else placed
if len(ok):
    overlays.append(go.Scattergl(x=ok["x"], y=ok["y"], mode="markers", text=ok["formula"], name="placed",
                                 hovertemplate="%{text} (placed)<extra></extra>",
                                 marker=dict(symbol="star", size=16, color="#e4572e",
                                             line=dict(width=1, color="white"))))
interp = st.session_state.get("interp")
if isinstance(interp, pd.DataFrame) and len(interp):
    overlays.append(go.Scattergl(x=interp["x"], y=interp["y"], mode="lines+markers", name="interpolation",
                               marker=dict(size=7, color="#ff9f1c"), line=dict(color="#ff9f1c", dash="dot"),
                               text=interp["formula"].fillna("invalid"), hovertemplate="%{text}<extra></extra>"))
# the cached figure is never changed: st.plotly_chart copies it, overlays go on a new figure
fig = base
if overlays:
    fig = go.Figure(data=[*base.data, *overlays], layout=base.layout)
    # labels of placed formulas as annotations: SVG drawn above the WebGL points, on a white box
    fig.update_layout(annotations=[dict(x=r.x, y=r.y, text=f"<b>{r.formula}</b>", showarrow=True, arrowhead=0,
                                         ax=0, ay=-28, bgcolor="rgba(255,255,255,0.85)", bordercolor="#e4572e",
                                         font=dict(color="#e4572e")) for r in ok.itertuples()])
event = st.plotly_chart(fig, width="stretch", on_select="rerun", selection_mode=("points", "box", "lasso"),
                        key="map")
st.caption(f"{len(xy):,} formulas · click a point, or drag a box or lasso, to list them.")

sel = []
try:
    sel = [int(bins[p["curve_number"]][p["point_index"]]) for p in event.selection.points
           if p.get("curve_number", 0) < len(bins)]
except (AttributeError, KeyError, TypeError, IndexError):
    sel = []
if sel:
    idx = np.asarray(sel, int)
    table = pd.DataFrame({"formula": names[idx], "band_gap": gaps[idx].round(3),
                          "x": xy[idx, 0].round(3), "y": xy[idx, 1].round(3)})
    st.subheader(f"Selected ({len(table)})")
    st.dataframe(table.sort_values("band_gap", ascending=False), hide_index=True, width="stretch", height=260)

st.divider()
c1, c2 = st.columns(2)


@st.fragment
def _decode_panel(default) -> None:
    """Decoding reruns only this panel: the map above is not sent again."""
    st.subheader("Decode a point of the map")
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    if "px" not in st.session_state:  # first view: the widest-gap formula; later the first selected point
        st.session_state["px"], st.session_state["py"] = (float(round(v, 3)) for v in default)
    px = st.number_input("x (UMAP 1)", step=0.1, key="px")
    py = st.number_input("y (UMAP 2)", step=0.1, key="py")
    if st.button("Decode", key="decode"):
        res = decode_map_points(ae, orc, lm, [[px, py]])
        r = res.iloc[0]
        if r["formula"] is None:
            st.warning("This point does not decode to a valid formula (some row of the matrix is ambiguous).")
        else:
            gap = f"{r['band_gap_mean']:.2f} ± {r['band_gap_std']:.2f} eV" if pd.notna(r["band_gap_mean"]) else "no oracle"
            known = "in the MP data" if r["formula"] in known_set else "new (not in the MP data)"
            st.success(f"**{r['formula']}** · predicted gap {gap} · {known} · "
                       f"{'a compound (passes the validity rule)' if r['compound_valid'] else 'fails the validity rule'}")
        if not (lo[0] <= px <= hi[0] and lo[1] <= py <= hi[1]):
            st.caption("This point lies outside the data's extent: it decodes like the nearest edge of the map.")
    if st.button("Decode 20 random points of the map", key="decode_random"):
        st.session_state["random_decodes"] = sample_map(ae, lm, 20, seed=int(np.random.default_rng().integers(1e6)))
    rnd = st.session_state.get("random_decodes")
    if isinstance(rnd, pd.DataFrame):
        st.caption(f"{rnd['valid'].mean():.0%} decode to a formula, {rnd['compound_valid'].mean():.0%} to a "
                   "compound; x_back, y_back: where the decoded formula re-encodes to.")
        st.dataframe(rnd.round(3), hide_index=True, width="stretch", height=240)


@st.fragment
def _interpolate_panel() -> None:
    """Editing the inputs reruns only this panel; a new or cleared line redraws the whole page."""
    st.subheader("Interpolate between two formulas")
    a = st.text_input("From", value="NaCl", key="from")
    b = st.text_input("To", value="SrYF5", key="to")
    steps = st.slider("Points on the line", 3, 30, 10, key="steps")
    if st.button("Interpolate", key="interp_btn"):
        try:
            st.session_state["interp"] = interpolate(ae, orc, lm, a, b, steps)
            st.rerun()
        except FormulaError as exc:
            st.error(f"Cannot interpolate: {exc}")
    line = st.session_state.get("interp")
    if isinstance(line, pd.DataFrame) and len(line):
        show = line.drop(columns=["x", "y"]).copy()
        show["formula"] = show["formula"].fillna("— invalid decode —")
        st.dataframe(show, hide_index=True, width="stretch")
        if st.button("Clear the line", key="clear"):
            del st.session_state["interp"]
            st.rerun()


if sel and st.session_state.get("_sel_first") != sel[0]:
    # a new selection: the decode panel moves to its first point (the inputs are keyed widgets)
    st.session_state["_sel_first"] = sel[0]
    st.session_state["px"], st.session_state["py"] = (float(round(v, 3)) for v in xy[sel[0]])
with c1:
    _decode_panel(xy[np.argmax(gaps)])
with c2:
    _interpolate_panel()
