"""Models: model cards with diagnostic figures, checkpoint sets, retraining in the background."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

import app_common as ac
from wbg_core.data.provenance import EXPLANATION
from wbg_core.models.oracle_eval import classic_verdict
from wbg_core.services.figures import calibration_curve, generator_vs_data, oracle_test_predictions
from wbg_core.services.jobs import (
    JobError, PublicModeError, cancel_job, job_log, job_running, job_status, progress_bar, running_job,
)
from wbg_core.services.status import head_summary, headline_metrics, model_status, read_card
from wbg_core.settings import get_settings

ac.page("Models", "📈")

# ---------------------------------------------------------------- which checkpoints the app uses
if ac.public():
    st.info("This server is in public mode: every page uses the shipped checkpoints, and retraining and "
            "switching checkpoints are turned off.", icon=":material/public:")
else:
    sets = ac.checkpoint_sets()
    labels = list(sets)
    cur = ac.active_label() if ac.active_label() in sets else "shipped"
    if st.session_state.get("_set_shown") != cur or st.session_state.get("set") not in labels:
        # the selector follows the set in use when it changed elsewhere (another session)
        st.session_state["set"] = st.session_state["_set_shown"] = cur
    c1, c2 = st.columns([3, 1])
    with c1:
        choice = st.selectbox("Checkpoint set used by the whole app", labels, key="set",
                              help="'shipped' is models/; the others were trained from this page (Retrain tab) "
                                   "and chosen for the app by the visitor who trained them. A set that lacks a "
                                   "model falls back to the shipped one.")
    with c2:
        st.write("")
        if st.button("Use this set", disabled=choice == cur, key="use_set"):
            try:
                ac.set_active(choice)
            except (JobError, PublicModeError) as exc:
                st.error(str(exc))
            else:
                st.rerun()
    st.caption(f"In use: **{ac.active_label()}**")

dirs = ac.model_dirs()
status = {m["model"]: m for m in model_status(dirs)}


for s_ in status.values():  # missing or broken checkpoints, whichever tab is open
    if not s_["ok"]:
        st.error(f"{s_['model']}: {s_['error']}")


@st.cache_data(show_spinner="Evaluating the oracle on the test split…", max_entries=4)
def _oracle_eval(directory: str, limit: int | None):
    return oracle_test_predictions(ac.oracle(show=False), limit=limit, data=ac.bandgaps())


@st.cache_data(show_spinner="Sampling the generator…", max_entries=4)
def _gan_freq(directory: str, n: int):
    return generator_vs_data(ac.gan(show=False), n=n)


def _card(name: str):
    s = status[name]
    if not s["ok"]:
        st.caption(f"No usable {name} checkpoint (see the error above).")
        return None
    card = read_card(dirs[name])
    cols = st.columns(max(len(s["metrics"]), 1) + 1)
    cols[0].metric("trained", s["created"] or "?", help=s["device"])
    for col, (k, v) in zip(cols[1:], s["metrics"].items()):
        col.metric(k, v)
    st.markdown(f"**Data**: `{(card.get('data') or {}).get('file')}` · split {card.get('split')}  \n"
                f"**Training command**: `{card.get('command') or 'python -m wbg_core train ' + name}`  \n"
                + (f"**Metrics re-measured by**: `{card['evaluation'].get('command')}` "
                   f"({card['evaluation'].get('date', '')[:10]}; the training run's are in the full card)  \n"
                   if card.get("evaluation") else "")
                + "".join(f"**{label} trained by** (taken from that run): `{card[key].get('command')}`  \n"
                          for key, label in (("full_members_from", "Full members"),
                                             ("nonmetal_members_from", "Non-metal members"))
                          if isinstance(card.get(key), dict) and card[key].get("command"))
                + (f"**Head (P(non-metal), conformal σ) fitted by**: `{card['head'].get('command')}`  \n"
                   if isinstance(card.get("head"), dict) else "")
                + (f"**Head**: {summary}  \n" if (summary := head_summary(card)) else "")
                + f"**Directory**: `{ac.shown_path(dirs[name])}`")
    with st.expander("Full card (card.json)"):
        st.json({k: v for k, v in card.items() if k != "history"}, expanded=False)
    hist = card.get("history")
    if hist:
        runs = hist if isinstance(hist[0], list) else [hist]  # the oracle keeps one history per member
        with st.expander("Training curve"):
            fig = go.Figure()
            for r, run in enumerate(runs):
                if not run or not isinstance(run[0], dict):
                    continue
                keys = [k for k in run[0] if k != "epoch" and isinstance(run[0][k], (int, float))]
                for k in keys:
                    fig.add_trace(go.Scatter(x=[h.get("epoch") for h in run], y=[h.get(k) for h in run],
                                             name=f"{k}" + (f" (member {r})" if len(runs) > 1 else "")))
            fig.update_layout(height=300, xaxis_title="epoch", margin=dict(t=20))
            st.plotly_chart(fig, width="stretch")
    return card


# only the open tab runs (the oracle's test evaluation is the slow part); ?tab=Retrain opens that one
# (no Retrain tab in public mode: ?tab=Retrain then opens the first tab)
tab_or, tab_ae, tab_gan, *tab_train = st.tabs(["Oracle", "Autoencoder", "Generator"] + ([] if ac.public() else ["Retrain"]),
                                              key="tab", bind="query-params")
with tab_or:
    if tab_or.open is not False and _card("oracle") is not None:
        n = st.select_slider("Test formulas to evaluate (a random sample of the test split)",
                             [1000, 3000, 10000, "all"], value=3000, key="n_test")
        try:
            metrics, ev = _oracle_eval(str(dirs["oracle"]), None if n == "all" else int(n))
        except Exception as exc:  # noqa: BLE001 - shown, the rest of the page keeps working
            st.error(f"Evaluation failed: {exc}")
            ev = None
        if ev is not None:
            smp = metrics["sample"]
            n_label = f"n={smp['n']:,} of {smp['of']:,} test formulas" + (
                f", random sample (seed {smp['random_seed']})" if smp.get("random_seed") is not None else "")
            st.caption(f"Measured now on {n_label}, by the same function as the card (whole split) and "
                       "`wbg bench oracle`. σ was calibrated on the validation split only.")
            err = ev["band_gap_mean"] - ev["band_gap"]
            a, b, c = st.columns(3)
            with a:
                top = float(max(ev["band_gap"].max(), ev["band_gap_mean"].max()))
                fig = px.scatter(ev, x="band_gap", y="band_gap_mean", opacity=0.4, hover_name="formula",
                                 labels={"band_gap": "MP gap (eV)", "band_gap_mean": "predicted (eV)"},
                                 title=f"Parity (n={smp['n']:,}), MAE {np.abs(err).mean():.3f} eV",
                                 render_mode="webgl")
                fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", line=dict(color="grey", dash="dash"),
                                         showlegend=False))
                st.plotly_chart(fig, width="stretch")
            bins = [r for r in metrics["by_predicted_gap"] if r["n"]]
            with b:
                fig = go.Figure()
                fig.add_trace(go.Bar(x=[r["bin"] for r in bins], y=[r["within_1_sigma"] for r in bins],
                                     name="within ±1σ", text=[f"{r['within_1_sigma']:.0%}" for r in bins]))
                fig.add_hrect(y0=0.60, y1=0.78, fillcolor="green", opacity=0.12, line_width=0)
                fig.add_hline(y=0.683, line_dash="dash", line_color="grey")
                fig.update_layout(title="±1σ coverage (green: 60-78%)", yaxis_range=[0, 1],
                                  xaxis_title="predicted gap (eV)", yaxis_title="share of formulas", height=380)
                st.plotly_chart(fig, width="stretch")
            with c:
                pm = ev.assign(_bin=np.digitize(ev["band_gap_mean"], [1, 2, 3, 4, 5]))
                g = pm.groupby("_bin").agg(pred=("band_gap_mean", "mean"), truth=("band_gap", "mean"),
                                          n=("band_gap", "size")).reset_index()
                fig = px.line(g, x="pred", y="truth", markers=True, hover_data=["n"],
                              title="Reliability by predicted-gap bin",
                              labels={"pred": "mean prediction (eV)", "truth": "mean MP gap (eV)"})
                top = float(max(g["pred"].max(), g["truth"].max()))
                fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", line=dict(color="grey", dash="dash"),
                                         showlegend=False))
                fig.update_layout(height=380)
                st.plotly_chart(fig, width="stretch")
            st.markdown("**Calibration by predicted gap** (bias = mean of truth − prediction; targets |bias| ≤ 0.15 eV, "
                        "±1σ holding 60-78%)")
            st.dataframe([{"predicted gap (eV)": r["bin"], "n": r["n"], "bias (eV)": round(r["bias"], 3),
                           "MAE (eV)": round(r["mae"], 3), "within ±1σ": f"{r['within_1_sigma']:.1%}",
                           "within ±2σ": f"{r['within_2_sigma']:.1%}"} for r in bins], hide_index=True)
            rel = metrics.get("window_reliability")
            if rel:
                st.markdown("**Choosing a band-gap window** (the Band-gap window page keeps formulas with "
                            "P(in window) ≥ 0.5; target: mean F1 ≥ 0.70 over the five windows)")
                w1, w2 = st.columns([3, 2])
                w1.dataframe([{"window (eV)": w["window"], "truly in it": w["n_true"], "chosen": w["n_selected"],
                               "precision": round(w["precision"], 2), "recall": round(w["recall"], 2),
                               "F1": round(w["f1"], 2)} for w in metrics["windows"]], hide_index=True)
                w1.caption(f"Mean F1 {metrics['window_mean_f1']:.2f}. P(in window) = P(non-metal) × the chance "
                           "that a non-metal's gap lies in the window, from the oracle's error distribution "
                           "calibrated on the validation split.")
                pts = [r for r in rel["bins"] if r["n"]]
                fig = go.Figure(go.Scatter(x=[r["mean_p"] for r in pts], y=[r["observed"] for r in pts],
                                           mode="lines+markers", text=[f"n={r['n']:,}" for r in pts]))
                fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="grey", dash="dash"),
                                         showlegend=False))
                fig.update_layout(title=f"Does P(in window) mean what it says? (Brier {rel['brier']:.3f})",
                                  xaxis_title="P(in window), binned", yaxis_title="share truly in the window",
                                  height=330, showlegend=False, xaxis_range=[0, 1], yaxis_range=[0, 1])
                w2.plotly_chart(fig, width="stretch")
            full = (read_card(dirs["oracle"]).get("metrics") or {})
            classics = full.get("classic_compounds")
            if classics:
                st.markdown("**Classic compounds** against the bundled MP label (from the card: whole-split run)")
                known = ac.known_data()
                st.dataframe([{"formula": r["formula"], "MP label (eV)": r.get("label"),
                               "label from": known.lookup(r["formula"])[2] or "not in the bundled data",
                               "prediction (eV)": f"{r['mean']:.2f} ± {r['std']:.2f}",
                               "off by (eV)": None if r.get("label") is None else round(r["error"], 2),
                               "off by (σ)": None if r.get("label") is None else round(r["sigmas_off"], 1),
                               "passes": classic_verdict(r)}
                              for r in classics], hide_index=True, height=35 * (len(classics) + 1) + 3)
                st.caption(EXPLANATION)
            with st.expander("Error histogram and the Gaussian calibration curve"):
                h1, h2 = st.columns(2)
                with h1:
                    st.plotly_chart(px.histogram(x=err, nbins=80, title="Error (predicted − MP)",
                                                 labels={"x": "error (eV)"}), width="stretch")
                with h2:
                    cal = calibration_curve(ev["band_gap"].to_numpy(), ev["band_gap_mean"].to_numpy(),
                                            ev["band_gap_std"].to_numpy())
                    fig = px.line(cal, x="expected", y="observed", markers=True, title="Central-interval coverage",
                                  labels={"expected": "expected coverage", "observed": "observed coverage"})
                    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines",
                                             line=dict(color="grey", dash="dash"), showlegend=False))
                    st.plotly_chart(fig, width="stretch")
with tab_ae:
    card = _card("autoencoder") if tab_ae.open is not False else None
    if card is not None:
        m = card.get("metrics") or {}
        rates = {k.replace("_amortised", " (encoder alone)").replace("_", " "): v
                 for k, v in m.items() if isinstance(v, float) and v <= 1}
        if rates:
            fig = px.bar(x=list(rates), y=list(rates.values()), labels={"x": "", "y": "rate"},
                         title="Reconstruction (test split) and decode validity (random latent points)")
            st.plotly_chart(fig, width="stretch")
        lm = ac.latent_map(show=False)
        st.markdown("**The latent map** (Latent explorer): UMAP of the refined codes, lifted back by an "
                    f"inverse-distance blend of the {lm.settings.lift_k if lm else 8} nearest formulas' codes")
        mm = lm.metrics if lm is not None else {}
        if mm:
            rows = [("uniform map points that decode to a formula", mm["decode_fraction"], "≥ 95%"),
                    ("… to a compound (the validity rule)", mm["compound_fraction"], "≥ 60%"),
                    ("median distance to where the decoded formula re-encodes, of the map's extent",
                     mm["median_back_distance_fraction"], "< 5%"),
                    ("interpolation steps between random data pairs that decode", mm["interpolation_valid_fraction"],
                     "≥ 90%"),
                    ("decoded map points that are new formulas (not in MP)", mm.get("novel_fraction_of_decoded"), "")]
            st.dataframe(pd.DataFrame([{"measure": a, "value": f"{v:.1%}" if v is not None else "–", "target": t}
                                       for a, v, t in rows]), hide_index=True, width="stretch")
            st.caption(f"{mm['points']:,} uniform points of the map's convex hull (seed {mm['seed']}), "
                       f"{mm['interpolation_pairs']} interpolation pairs × {mm['interpolation_steps']} steps; "
                       "`wbg map sample -n N` gives the per-point table.")
        elif lm is not None:
            st.caption("This map has not been measured: `wbg map build` measures it.")
with tab_gan:
    if tab_gan.open is not False and _card("gan") is not None:
        n = st.select_slider("Generated samples", [1000, 5000, 20000], value=5000, key="n_gan")
        try:
            freq = _gan_freq(str(dirs["gan"]), n).head(40)
            fig = go.Figure([go.Bar(x=freq["element"], y=freq["data"], name="Materials Project"),
                             go.Bar(x=freq["element"], y=freq["generated"], name="generated")])
            fig.update_layout(barmode="group", title="Share of formulas containing each element (top 40)",
                              yaxis_title="share", height=420)
            st.plotly_chart(fig, width="stretch")
        except Exception as exc:  # noqa: BLE001
            st.error(f"Sampling failed: {exc}")


# ---------------------------------------------------------------- retraining
def _retrain_tab() -> None:
    s = get_settings()
    st.caption("Runs `wbg train` as a background process writing to a new folder of the server's runs folder "
               f"(never to `models/`), one job at a time, at most {s.train_max_epochs:,} epochs and "
               f"{s.train_max_rows:,} rows. Its checkpoints are offered to you alone: the app keeps its set "
               "until you choose to use them. A quick test: 1 epoch on a few hundred rows.")
    with st.form("train"):
        a, b, c, d = st.columns(4)
        model = a.selectbox("Model", ["autoencoder", "oracle", "gan", "all"], key="train_model")
        device = b.radio("Device", ["auto", "cpu", "cuda"], horizontal=True, key="train_device")
        epochs = c.number_input("Epochs (0: the model's default)", 0, s.train_max_epochs, 1, key="train_epochs")
        limit = d.number_input("Rows (0: all)", 0, s.train_max_rows, min(3000, s.train_max_rows), step=1000,
                               key="train_limit")
        go_train = st.form_submit_button("Start training", type="primary")
    if go_train:
        try:
            ac.start_my_job(model=model, device=device, epochs=epochs or None, limit=limit or None,
                            members=2 if limit and model in ("oracle", "all") else None)
        except (JobError, PublicModeError) as exc:
            st.error(f"Could not start training: {exc}")
        except OSError as exc:
            st.error(f"Could not start training: the server could not write its run folder ({exc.strerror}).")
    job = ac.my_job()
    st.fragment(run_every=2.0 if job is not None and job_running(job) else None)(_follow)()


def _follow() -> None:
    """This session's job: live log and progress, Cancel while it runs, and the choice to use its
    checkpoints once it has finished (polled every 2 s while it runs)."""
    job = ac.my_job()
    if job is None:
        busy = running_job(ac.runs_dir())
        st.info("No training job started from this browser session."
                + (" Another visitor's job is running on this server: a new one can start when it ends."
                   if busy else ""))
        return
    status = job_status(job)
    if status.state == "running" and st.button("Cancel training", key="cancel_job"):
        try:
            status = cancel_job(job)
        except JobError as exc:
            st.error(str(exc))
            status = job_status(job)
    log, prog = job_log(job)
    st.markdown(f"**{job.model}** on `{job.device}` → `runs/{job.id}` · {status.state}")
    st.progress(*progress_bar(prog, status.state))
    st.code(log or "(no output yet)", language="text", wrap_lines=True)
    if status.state == "running":
        st.session_state["_job_live"] = job.id
        return
    if st.session_state.pop("_job_live", None) == job.id:
        st.rerun()  # it has just ended: the whole tab again, without the 2 s polling
    if status.state == "cancelled":
        st.warning(f"Cancelled: the partial output in `runs/{job.id}` is marked as cancelled and is not offered "
                   "as a checkpoint set.")
    elif status.state == "failed":
        st.error(f"The job failed: {status.message}. See its log above.")
    elif job.confirmed and ac.active_label() == job.id:
        st.success(f"Finished: the app now uses `{job.id}` (switch back to 'shipped' above).")
    else:
        st.success(f"Finished: `{job.id}` holds new checkpoints ({', '.join(status.models)}). Only this browser "
                   "session is offered them; the app keeps its current set until you choose.")
        for m in status.models:  # what everyone would get, before they get it
            got = headline_metrics(m, read_card(job.out / m))
            st.caption(f"**{m}** ({job.args.get('epochs', 'default')} epochs, "
                       f"{job.args.get('limit') or 'all'} rows): "
                       + (", ".join(f"{k} {v}" for k, v in got.items()) or "no headline metrics in its card"))
        if st.button(f"Use {job.id} for the whole app", key="use_job", type="primary",
                     help="Every visitor of this server then uses these checkpoints."):
            try:
                ac.use_my_job()
            except (JobError, PublicModeError) as exc:
                st.error(str(exc))
            else:
                st.rerun(scope="app")


if tab_train and tab_train[0].open is not False:
    with tab_train[0]:
        _retrain_tab()
