"""Active learning: GP + UCB campaigns in the autoencoder's latent space, labelled by the oracle or by your own DFT."""
from __future__ import annotations

import io
import logging
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import app_common as ac

ac.page("Active learning", "🔁")
st.caption("The paper's loop: encode labelled formulas, fit a Gaussian process on (latent, gap), propose "
           "latent points by UCB (κ), decode them with the autoencoder and label the valid ones with the "
           "oracle, or export them for your own DFT and import the gaps you computed. Each campaign is saved after every round under an unguessable id that the address bar "
           "holds: reload the page or open the link in another tab to come back to it.")

ae, orc = ac.autoencoder(), ac.oracle()
if ae is None or orc is None:
    st.stop()
from wbg_core.services.campaigns import (
    CampaignLinkError, campaign_folder, campaign_summary, campaign_zip, import_campaign_zip, new_campaign_id,
    parse_campaign_ids, public_message, write_campaign_label)
from wbg_core.services.inputs import plural
from wbg_core.engine.campaign import (
    Campaign, CampaignBusy, CampaignConfig, CampaignDamaged, CampaignError, clean_seeds, model_labeller, pick_seeds)
from wbg_core.engine.campaign_labels import pending_rows, read_labels, round_zip

root = ac.campaigns_root()
ac.clean_campaigns()
log = logging.getLogger("wbg.app.active_learning")


labeller = model_labeller(orc)  # the page's oracle; also an external campaign's provisional gaps


def _open(directory: Path) -> Campaign:
    return Campaign.load(directory, autoencoder=ae, labeller=labeller)


# ---------------------------------------------------------------- which campaign: the URL, else this session
listed, malformed = parse_campaign_ids(ac.qp("mine"))
gone = 0
for cid in listed:
    try:
        campaign_folder(root, cid)
        if cid not in ac.browser_campaigns():
            ac.remember_campaign(cid)
    except CampaignLinkError:
        gone += 1
if malformed:
    st.warning(f"Link parameter mine: {', '.join(repr(b) for b in malformed)} "
               f"{'is not a campaign id' if len(malformed) == 1 else 'are not campaign ids'}; ignored.")
if gone:
    st.caption(f"{plural(gone, 'campaign')} of this link's list no longer exist on this server.")
current = None
link_id = ac.qp("campaign")
if link_id:
    try:
        campaign_folder(root, link_id)
        current = link_id
    except CampaignLinkError as exc:
        st.error(f"The campaign in this link cannot be opened: {exc}. Start a new one below.")
elif st.session_state.get("campaign_id") in ac.browser_campaigns():  # back from another page
    current = st.session_state["campaign_id"]

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
        who = a.radio("Labels", ["the oracle (ML stand-in for DFT)", "my own DFT (export, compute, import)"],
                      key="labeller", help="your own DFT: each round's proposals wait for the gaps you compute; the "
                                           "oracle's value is shown as a provisional label and enters the GP only "
                                           "when you ask")
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
                                 decode_rule=rule.split()[0], seed=int(rng_seed),
                                 labeller="external" if who.startswith("my own") else "oracle")
            name = time.strftime("campaign-%Y-%m-%d %H:%M:%S")
            cid = new_campaign_id()
            folder = campaign_folder(root, cid, must_exist=False)
            camp = Campaign.new(folder, cfg, seeds["formula"], seeds["band_gap"], autoencoder=ae,
                                labeller=labeller)
            write_campaign_label(folder, name)
            current = cid
            st.success(f"Started {name} with {plural(len(camp.seeds), 'seed')}.")
        except CampaignError as exc:
            st.error(f"Cannot start the campaign: {exc}")
with tab_load:
    summaries = {}
    for cid in reversed(ac.browser_campaigns() + ([current] if current else [])):
        try:
            summaries.setdefault(cid, campaign_summary(campaign_folder(root, cid)))
        except CampaignLinkError:  # removed since this browser saw it
            pass
    if summaries:
        pick = st.selectbox("This browser's campaigns", list(summaries), key="reload_pick",
                            format_func=lambda i: f"{summaries[i]['name']} · {plural(summaries[i]['rounds'], 'round')}"
                                                  f" · id {i[:6]}…")
        if st.button("Open", key="reload"):
            current = pick
    else:
        st.caption("No campaign in this browser yet: start one, or open a campaign's link.")
    st.caption("Only the campaigns this browser started or was given a link to are listed. Anyone with a "
               "campaign's link can open it; campaigns that never completed a round are removed after a day.")
    up = st.file_uploader("…or upload a campaign zip (from 'Download campaign')", type=["zip"], key="camp_zip")
    if up is not None and st.button("Open the upload", key="open_zip"):
        cid = new_campaign_id()
        try:
            import_campaign_zip(up.getvalue(), root, cid, label=f"uploaded {Path(up.name).stem}")
            current = cid
        except CampaignError as exc:
            st.error(f"Cannot open the upload: {exc}")
        except Exception:  # noqa: BLE001 - the details are for the server log, not the page
            log.exception("campaign zip upload %s failed", cid)
            st.error("Cannot open the upload: the server could not unpack it (the details are in its log).")

if current is None:
    st.info("Start or reload a campaign.")
    st.stop()
ac.open_campaign(current)
ac.set_qp(campaign=current, mine=",".join(ac.browser_campaigns()))
cdir = st.session_state["campaign"]
try:
    camp = _open(Path(cdir))
except CampaignError as exc:
    st.error(public_message(exc, Path(cdir)))
    st.stop()

# ---------------------------------------------------------------- run
s = camp.status()
label = campaign_summary(Path(cdir))["name"]
st.subheader(label)
st.caption(f"Campaign id `{current}` · this page's address reopens it")
hit_rule = (f"in [{camp.config.window_min:g}, {camp.config.window_max:g}] eV" if camp.config.objective == "window"
            else f"≥ {camp.config.window_min:g} eV")
m = st.columns(4)
m[0].metric("Rounds", s["rounds_done"])
with m[1]:
    st.metric("Best gap", f"{s['best_gap']:.2f} eV", help="the widest labelled gap so far, seeds included")
    st.caption(f"of {s['best_formula']}")
m[2].metric("AL-labelled formulas", s["labelled_al"])
m[3].metric("Hits", s["hits_total"], help=f"proposed compounds (the project's validity rule) with a gap {hit_rule}")
external = camp.config.labeller == "external"
if external:
    st.caption(f"Labelled by your own DFT: {plural(s['pending'], 'proposal')} pending, {s['dft_labelled']} with "
               "imported DFT gaps. The GP trains on the seeds and your DFT gaps; a pending row shows the oracle's "
               "provisional gap.")
r1, r2, r3 = st.columns([1, 1, 2])
n_rounds = r2.number_input("Rounds", 1, 50, 3, key="n_rounds", label_visibility="collapsed")
do_one = r1.button("Step one round", type="primary", key="step")
do_n = r2.button(f"Run {n_rounds} rounds", key="run_n")
use_prov = external and r3.checkbox("Train on the oracle's provisional gaps of pending rows too", key="use_provisional",
                                    help="they are marked 'oracle (provisional, used on request)' in that fit and "
                                         "stay pending until you import their DFT gaps")
if do_one or do_n:
    bar = st.progress(0.0, text="starting…")
    try:
        camp.run(1 if do_one else int(n_rounds), use_provisional=use_prov,
                 progress_callback=lambda f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg))
        bar.progress(1.0, text="done")
        st.rerun()
    except CampaignError as exc:  # the budget is spent, another session is stepping it, damage
        st.error(public_message(exc, Path(cdir)))
    except Exception as exc:  # noqa: BLE001 - a failed round keeps the rest of the page
        log.exception("campaign %s: a round failed", current)
        st.error(f"The round failed: {type(exc).__name__}: {public_message(exc, Path(cdir))}")

if external and camp.rounds:
    st.markdown("#### Your DFT")
    if "_labels_msg" in st.session_state:
        st.success(st.session_state.pop("_labels_msg"))
    e1, e2 = st.columns(2)
    with e1:
        exp_round = st.selectbox("Round to export", list(range(len(camp.rounds), 0, -1)), key="export_round")
        if st.button("Prepare its DFT inputs", key="prep_export",
                     help="per formula: a predicted structure (CIF) and its VASP and Quantum ESPRESSO inputs"):
            with st.spinner("predicting structures and writing DFT inputs…"):
                try:
                    st.session_state["_round_zip"] = (current, exp_round, *round_zip(camp, int(exp_round)))
                except CampaignError as exc:
                    st.error(public_message(exc, Path(cdir)))
        ready = st.session_state.get("_round_zip")
        if ready and ready[:2] == (current, exp_round):
            st.download_button(f"Download round {exp_round} for DFT (zip)", ready[2], ready[3], "application/zip",
                               key="dl_round")
    with e2:
        up_labels = st.file_uploader("Import DFT labels: a CSV of formula, band_gap (eV)", type=["csv"],
                                     key="labels_csv")
        replace = st.checkbox("Replace DFT gaps imported before", key="replace_labels")
        if st.button("Import DFT labels", key="import_labels", disabled=up_labels is None):
            try:
                rep = camp.import_labels(read_labels(up_labels.getvalue(), up_labels.name), replace=replace)
                st.session_state["_labels_msg"] = (
                    f"Imported {plural(rep['labelled'], 'DFT gap')} from {up_labels.name}"
                    + (f", replaced {rep['replaced']}" if rep["replaced"] else "") + f"; {rep['pending']} pending.")
                st.rerun()
            except (CampaignBusy, CampaignDamaged) as exc:
                st.error(public_message(exc, Path(cdir)))
            except CampaignError as exc:  # the file's own problems: its name and line, no server path
                st.error(str(exc))
    pend = pending_rows(camp)
    if len(pend):
        with st.expander(f"Pending proposals ({len(pend)})"):
            st.dataframe(pend, hide_index=True, width="stretch")

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
    newest = len(camp.rounds)
    if st.session_state.get("_show_round_of") != (current, newest):  # a new round or campaign: show the newest
        st.session_state["_show_round_of"] = (current, newest)
        st.session_state["show_round"] = newest
    rnd = st.selectbox("Proposals of round", list(range(newest, 0, -1)), key="show_round")
    st.dataframe(camp.rounds[rnd - 1], hide_index=True, width="stretch", height=260)

    lm = ac.latent_map(show=False)
    if lm is not None:
        rng = np.random.default_rng(0)
        bg = rng.choice(len(lm.xy), min(15000, len(lm.xy)), replace=False)
        fig = go.Figure(go.Scattergl(x=lm.xy[bg, 0], y=lm.xy[bg, 1], mode="markers", name="MP formulas",
                                     marker=dict(size=3, color="#cfcfe6"), hoverinfo="skip"))
        sz = lm.place_latents(camp.seeds_z)
        fig.add_trace(go.Scattergl(x=sz[:, 0], y=sz[:, 1], mode="markers", name="seeds",
                                   marker=dict(size=5, color="#888"), text=camp.seeds["formula"]))
        for r, (df, z) in enumerate(zip(camp.rounds, camp.rounds_z), 1):
            pz = lm.place_latents(z)
            fig.add_trace(go.Scattergl(x=pz[:, 0], y=pz[:, 1], mode="markers", name=f"round {r}",
                                       marker=dict(size=8, color=r, colorscale="Plasma", cmin=1,
                                                   cmax=max(len(camp.rounds), 2)),
                                       text=[(f"{f} {g:.2f} eV" if np.isfinite(g) else f"{f} pending DFT")
                                             if f else "invalid" for f, g in
                                             zip(df["formula"], df["band_gap"].fillna(np.nan if external else 0))]))
        fig.update_layout(title="Proposals on the latent map", height=480)
        st.plotly_chart(fig, width="stretch")

d1, d2 = st.columns(2)
with d1:
    exp = camp.export(Path(cdir) / "export.csv")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-") or "campaign"
    st.download_button("Download all points (CSV)", exp.read_bytes(), f"{stem}.csv", "text/csv",
                       key="dl_csv")
with d2:
    st.download_button("Download campaign (zip, reloadable)", campaign_zip(Path(cdir)), f"{stem}.zip",
                       "application/zip", key="dl_zip")
