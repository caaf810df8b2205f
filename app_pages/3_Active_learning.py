"""Active learning: GP + UCB campaigns in the autoencoder's latent space, labelled by the oracle."""
from __future__ import annotations

import io
import shutil
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import streamlit as st  # noqa: E402

import app_common as ac  # noqa: E402

ac.page("Active learning", "🔁")
st.caption("The paper's loop: encode labelled formulas, fit a Gaussian process on (latent, gap), propose "
           "latent points by UCB (κ), decode them with the autoencoder and label the valid ones with the "
           "oracle. Campaigns live in this browser session's own folder.")

ae, orc = ac.autoencoder(), ac.oracle()
if ae is None or orc is None:
    st.stop()
from wbg_core.engine.campaign import Campaign, CampaignConfig, CampaignError, clean_seeds, pick_seeds  # noqa: E402

home = ac.session_dir()


def labeller(formulas):
    p = orc.predict(list(formulas))
    return p["band_gap_mean"].to_numpy(np.float64), p["band_gap_std"].to_numpy(np.float64)


def _open(directory: Path) -> Campaign:
    return Campaign.load(directory, autoencoder=ae, labeller=labeller)


# ---------------------------------------------------------------- new / reload
tab_new, tab_load = st.tabs(["New campaign", "Reload"])
with tab_new:
    with st.form("new_campaign"):
        a, b, c = st.columns(3)
        objective = a.radio("Objective", ["widest gap", "band-gap window"], key="objective")
        wmin = a.number_input("Hit threshold / window min (eV)", 0.0, 15.0, 5.0, 0.1, key="wmin")
        wmax = a.number_input("Window max (eV; window objective)", 0.0, 15.0, 7.0, 0.1, key="wmax")
        kappa = b.number_input("κ (UCB exploration)", 0.0, 100.0, 10.0, 0.5, key="kappa")
        batch = b.number_input("Batch size (proposals per round)", 1, 100, 10, key="batch")
        n_cand = b.number_input("Candidates ranked per round", 50, 5000, 400, 50, key="n_cand")
        rule = b.selectbox("Decoding rule", ["strict (the paper's)", "argmax"], key="decode_rule",
                           help="strict: a proposal whose decoded matrix has an element row with two counts "
                                "at >= 0.5 is invalid; argmax: each element takes its most likely count")
        seed_kind = c.radio("Seed set", ["random from the data", "gaps below a cut (Exp 4)", "upload CSV"],
                            key="seed_kind")
        n_seeds = c.number_input("Seeds", 2, 2000, 100, key="n_seeds")
        cut = c.number_input("Cut (eV, Exp 4)", 0.1, 10.0, 3.0, 0.1, key="cut")
        upload = c.file_uploader("CSV with formula, band_gap", type=["csv"], key="seed_csv")
        rng_seed = c.number_input("Random seed", 0, 10_000, 0, key="rng_seed")
        create = st.form_submit_button("Start campaign", type="primary")
    if create:
        try:
            if seed_kind == "upload CSV":
                if upload is None:
                    raise CampaignError("upload a CSV with columns formula and band_gap")
                try:
                    raw = pd.read_csv(io.BytesIO(upload.getvalue()), keep_default_na=False, dtype={"formula": str})
                except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
                    raise CampaignError(f"{upload.name} is not a readable CSV: {exc}") from exc
                cols = {k.strip().lower(): k for k in raw.columns}
                if "formula" not in cols or "band_gap" not in cols:
                    raise CampaignError(f"{upload.name} needs columns formula and band_gap, has {list(raw.columns)}")
                seeds = clean_seeds(raw[cols["formula"]], pd.to_numeric(raw[cols["band_gap"]], errors="coerce"))
            else:
                seeds = pick_seeds(int(n_seeds), seed=int(rng_seed),
                                   max_gap=float(cut) if seed_kind.startswith("gaps below") else None)
            cfg = CampaignConfig(objective="max" if objective == "widest gap" else "window",
                                 window_min=float(wmin), window_max=float(wmax) if objective != "widest gap" else None,
                                 kappa=float(kappa), batch_size=int(batch), n_candidates=int(n_cand),
                                 decode_rule=rule.split()[0], seed=int(rng_seed))
            name = time.strftime("campaign-%Y%m%d-%H%M%S")
            camp = Campaign.new(home / name, cfg, seeds["formula"], seeds["band_gap"], autoencoder=ae,
                                labeller=labeller)
            st.session_state["campaign"] = str(home / name)
            st.success(f"Started {name} with {len(camp.seeds)} seeds.")
        except CampaignError as exc:
            st.error(f"Cannot start the campaign: {exc}")
with tab_load:
    mine = sorted([d for d in home.iterdir() if (d / "state.json").exists()], reverse=True)
    if mine:
        pick = st.selectbox("This session's campaigns", [d.name for d in mine], key="reload_pick")
        if st.button("Open", key="reload"):
            st.session_state["campaign"] = str(home / pick)
    else:
        st.caption("No saved campaign in this session yet.")
    up = st.file_uploader("…or upload a campaign zip (from 'Download campaign')", type=["zip"], key="camp_zip")
    if up is not None and st.button("Open the upload", key="open_zip"):
        target = home / f"uploaded-{time.strftime('%H%M%S')}"
        try:
            with zipfile.ZipFile(io.BytesIO(up.getvalue())) as zf:
                for n in zf.namelist():
                    if n.startswith("/") or ".." in Path(n).parts:
                        raise CampaignError(f"unsafe path in the zip: {n}")
                zf.extractall(target)
            _open(target)
            st.session_state["campaign"] = str(target)
        except (zipfile.BadZipFile, CampaignError) as exc:
            shutil.rmtree(target, ignore_errors=True)
            st.error(f"Not a campaign zip: {exc}")

cdir = st.session_state.get("campaign")
if not cdir:
    st.info("Start or reload a campaign.")
    st.stop()
try:
    camp = _open(Path(cdir))
except CampaignError as exc:
    st.error(str(exc))
    st.stop()

# ---------------------------------------------------------------- run
s = camp.status()
st.subheader(f"{Path(cdir).name}")
m = st.columns(4)
m[0].metric("Rounds", s["rounds_done"])
m[1].metric("Best gap", f"{s['best_gap']:.2f} eV", s["best_formula"])
m[2].metric("AL-labelled formulas", s["labelled_al"])
m[3].metric("Hits", s["hits_total"])
r1, r2, r3 = st.columns([1, 1, 2])
n_rounds = r2.number_input("Rounds", 1, 50, 3, key="n_rounds", label_visibility="collapsed")
do_one = r1.button("Step one round", type="primary", key="step")
do_n = r2.button(f"Run {n_rounds} rounds", key="run_n")
if do_one or do_n:
    bar = st.progress(0.0, text="starting…")
    try:
        camp.run(1 if do_one else int(n_rounds), progress_callback=lambda f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg))
        bar.progress(1.0, text="done")
        st.rerun()
    except CampaignError as exc:
        st.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - a failed round keeps the rest of the page
        st.error(f"The round failed: {type(exc).__name__}: {exc}")

hist = camp.history()
if len(hist):
    c1, c2 = st.columns(2)
    with c1:
        fig = go.Figure(go.Scatter(x=hist["round"], y=hist["best_gap"], mode="lines+markers", name="best so far"))
        if "best_gap_round" in hist:
            fig.add_trace(go.Scatter(x=hist["round"], y=hist["best_gap_round"], mode="markers", name="best of round"))
        fig.update_layout(title="Best gap so far", xaxis_title="round", yaxis_title="eV", height=320)
        st.plotly_chart(fig, width="stretch")
    with c2:
        fig = go.Figure(go.Bar(x=hist["round"], y=hist["valid_decode_rate"]))
        fig.update_layout(title="Valid-decode rate of ranked candidates", xaxis_title="round", yaxis_range=[0, 1],
                          height=320)
        st.plotly_chart(fig, width="stretch")
    rnd = st.selectbox("Proposals of round", list(range(len(camp.rounds), 0, -1)), key="show_round")
    st.dataframe(camp.rounds[rnd - 1], hide_index=True, width="stretch", height=260)

    lm = ac.latent_map(show=False)
    if lm is not None:
        rng = np.random.default_rng(0)
        bg = rng.choice(len(lm["xy"]), min(15000, len(lm["xy"])), replace=False)
        fig = go.Figure(go.Scattergl(x=lm["xy"][bg, 0], y=lm["xy"][bg, 1], mode="markers", name="MP formulas",
                                     marker=dict(size=3, color="#cfcfe6"), hoverinfo="skip"))
        sz = (camp.seeds_z - lm["pca_mean"]) @ lm["pca_components"].T
        fig.add_trace(go.Scattergl(x=sz[:, 0], y=sz[:, 1], mode="markers", name="seeds",
                                   marker=dict(size=5, color="#888"), text=camp.seeds["formula"]))
        for r, (df, z) in enumerate(zip(camp.rounds, camp.rounds_z), 1):
            pz = (z - lm["pca_mean"]) @ lm["pca_components"].T
            fig.add_trace(go.Scattergl(x=pz[:, 0], y=pz[:, 1], mode="markers", name=f"round {r}",
                                       marker=dict(size=8, color=r, colorscale="Plasma", cmin=1,
                                                   cmax=max(len(camp.rounds), 2)),
                                       text=[f"{f} {g:.2f} eV" if f else "invalid" for f, g in
                                             zip(df["formula"], df["band_gap"].fillna(0))]))
        fig.update_layout(title="Proposals on the latent map", height=480)
        st.plotly_chart(fig, width="stretch")

d1, d2 = st.columns(2)
with d1:
    exp = camp.export(Path(cdir) / "export.csv")
    st.download_button("Download all points (CSV)", exp.read_bytes(), f"{Path(cdir).name}.csv", "text/csv",
                       key="dl_csv")
with d2:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(Path(cdir).rglob("*")):
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(cdir).parts):
                zf.write(p, p.relative_to(cdir).as_posix())
    st.download_button("Download campaign (zip, reloadable)", buf.getvalue(), f"{Path(cdir).name}.zip",
                       "application/zip", key="dl_zip")
