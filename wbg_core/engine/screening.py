"""Screening generated compositions for a band-gap window.

Order of the funnel is by cost: the generator's samples are decoded and filtered on their
count vectors (atoms, elements, required/excluded elements: vectorised, microseconds per
million), de-duplicated as raw bytes, and only then written as formulas, labelled by the
screening model (straight from the count vectors, no string parsing) and tested against the
window; the compound rule (wbg_core.composition.validity: ICSD-24 charge neutrality and the
Pauling test, the slowest check per formula) runs last on the few that pass. Single elements
and all-metal compositions are not wide-gap candidates: the count filter drops them (a
vectorised mask) unless allow_elements_and_alloys is set.

The window test uses the uncertainty: p_in_window = P(a < gap < b) by the model's own
window_probability; a candidate passes when p_in_window >= p_threshold. For the oracle that is
P(non-metal) times the non-metal gap's conformal distribution (models.oracle_head); for a
model with only a mean and σ (the forest) a normal, where threshold 0.5 with an open upper end
means "mean >= a". A higher threshold asks for confidence.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ..composition.elements import ATOMIC_NUMBER, VOCAB, VOCAB_INDEX
from ..models.base import GapModel
from ..models.oracle_eval import p_in_window  # noqa: F401  (a normal's P; models choose theirs)
from ..models.sampling import CompositionSampler

Progress = Callable[[float, str], None] | None
COLUMNS = ["formula", "band_gap_mean", "band_gap_std", "p_in_window", "compound_valid", "novel", "n_atoms", "n_elements"]
# a written table (CSV, JSON) says which gap of a non-metal each column holds: the frame's
# gap_if_nonmetal, which P(in window) reads, is the distribution's median; mean_gap_if_nonmetal the mean
WRITTEN_NAMES = {"gap_if_nonmetal": "median_gap_if_nonmetal"}


def written(candidates: pd.DataFrame) -> pd.DataFrame:
    """The candidates as every written table (wbg screen, Ray's top.csv, the page's CSV) names them."""
    return candidates.rename(columns=WRITTEN_NAMES)
PAPER_POOL = 1_180_000
_VOCAB_Z = np.array([ATOMIC_NUMBER[s] for s in VOCAB], np.int64)


def _metal_mask() -> np.ndarray:
    from pymatgen.core import Element

    return np.array([Element(s).is_metal for s in VOCAB], bool)


_IS_METAL = _metal_mask()


class ScreenError(ValueError):
    """Bad screening input; the message says what to fix."""


@dataclass
class ScreenConfig:
    min_gap: float | None = None
    max_gap: float | None = None
    pool: int = 100_000  # generator samples (the paper: 1,180,000)
    seed: int = 0
    p_threshold: float = 0.5
    max_atoms: int | None = 7  # paper's code: fewer than 8 atoms
    max_elements: int | None = 3  # and fewer than 4 elements
    require_elements: tuple[str, ...] = ()
    exclude_elements: tuple[str, ...] = ()
    novel_only: bool = False
    valid_only: bool = True  # keep only candidates that pass the compound rule (the column is always there)
    allow_elements_and_alloys: bool = False  # single elements and all-metal compositions count as valid
    top: int | None = None
    chunk: int = 65_536
    # "gan": the paper's route (the shipped dense WGAN-GP: 93% decode, 85% distinct, 94% of
    # those novel; models/gan/card.json); "ae": uniform points of the autoencoder's latent box,
    # decoded (the search space of the AL campaigns).
    generator: str = "gan"
    # nats: read a sample that is not a compound as its most likely compound reading within
    # this drop (models.compound_decoding); None: the generator's own setting, 0: plain decode
    compound_max_drop: float | None = None

    def validate(self) -> "ScreenConfig":
        a, b = self.min_gap, self.max_gap
        if a is None and b is None:
            raise ScreenError("give a band-gap window: --min-gap and/or --max-gap (eV)")
        for name, v in (("min_gap", a), ("max_gap", b)):
            if v is not None and not np.isfinite(v):
                raise ScreenError(f"{name} must be a number")
        if a is not None and b is not None:
            if b < a:
                raise ScreenError(f"the window [{a}, {b}] eV is inverted: max-gap is below min-gap")
            if b == a:
                raise ScreenError(f"the window [{a}, {b}] eV is empty: make max-gap larger than min-gap")
        if b is not None and b <= 0:
            raise ScreenError("max-gap must be above 0 eV (the models predict gaps >= 0)")
        if self.generator not in ("gan", "ae"):
            raise ScreenError(f"generator must be 'gan' or 'ae', not {self.generator!r}")
        if self.pool < 1:
            raise ScreenError("the pool must hold at least 1 candidate")
        if not 0 <= self.p_threshold <= 1:
            raise ScreenError("p_threshold must be in [0, 1] (0 keeps the whole labelled pool)")
        if self.max_atoms is not None and self.max_atoms < 1:
            raise ScreenError("max_atoms must be at least 1")
        if self.max_elements is not None and self.max_elements < 1:
            raise ScreenError("max_elements must be at least 1")
        if self.compound_max_drop is not None and not self.compound_max_drop >= 0:
            raise ScreenError(f"compound_max_drop must be >= 0 nats (0: plain decode), not {self.compound_max_drop}")
        for el in (*self.require_elements, *self.exclude_elements):
            if el not in VOCAB_INDEX:
                raise ScreenError(f"unknown element {el!r} (the encoding holds {len(VOCAB)} elements, e.g. 'Sr', 'F')")
        clash = set(self.require_elements) & set(self.exclude_elements)
        if clash:
            raise ScreenError(f"elements both required and excluded: {sorted(clash)}")
        return self

    @property
    def window(self) -> tuple[float, float]:
        return (-np.inf if self.min_gap is None else self.min_gap, np.inf if self.max_gap is None else self.max_gap)


def oracle_features_from_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(atomic numbers, fractions) for Roost-style models, straight from count rows."""
    counts = np.asarray(counts)
    n_el = (counts > 0).sum(axis=1)
    width = max(1, int(n_el.max()) if len(n_el) else 1)
    rows, cols = np.nonzero(counts)
    pos = np.arange(len(rows)) - np.repeat(np.cumsum(n_el) - n_el, n_el)
    z = np.zeros((len(counts), width), np.int64)
    w = np.zeros((len(counts), width), np.float32)
    z[rows, pos] = _VOCAB_Z[cols]
    tot = counts.sum(axis=1, dtype=np.float32)
    w[rows, pos] = counts[rows, cols] / tot[rows]
    return z, w


def filter_counts(counts: np.ndarray, cfg: ScreenConfig) -> np.ndarray:
    """Cheap structural filters on count rows (atoms, elements, required, excluded; single
    elements and all-metal rows unless cfg allows them)."""
    keep = np.ones(len(counts), bool)
    if not cfg.allow_elements_and_alloys:
        present = counts > 0
        keep &= present.sum(axis=1) >= 2
        keep &= (present & ~_IS_METAL).any(axis=1)
    if cfg.max_atoms is not None:
        keep &= counts.sum(axis=1, dtype=np.int32) <= cfg.max_atoms
    if cfg.max_elements is not None:
        keep &= (counts > 0).sum(axis=1) <= cfg.max_elements
    for el in cfg.require_elements:
        keep &= counts[:, VOCAB_INDEX[el]] > 0
    for el in cfg.exclude_elements:
        keep &= counts[:, VOCAB_INDEX[el]] == 0
    return keep


def reading_search(cfg: ScreenConfig | None) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Which samples get a compound reading: those that do not decode, and the compounds-to-be
    (>= 2 elements, a non-metal) that pass cfg's filters, so the cost follows the screen."""
    def search(counts: np.ndarray, valid: np.ndarray) -> np.ndarray:
        present = counts > 0
        may_pass = filter_counts(_reduce_rows(counts), cfg) if cfg is not None else np.ones(len(counts), bool)
        return ~valid | (may_pass & (present.sum(axis=1) >= 2) & (present & ~_IS_METAL).any(axis=1))
    return search


def _reduce_rows(counts: np.ndarray) -> np.ndarray:
    """A count row stands for a reduced formula: H4Cl2 is H2Cl, one candidate."""
    return (counts // np.maximum(np.gcd.reduce(counts, axis=1, keepdims=True), 1)).astype(np.int8)


def first_occurrences(counts: np.ndarray) -> np.ndarray:
    """Sorted indices of each distinct row's first occurrence: the one de-duplication rule of
    every engine (the local one and each Ray partition), so they keep the same rows in the same order."""
    if len(counts) == 0:
        return np.zeros(0, np.int64)
    v = np.ascontiguousarray(counts).view(np.dtype((np.void, counts.shape[1])))[:, 0]
    _, idx = np.unique(v, return_index=True)
    return np.sort(idx)


def _unique_rows(counts: np.ndarray) -> np.ndarray:
    return counts[first_occurrences(counts)]


def generate_chunk(gan: CompositionSampler, cfg: ScreenConfig | None, seed: int, k: int, m: int,
                   stage: dict | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """Chunk k of a pool: m samples seeded by (seed, k), decoded, reduced, filtered and made unique
    (first occurrence kept, in order). The same chunk whichever engine or worker computes it."""
    stage = stage if stage is not None else {}
    drop = gan.compound_max_drop if cfg is None or cfg.compound_max_drop is None else cfg.compound_max_drop
    t = time.perf_counter()
    probs = gan.sample_probs(m, seed=seed * 100_003 + k, batch=min(m, 16_384))
    stage["generate"] = stage.get("generate", 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    c, v, read = gan.decode(probs, drop, reading_search(cfg))
    stage["decode"] = stage.get("decode", 0.0) + time.perf_counter() - t
    del probs
    t = time.perf_counter()
    c = _reduce_rows(c[v])
    if cfg is not None:
        c = c[filter_counts(c, cfg)]
    rows = _unique_rows(c)
    stage["filter"] = stage.get("filter", 0.0) + time.perf_counter() - t
    return rows, {"generated": m, "decoded_valid": int(v.sum()), "compound_readings": int(read),
                  "structure_filter": len(c)}


def generate_pool(n: int, seed: int, gan: CompositionSampler, cfg: ScreenConfig | None = None,
                  progress_callback: Progress = None, stage: dict | None = None, funnel: dict | None = None) -> np.ndarray:
    """Unique count rows of n samples of `gan` (any CompositionSampler: the GAN, the latent
    sampler) that decode (2-8 elements) and pass cfg's structural filters; memory stays at one
    chunk of probabilities plus the survivors."""
    stage = stage if stage is not None else {}
    funnel = funnel if funnel is not None else {}
    cb = progress_callback or (lambda f, m: None)
    chunk = cfg.chunk if cfg else 65_536
    kept, totals = [], {"generated": 0, "decoded_valid": 0, "compound_readings": 0, "structure_filter": 0}
    for k, s in enumerate(range(0, n, chunk)):
        m = min(chunk, n - s)
        rows, counts = generate_chunk(gan, cfg, seed, k, m, stage)
        kept.append(rows)
        totals = {key: totals[key] + counts[key] for key in totals}
        cb(0.6 * (s + m) / n, f"generated {s + m:,} of {n:,}")
    t = time.perf_counter()
    pool = _unique_rows(np.concatenate(kept)) if kept else np.zeros((0, len(VOCAB)), np.int8)
    stage["dedupe"] = stage.get("dedupe", 0.0) + time.perf_counter() - t
    funnel.update({**totals, "unique": len(pool)})
    return pool


def rank_candidates(df: pd.DataFrame, window: tuple[float, float]) -> pd.DataFrame:
    """Candidates in ranked order (index kept): most probable in the window first; ties by the
    gap nearest the centre of a closed window, or the widest gap first for one open above."""
    a, b = window
    if np.isfinite(b):  # closed window: most probable first, then nearest the centre
        centre = (a + b) / 2 if np.isfinite(a) else b / 2
        return df.assign(_d=(df["band_gap_mean"] - centre).abs()).sort_values(
            ["p_in_window", "_d"], ascending=[False, True]).drop(columns="_d")
    return df.sort_values(["p_in_window", "band_gap_mean"], ascending=[False, False])  # open above


@dataclass
class ScreenResult:
    """What a screening gives: the ranked candidates, and how they were found (a DataFrame's
    attrs would be lost by the first copy or filter)."""

    candidates: pd.DataFrame  # COLUMNS, ranked
    funnel: dict[str, int]  # how many survive each stage, in order
    stage_s: dict[str, float]  # seconds per stage
    config: dict  # the ScreenConfig, as a dict
    model: str  # the screening model's class
    engine: str = "local"
    out: str | None = None  # the Ray engine's run folder

    def __len__(self) -> int:
        return len(self.candidates)

    def describe_empty(self) -> str:
        """Why nothing passed, from the funnel: where the candidates were lost."""
        steps = " -> ".join(f"{k} {v:,}" for k, v in self.funnel.items())
        return f"no candidate passed the filters ({steps}); widen the window, lower the threshold or grow the pool"


def screen(cfg: ScreenConfig, model: GapModel, generator: CompositionSampler | None = None,
           progress_callback: Progress = None, pool_counts: np.ndarray | None = None) -> ScreenResult:
    """The passing candidates, ranked, with the funnel and the seconds per stage (ScreenResult).
    model: any GapModel (the oracle, a forest).
    generator: what samples the pool (cfg.generator names which kind); pool_counts: screen
    these count rows instead, with no generator."""
    cfg.validate()
    cb = progress_callback or (lambda f, m: None)
    stage: dict[str, float] = {}
    funnel: dict[str, int] = {}
    t_all = time.perf_counter()
    if pool_counts is None:
        if generator is None:
            raise ScreenError("screening samples a pool: pass the generator (or pool_counts)")
        pool = generate_pool(cfg.pool, cfg.seed, generator, cfg, cb, stage, funnel)
    else:
        t = time.perf_counter()
        pc = _reduce_rows(np.asarray(pool_counts, np.int8))
        funnel["generated"] = funnel["decoded_valid"] = len(pc)
        pc = pc[filter_counts(pc, cfg)]
        funnel["structure_filter"] = len(pc)
        pool = _unique_rows(pc)
        funnel["unique"] = len(pool)
        stage["filter"] = time.perf_counter() - t

    df = label_pool(pool, model, cfg, cb, stage, funnel)
    df = rank_candidates(df, cfg.window)
    if cfg.top:
        df = df.head(cfg.top)
    df = df.reset_index(drop=True)
    stage["total"] = time.perf_counter() - t_all
    cb(1.0, f"{len(df):,} candidates pass")
    return ScreenResult(df, funnel, {k: round(v, 3) for k, v in stage.items()}, asdict(cfg), type(model).__name__)


def label_pool(pool: np.ndarray, model: GapModel, cfg: ScreenConfig, progress_callback: Progress = None,
               stage: dict | None = None, funnel: dict | None = None) -> pd.DataFrame:
    """Unique count rows -> the candidates in the window (COLUMNS, pool order kept, not ranked):
    novelty against MP, the model's gap, P(in window) >= cfg.p_threshold, the compound rule."""
    from ..composition import compound_valid, counts_to_formulas
    from ..data import load_bandgaps

    stage = stage if stage is not None else {}
    funnel = funnel if funnel is not None else {}
    cb = progress_callback or (lambda f, m: None)
    t = time.perf_counter()
    formulas = counts_to_formulas(pool)
    novel = ~pd.Index(formulas).isin(pd.Index(load_bandgaps()["formula"]))
    rows = np.arange(len(pool))  # the frame's index: each candidate's row in the given pool
    if cfg.novel_only:
        pool, formulas, novel, rows = pool[novel], formulas[novel], novel[novel], rows[novel]
    funnel["after_novelty"] = len(pool)
    stage["formulas_novelty"] = stage.get("formulas_novelty", 0.0) + time.perf_counter() - t

    cb(0.65, f"labelling {len(pool):,} unique candidates")
    t = time.perf_counter()
    detail = {c: np.zeros(len(pool), np.float64) for c in ("mean", "std", *model.window_columns)}
    step = 50_000
    for s in range(0, len(pool), step):
        z, w = oracle_features_from_counts(pool[s : s + step])
        d = model.predict_detail(z, w)
        for c in list(detail):
            if c in d:
                detail[c][s : s + step] = d[c]
            else:  # e.g. an oracle without a head: its window probability reads mean and σ only
                del detail[c]
        cb(0.65 + 0.3 * min(1.0, (s + step) / max(1, len(pool))), f"labelled {min(s + step, len(pool)):,}")
    mean, std = detail["mean"], detail["std"]
    window_cols = [c for c in detail if c not in ("mean", "std")]
    stage["model"] = stage.get("model", 0.0) + time.perf_counter() - t

    t = time.perf_counter()
    p = model.window_probability(detail, cfg.window)
    keep = p >= cfg.p_threshold
    funnel["in_window"] = int(keep.sum())
    stage["window"] = stage.get("window", 0.0) + time.perf_counter() - t

    t = time.perf_counter()
    sv = compound_valid(formulas[keep], allow_elements_and_alloys=cfg.allow_elements_and_alloys)
    stage["validity"] = stage.get("validity", 0.0) + time.perf_counter() - t
    sel = np.flatnonzero(keep)
    counts_sel = pool[sel]
    # the gap a non-metal averages, for the kept rows: band_gap_mean is P(non-metal) times it
    # (gap_if_nonmetal is the median)
    nonmetal_mean = model.mean_gap_if_nonmetal({c: v[sel] for c, v in detail.items()})
    shown = {} if nonmetal_mean is None else {"mean_gap_if_nonmetal": nonmetal_mean}
    df = pd.DataFrame({
        "formula": formulas[sel].astype(str) if len(sel) else np.array([], dtype=object),
        "band_gap_mean": mean[sel].round(4),
        "band_gap_std": std[sel].round(4),
        "p_in_window": p[sel].round(4),
        "compound_valid": sv,
        "novel": novel[sel],
        "n_atoms": counts_sel.sum(axis=1, dtype=np.int32),
        "n_elements": (counts_sel > 0).sum(axis=1),
        # what the model's P(in window) reads, so another window can be asked of the same rows
        **{c: detail[c][sel].round(4) for c in window_cols},
        **{c: v.round(4) for c, v in shown.items()},
    }, columns=COLUMNS + window_cols + list(shown), index=rows[sel])
    if cfg.valid_only:
        df = df[df["compound_valid"]]
    funnel["passed"] = len(df)
    return df
