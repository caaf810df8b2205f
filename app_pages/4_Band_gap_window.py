"""Band-gap window: screen generated compositions for a gap window, with filters and a model choice.

Every input is in the URL after a screening (wbg_core.services.window_query.WindowQuery), so a window link
restores the form and its result: the result is cached on the server by its inputs, a link
opened elsewhere recomputes it only when the cache no longer holds it.
"""
from __future__ import annotations

from collections import OrderedDict

import plotly.graph_objects as go
import streamlit as st

import app_common as ac
from wbg_core.services.inputs import plural
from wbg_core.services import window_jobs
from wbg_core.services.window import csv_table, screen_query, window_model
from wbg_core.services.window_query import (
    GAP_LIMITS, METAL_GAP, WINDOW_GENERATORS, WINDOW_MODELS, WINDOW_POOLS, WindowQuery, split_elements)
from wbg_core.composition.validity import RULES

ac.page("Band-gap window", "🎯")
st.caption("Sample a generator, keep compositions that pass the filters, label them with a "
           "screening model and rank by the probability that the gap lies in the window: for the "
           "oracle, P(non-metal) times the chance that a non-metal's gap falls in it, read from the "
           "oracle's error distribution calibrated on held-out MP formulas; for a forest, a normal with "
           "its mean and σ.")
GENERATORS = {"gan": ac.gan, "latent": ac.latent_sampler}


def _widgets(q: WindowQuery) -> dict:
    """The form's widget values (by key) that show a query."""
    hi = q.gap_max if q.gap_max is not None else GAP_LIMITS[1]
    return {"window": (q.gap_min, max(hi, q.gap_min)), "open_top": q.gap_max is None, "p_thr": q.p_min,
            "require": ", ".join(q.require), "exclude": ", ".join(q.exclude), "max_atoms": q.max_atoms,
            "max_el": q.max_elements, "novel": q.novel, "valid_only": q.valid_only,
            "allow_elements_and_alloys": q.allow_elements_and_alloys, "pool": q.pool, "model": q.model,
            "generator": q.generator, "seed": q.seed}


def _from_widgets() -> WindowQuery:
    ss = st.session_state
    lo, hi = ss["window"]
    return WindowQuery(gap_min=float(lo), gap_max=None if ss["open_top"] else float(hi), p_min=float(ss["p_thr"]),
                       max_atoms=int(ss["max_atoms"]), max_elements=int(ss["max_el"]),
                       require=split_elements(ss["require"]), exclude=split_elements(ss["exclude"]),
                       novel=bool(ss["novel"]), valid_only=bool(ss["valid_only"]),
                       allow_elements_and_alloys=bool(ss["allow_elements_and_alloys"]), pool=int(ss["pool"]),
                       seed=int(ss["seed"]), model=ss["model"], generator=ss["generator"])


# ---------------------------------------------------------------- the link, else this session's last screening
run_query = None
notes = st.container()  # the link's problems, filled once the Screen button is known
url = st.query_params.to_dict()
if WindowQuery.is_link(url):
    sig = tuple(sorted((k, v) for k, v in url.items() if k in WindowQuery.KEYS))
    if st.session_state.get("_window_link") != sig:  # a link not yet applied: fill the form from it
        st.session_state["_window_link"] = sig
        q, problems = WindowQuery.from_query(url)
        st.session_state.update(_widgets(q))
        if problems:
            st.session_state["_link_problems"] = problems
        else:
            st.session_state.pop("_link_problems", None)
            run_query = q
else:
    last = st.session_state.get("screen_query")  # back from another page: the URL lost its parameters
    if last is not None:
        ac.set_qp(**last.to_query())
        st.session_state["_window_link"] = tuple(sorted(last.to_query().items()))
    for k, v in _widgets(last or WindowQuery()).items():
        st.session_state.setdefault(k, v)

with st.form("screen"):
    a, b, c = st.columns(3)
    with a:
        st.slider("Band-gap window (eV)", *GAP_LIMITS, step=0.1, key="window")
        st.checkbox("No upper bound (widest gaps)", key="open_top")
        st.slider("Minimum probability in window", 0.0, 1.0, step=0.05, key="p_thr")
    with b:
        st.text_input("Must contain (elements)", key="require", placeholder="F, Sr")
        st.text_input("Must not contain", key="exclude", placeholder="Pb, Hg, Cd")
        st.number_input("Max atoms per formula unit", 2, 40, key="max_atoms")
        st.number_input("Max elements", 2, 8, key="max_el")
    with c:
        st.checkbox("Novel only (not in the MP data)", key="novel")
        st.checkbox("Compounds only (the validity rule)", key="valid_only",
                    help="keep only candidates that pass the project's compound rule")
        st.checkbox("Allow single elements and alloys", key="allow_elements_and_alloys",
                    help="count one-element and all-metal compositions as valid (they are rarely wide-gap)")
        st.select_slider("Generator samples", list(WINDOW_POOLS), key="pool", format_func=lambda n: f"{n:,}",
                         help=f"above {window_jobs.BACKGROUND_POOL:,} the screening runs in the background "
                              "(1,000,000: about 1.5 min on 2 cores); the page stays usable")
        st.selectbox("Screening model", list(WINDOW_MODELS), format_func=WINDOW_MODELS.get, key="model")
        st.selectbox("Generator", list(WINDOW_GENERATORS), format_func=WINDOW_GENERATORS.get, key="generator")
        st.number_input("Seed", 0, 10_000, key="seed")
    go_btn = st.form_submit_button("Screen", type="primary")
st.caption(f"Compound rule: {RULES['compound'].split(': ', 1)[-1]}. Allowing single elements and alloys lifts "
           "its first two tests.")

if go_btn:
    run_query = _from_widgets()
    st.session_state.pop("_link_problems", None)
    ac.set_qp(**{k: None for k in WindowQuery.KEYS})
    ac.set_qp(**run_query.to_query())
    st.session_state["_window_link"] = tuple(sorted(run_query.to_query().items()))
for p in st.session_state.get("_link_problems", []):
    notes.warning(f"Link parameter {p}; the form shows the default instead. Check the form and press Screen.")


@st.cache_resource
def _results() -> OrderedDict:
    """Screenings of this server by their inputs (the newest 16): a shared link re-opens without work."""
    return OrderedDict()


def _model_inputs(q: WindowQuery) -> tuple[str, tuple | None]:
    """(generator folder, (campaign folder, rounds done) or None): with the query, what a result depends on."""
    gen_key = str(ac.model_dir("gan" if q.generator == "gan" else "autoencoder"))
    if q.model != "rf_al":
        return gen_key, None
    cdir = st.session_state.get("campaign")
    if not cdir:
        raise ValueError("no active-learning campaign open in this browser: start or open one on the "
                         "Active learning page (a shared link does not carry the sender's campaign)")
    from wbg_core.engine.campaign import Campaign

    camp = Campaign.load(cdir, autoencoder=None, labeller=None)  # read only: its labels train the forest
    return gen_key, (cdir, camp.state["rounds_done"])


def _screen(q: WindowQuery, bar) -> dict:
    gen = GENERATORS[q.generator](show=False)
    if gen is None:
        raise ValueError(f"the {WINDOW_GENERATORS[q.generator]} checkpoint cannot be loaded (see the Models page)")
    gen_key, camp_key = _model_inputs(q)
    key = (q, gen_key, str(ac.model_dir("oracle")), camp_key)
    cache = _results()
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    model = window_model(q, oracle=ac.oracle(show=False) if q.model == "oracle" else None,
                         campaign_dir=camp_key[0] if camp_key else None,
                         progress=lambda f, m: bar.progress(f, text=m))
    res = _page_result(q, *screen_query(gen, model, q, lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=m)))
    cache[key] = res
    while len(cache) > 16:
        cache.popitem(last=False)
    return res


def _page_result(q: WindowQuery, cand, pool_df, funnel: dict) -> dict:
    """What the page shows of a screening, whichever process computed it."""
    return {"cand": cand, "pool": pool_df, "funnel": funnel, "window": (q.gap_min, q.gap_max),
            "model": WINDOW_MODELS[q.model], "query": q}


if run_query is not None and run_query.pool > window_jobs.BACKGROUND_POOL:
    try:
        gen_key, camp_key = _model_inputs(run_query)
        run = window_jobs.start(run_query, generator_dir=gen_key, oracle_dir=str(ac.model_dir("oracle")),
                                campaign=camp_key)
        st.session_state["window_job"] = (str(run), run_query)
        st.session_state.pop("screen_result", None)
    except ValueError as err:  # WindowJobError, no campaign
        st.error(f"Screening failed: {err}")
elif run_query is not None:
    bar = st.progress(0.0, text="starting…")
    try:
        st.session_state["screen_result"] = _screen(run_query, bar)
        st.session_state["screen_query"] = run_query
        st.session_state.pop("window_job", None)
    except ValueError as err:  # ScreenError and bad inputs
        st.error(f"Screening failed: {err}")
    except Exception as err:  # noqa: BLE001
        st.error(f"Screening failed: {type(err).__name__}: {err}")
    bar.empty()


@st.fragment(run_every=2)
def _background_job() -> None:
    """The running large screening: its progress every 2 s; the page opens its result when it is done."""
    run, q = st.session_state["window_job"]
    state = window_jobs.status(run)
    if state.state == "running":
        eta = "" if state.eta_s is None else (f" · about {state.eta_s / 60:.0f} min left" if state.eta_s >= 90
                                              else f" · about {state.eta_s:.0f} s left")
        st.progress(state.fraction, text=f"{q.pool:,} samples: {state.message}{eta}")
        st.caption("This screening runs in the background on the server: use other pages meanwhile and come back, "
                   "or keep this window's link; its result opens here when it is done.")
        return
    st.session_state.pop("window_job", None)
    if state.state == "finished":
        try:
            st.session_state["screen_result"] = _page_result(q, *window_jobs.load_result(run))
            st.session_state["screen_query"] = q
        except window_jobs.WindowJobError as err:
            st.session_state["_window_job_error"] = str(err)
    else:
        st.session_state["_window_job_error"] = state.message
    st.rerun()


if st.session_state.get("_window_job_error"):
    st.error(f"Screening failed: {st.session_state.pop('_window_job_error')}")
if st.session_state.get("window_job"):
    _background_job()
    st.stop()

res = st.session_state.get("screen_result")
if not res:
    st.info("Set a window and press Screen.")
    st.stop()
cand, pool_df, funnel, (wlo, whi) = res["cand"], res["pool"], res["funnel"], res["window"]
st.caption("Funnel: " + " → ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in funnel.items())
           + f" · model: {res['model']}")

left, right = st.columns([3, 2])
with right:
    metal = pool_df["band_gap_mean"] < METAL_GAP
    gaps = pool_df.loc[~metal, "band_gap_mean"]
    fig = go.Figure(go.Histogram(x=gaps, nbinsx=60, name="pool", marker_color="#8c7ae6"))
    top = max(float(gaps.max()) if len(gaps) else 0.0, wlo + 1)
    fig.add_vrect(x0=wlo, x1=whi if whi is not None else top, fillcolor="#2ecc71", opacity=0.2, line_width=0,
                  annotation_text="window" if whi is not None else f"window (≥ {wlo:g} eV)")
    fig.update_layout(title=f"Predicted gaps of the screened pool ({len(pool_df):,})", xaxis_title="gap (eV)",
                      yaxis_title="formulas", height=380, showlegend=False)
    st.plotly_chart(fig, width="stretch")
    st.caption(f"{plural(int(metal.sum()), 'predicted metal')} (gap < {METAL_GAP:g} eV) left out of the histogram; "
               f"{plural(len(gaps), 'formula')} shown.")
with left:
    st.subheader(plural(len(cand), "candidate"))
    if len(cand) == 0:
        st.warning("No candidate passed: widen the window, lower the probability, relax the filters or grow the pool.")
    else:
        ev = st.dataframe(
            cand, hide_index=True, width="stretch", height=380, on_select="rerun", selection_mode="multi-row",
            key="cand_table",
            # what a non-metal would be sits beside the gap; the median of its distribution is in the CSV only
            column_order=[c for c in ("formula", "band_gap_mean", "band_gap_std", "p_in_window", "p_nonmetal",
                                      "mean_gap_if_nonmetal", "std_if_nonmetal", "compound_valid", "novel",
                                      "n_atoms", "n_elements") if c in cand],
            column_config={"band_gap_mean": st.column_config.NumberColumn("gap (eV)", format="%.2f"),
                           "band_gap_std": st.column_config.NumberColumn("± σ", format="%.2f"),
                           "p_in_window": st.column_config.ProgressColumn("P(in window)", min_value=0, max_value=1,
                                                                          format="%.2f"),
                           "compound_valid": st.column_config.CheckboxColumn("compound", help=RULES["compound"]),
                           "p_nonmetal": st.column_config.NumberColumn("P(non-metal)", format="%.2f"),
                           "mean_gap_if_nonmetal": st.column_config.NumberColumn(
                               "gap if non-metal (eV)", format="%.2f",
                               help="the gap this formula averages if it is not a metal: the 'gap' column is "
                                    "P(non-metal) times it. P(in window) reads the whole distribution, whose "
                                    "median is in the CSV (median_gap_if_nonmetal)"),
                           "std_if_nonmetal": st.column_config.NumberColumn("± σ if non-metal", format="%.2f")})
        rows = list(ev.selection.rows) if ev is not None else []
        chosen = cand.iloc[rows]["formula"].tolist()
        c1, c2 = st.columns(2)
        if c1.button(f"Send {len(chosen)} selected to Structures", disabled=not chosen, key="send"):
            ac.send_candidates(chosen)
            # the structure page opens on the first one, shown as picked in its candidate list
            st.session_state["struct_formula"] = chosen[0]
            st.session_state["cand_pick"] = st.session_state["_last_pick"] = chosen[0]
            st.switch_page("app_pages/5_Structures.py")
        c2.download_button("Download the table (CSV)", csv_table(cand).encode(), "window_candidates.csv",
                           "text/csv", key="dl_cand")
