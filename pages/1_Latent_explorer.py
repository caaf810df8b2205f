"""Latent explorer: the 2-D map of every formula's latent vector, selection, placement, decoding."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import streamlit as st  # noqa: E402

import app_common as ac  # noqa: E402
from wbg_core.app_support import decode_map_points, interpolate, place_formulas, split_formula_text  # noqa: E402
from wbg_core.composition import FormulaError  # noqa: E402

ac.page("Latent explorer", "🗺️")
st.caption("Every encodable Materials Project formula, placed by the first two principal components of "
           "its 128-d autoencoder latent vector and coloured by its band gap. Any point of this plane "
           "decodes back through the autoencoder.")

ae, lm = ac.autoencoder(), ac.latent_map()
if ae is None or lm is None:
    st.stop()
orc = ac.oracle(show=False)
if orc is None:
    st.warning("The oracle is missing: decoded formulas get no predicted gap.")

xy, gaps, names = lm["xy"], lm["band_gap"], lm["formula"]
ev = lm.get("explained_variance", np.array([np.nan, np.nan]))

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

fig = go.Figure()
fig.add_trace(go.Scattergl(
    x=xy[:, 0], y=xy[:, 1], mode="markers", name="MP formulas",
    marker=dict(size=3, color=gaps, colorscale="Viridis", cmin=0, cmax=float(np.nanpercentile(gaps, 99.5)),
                colorbar=dict(title="gap (eV)"), opacity=0.7),
    customdata=np.stack([names, np.round(gaps, 2)], axis=1),
    hovertemplate="%{customdata[0]}<br>gap %{customdata[1]} eV<extra></extra>",
))
ok = placed[placed["error"].isna()] if len(placed) else placed
if len(ok):
    fig.add_trace(go.Scatter(x=ok["x"], y=ok["y"], mode="markers+text", text=ok["formula"], name="placed",
                             textposition="top center",
                             marker=dict(symbol="star", size=16, color="#e4572e", line=dict(width=1, color="white"))))
interp = st.session_state.get("interp")
if isinstance(interp, pd.DataFrame) and len(interp):
    fig.add_trace(go.Scatter(x=interp["x"], y=interp["y"], mode="lines+markers", name="interpolation",
                             marker=dict(size=7, color="#ff9f1c"), line=dict(color="#ff9f1c", dash="dot"),
                             text=interp["formula"].fillna("invalid"), hovertemplate="%{text}<extra></extra>"))
fig.update_layout(height=620, margin=dict(l=10, r=10, t=30, b=10), dragmode="lasso",
                  xaxis_title=f"PC1 ({100 * ev[0]:.0f}% var.)", yaxis_title=f"PC2 ({100 * ev[1]:.0f}% var.)",
                  legend=dict(orientation="h", y=1.04))
event = st.plotly_chart(fig, width="stretch", on_select="rerun", selection_mode=("points", "box", "lasso"),
                        key="map")
st.caption(f"{len(xy):,} formulas · click a point, or drag a box or lasso, to list them.")

sel = []
try:
    sel = [p["point_index"] for p in event.selection.points if p.get("curve_number", 0) == 0]
except (AttributeError, KeyError, TypeError):
    sel = []
if sel:
    idx = np.asarray(sel, int)
    table = pd.DataFrame({"formula": names[idx], "band_gap": gaps[idx].round(3),
                          "x": xy[idx, 0].round(3), "y": xy[idx, 1].round(3)})
    st.subheader(f"Selected ({len(table)})")
    st.dataframe(table.sort_values("band_gap", ascending=False), hide_index=True, width="stretch", height=260)

st.divider()
c1, c2 = st.columns(2)
with c1:
    st.subheader("Decode a point of the map")
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    default = xy[np.argmax(gaps)] if len(sel) == 0 else xy[sel[0]]
    px = st.number_input("x (PC1)", value=float(round(default[0], 3)), step=0.1, key="px")
    py = st.number_input("y (PC2)", value=float(round(default[1], 3)), step=0.1, key="py")
    if st.button("Decode", key="decode"):
        res = decode_map_points(ae, orc, lm, [[px, py]])
        r = res.iloc[0]
        if r["formula"] is None:
            st.warning("This point does not decode to a valid formula (some row of the matrix is ambiguous).")
        else:
            gap = f"{r['band_gap_mean']:.2f} ± {r['band_gap_std']:.2f} eV" if pd.notna(r["band_gap_mean"]) else "no oracle"
            st.success(f"**{r['formula']}** · predicted gap {gap} · SMACT-valid: {bool(r['smact_valid'])}")
        if not (lo[0] <= px <= hi[0] and lo[1] <= py <= hi[1]):
            st.caption("This point lies outside the data's extent: decodes there are less reliable.")
with c2:
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
    if isinstance(interp, pd.DataFrame) and len(interp):
        show = interp.drop(columns=["x", "y"]).copy()
        show["formula"] = show["formula"].fillna("— invalid decode —")
        st.dataframe(show, hide_index=True, width="stretch")
        if st.button("Clear the line", key="clear"):
            del st.session_state["interp"]
            st.rerun()
