"""Band-gap window screening for the page: the engine's screen() over a generator's pool,
with the whole labelled pool kept for the histogram, and a forest screening model."""
from __future__ import annotations

import numpy as np
import pandas as pd


def screen_window(gan, model, *, min_gap: float | None, max_gap: float | None, pool: int = 20_000, seed: int = 0,
                  p_threshold: float = 0.5, max_atoms: int | None = 7, max_elements: int | None = 3,
                  require: tuple[str, ...] = (), exclude: tuple[str, ...] = (), novel_only: bool = False,
                  valid_only: bool = True, allow_elements_and_alloys: bool = False,
                  progress=None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(candidates, whole labelled pool, funnel) for a window, sampling the given generator.

    The engine's screen() labels; here it runs with threshold 0 so the whole labelled pool is
    kept for the histogram, and the threshold and the compound rule are applied afterwards,
    then the candidates are ranked as screen() ranks them (engine.screening.rank_candidates).
    """
    from ..engine.screening import ScreenConfig, ScreenError, rank_candidates, reading_search, screen

    cb = progress or (lambda f, m: None)
    for el in (*require, *exclude):
        from ..composition import VOCAB

        if el not in VOCAB:
            raise ScreenError(f"{el!r} is not an element of the 87-element vocabulary")
    if set(require) & set(exclude):
        raise ScreenError(f"{sorted(set(require) & set(exclude))} both required and excluded")
    if not 0 <= p_threshold <= 1:
        raise ScreenError("the probability threshold must be between 0 and 1")
    kw = dict(pool=pool, seed=seed, max_atoms=max_atoms, max_elements=max_elements, require_elements=tuple(require),
              exclude_elements=tuple(exclude), novel_only=novel_only, valid_only=False,
              allow_elements_and_alloys=allow_elements_and_alloys)
    target = ScreenConfig(min_gap=min_gap, max_gap=max_gap, p_threshold=max(p_threshold, 1e-12), **kw).validate()
    # label the whole pool (window [0, inf), every gap passes) so its histogram can be drawn
    cfg = ScreenConfig(min_gap=0.0, max_gap=None, p_threshold=1e-300, **kw).validate()
    cb(0.0, f"sampling {pool:,} compositions from the generator")
    counts, valid = gan.sample_counts(pool, seed=seed, search=reading_search(cfg))
    rows = counts[valid]  # screen() reduces them (S2O4 is SO2, known to MP)
    cb(0.3, f"{int(valid.sum()):,} decoded; screening")
    labelled = screen(cfg, model, progress_callback=lambda f, m: cb(0.3 + 0.7 * f, m), pool_counts=rows)
    funnel = dict(labelled.funnel)
    funnel.pop("in_window", None)
    funnel.pop("passed", None)
    funnel["generated"] = pool
    funnel["decoded_valid"] = int(valid.sum())
    allp = labelled.candidates.copy()
    detail = {"mean": allp["band_gap_mean"].to_numpy(), "std": allp["band_gap_std"].to_numpy(),
              **{c: allp[c].to_numpy() for c in model.window_columns if c in allp}}
    allp["p_in_window"] = model.window_probability(detail, target.window).round(4)
    cand = allp[allp["p_in_window"] >= p_threshold]
    funnel["in_window"] = len(cand)
    if valid_only:
        cand = cand[cand["compound_valid"]]
    funnel["passed"] = len(cand)
    cand = rank_candidates(cand, target.window)
    pool_df = allp[["formula", "band_gap_mean", "band_gap_std"]].reset_index(drop=True)
    return cand.reset_index(drop=True), pool_df, funnel


def forest_on(formulas, gaps, seed: int = 0):
    """A random forest screening model fitted on labelled formulas (the paper's RF route)."""
    from ..models.forest import ForestConfig, ForestRegressor

    if len(formulas) < 10:
        raise ValueError(f"{len(formulas)} labelled formulas: a screening forest needs at least 10")
    return ForestRegressor(ForestConfig(seed=seed, n_jobs=2)).fit(list(formulas), np.asarray(gaps, np.float64))


def screen_query(generator, model, query, progress=None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """screen_window with every input of a window query (services.window_query.WindowQuery): what
    the page computes in its own process and the background job in another."""
    q = query
    return screen_window(
        generator, model, min_gap=q.gap_min, max_gap=q.gap_max, pool=q.pool, seed=q.seed, p_threshold=q.p_min,
        max_atoms=q.max_atoms, max_elements=q.max_elements, require=q.require, exclude=q.exclude,
        novel_only=q.novel, valid_only=q.valid_only, allow_elements_and_alloys=q.allow_elements_and_alloys,
        progress=progress)


def window_model(query, *, oracle=None, campaign_dir: str | None = None, progress=None):
    """The screening model a window query names: the given oracle, a forest on 1,000 random MP
    formulas, or a forest on an active-learning campaign's labels (read only)."""
    if query.model == "oracle":
        if oracle is None:
            raise ValueError("the oracle checkpoint cannot be loaded (see the Models page)")
        return oracle
    if query.model == "rf_mp":
        from ..engine.campaign import pick_seeds

        if progress:
            progress(0.0, "fitting a random forest on 1,000 random MP formulas")
        train = pick_seeds(1000, seed=query.seed, subset="full")
        return forest_on(train["formula"], train["band_gap"], seed=query.seed)
    if not campaign_dir:
        raise ValueError("no active-learning campaign open in this browser: start or open one on the "
                         "Active learning page (a shared link does not carry the sender's campaign)")
    from ..engine.campaign import Campaign

    lab = Campaign.load(campaign_dir, autoencoder=None, labeller=None).labelled()
    return forest_on(lab["formula"], lab["band_gap"], seed=query.seed)


def csv_table(cand: pd.DataFrame) -> str:
    """The candidates as the page's CSV, named as `wbg screen` names them."""
    from ..engine.screening import written

    return written(cand).to_csv(index=False)
