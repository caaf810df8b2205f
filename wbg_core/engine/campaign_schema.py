"""What a campaign is made of, checked on the way in: its configuration, its seed set, its
per-round reports and state.json. campaign_store reads and writes these files; campaign
steps them. Errors say what to fix without a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

VERSION = 1
LABELLERS = ("oracle", "external")


class CampaignError(ValueError):
    """Bad campaign input or state; the message says what to fix."""


class CampaignDamaged(CampaignError):
    """A campaign's files disagree with the schema or with each other; `detail` names no server path."""

    def __init__(self, directory: Path, detail: str):
        self.directory, self.detail = Path(directory), detail
        super().__init__(f"campaign {directory} is damaged: {detail}")


class CampaignBusy(CampaignError):
    """Another process (or session) holds the campaign's lock."""

    def __init__(self, directory: Path, pid: str):
        self.directory, self.pid = Path(directory), pid
        super().__init__(f"campaign {directory} is being run by another process (pid {pid}); wait for it or stop it")


@dataclass
class CampaignConfig:
    objective: str = "max"  # "max": widest gap; "window": land in [window_min, window_max]
    window_min: float | None = 5.0  # hits are gaps in [window_min, window_max] (max: >= window_min)
    window_max: float | None = None
    kappa: float = 10.0  # the paper's UCB kappa
    batch_size: int = 20  # the paper's q
    budget: int | None = None  # total proposals; None: unlimited
    n_candidates: int = 1500
    decode_rule: str = "strict"  # the paper's
    invalid: str = "skip"  # or "penalty" (paper: invalid decodes registered at 0 eV)
    proposal_rule: str = "compound"  # or "any": label every decoded formula (the paper)
    labeller: str = "oracle"  # or "external": the user's own DFT labels, imported (campaign_labels)
    box_margin: float = 0.0  # widen the seed box by this fraction of its width (paper: 0)
    max_fit_points: int = 600
    fit_steps: int = 30
    warm_steps: int = 10
    seed: int = 0

    def validate(self) -> "CampaignConfig":
        if self.objective not in ("max", "window"):
            raise CampaignError(f"objective must be 'max' or 'window', not {self.objective!r}")
        if self.objective == "window" and (self.window_min is None or self.window_max is None):
            raise CampaignError("a window objective needs both window_min and window_max (eV)")
        if self.window_min is not None and self.window_max is not None:
            if self.window_max < self.window_min:
                raise CampaignError(f"the window [{self.window_min}, {self.window_max}] eV is inverted: max < min")
            if self.window_max == self.window_min:
                raise CampaignError(f"the window [{self.window_min}, {self.window_max}] eV is empty")
        if self.window_max is not None and self.window_max <= 0:
            raise CampaignError("window_max must be above 0 eV")
        if not np.isfinite(self.kappa) or self.kappa < 0:
            raise CampaignError(f"kappa must be a number >= 0, got {self.kappa}")
        if self.batch_size < 1:
            raise CampaignError("batch_size must be at least 1")
        if self.budget is not None and self.budget < 1:
            raise CampaignError("budget must be at least 1 proposal (or None)")
        if self.invalid not in ("skip", "penalty"):
            raise CampaignError("invalid must be 'skip' or 'penalty'")
        if self.proposal_rule not in ("compound", "any"):
            raise CampaignError("proposal_rule must be 'compound' (the validity rule) or 'any' (the paper)")
        if self.labeller not in LABELLERS:
            raise CampaignError(f"labeller must be 'oracle' or 'external' (your own DFT labels), not {self.labeller!r}")
        if self.decode_rule not in ("strict", "argmax"):
            raise CampaignError("decode_rule must be 'strict' or 'argmax'")
        if self.n_candidates < self.batch_size:
            raise CampaignError("n_candidates must be at least batch_size")
        return self

    @property
    def window(self) -> tuple[float, float]:
        return (self.window_min if self.window_min is not None else -np.inf,
                self.window_max if self.window_max is not None else np.inf)


@dataclass
class RoundReport:
    round: int
    proposals: int
    labelled: int
    decode_attempts: int
    valid_decodes: int
    valid_decode_rate: float
    duplicates_skipped: int
    invalid_penalised: int
    best_gap_round: float | None
    best_formula_round: str | None
    best_gap: float
    best_formula: str
    hits_round: int
    hits_total: int
    novel_round: int
    novel_fraction_round: float
    n_data: int
    total_proposals: int
    time_s: float
    stage_s: dict = field(default_factory=dict)
    gp: dict = field(default_factory=dict)
    rule_rejected: int = 0  # decodes the proposal rule turned away (not compounds)
    pending: int = 0  # external labeller: proposals left for the user's DFT
    trained_on: int | None = None  # points the GP was fitted on (None: saved before it was recorded)
    provisional_used: int = 0  # of those, pending rows with the oracle's provisional value (on request)


class GPState(BaseModel):
    """GPHyper.to_dict(): non-finite values are written as null."""

    model_config = ConfigDict(strict=True, extra="forbid")
    lengthscale: float | None
    outputscale: float | None
    noise: float | None
    constant: float | None
    y_mean: float | None
    y_std: float | None
    fit_points: int = 0
    fit_steps: int = 0
    neg_mll: float | None = None


class LabelRecord(BaseModel):
    """One imported DFT gap of an external campaign: it lives in state.json, so an import
    commits (or not) with one atomic write, and the round files stay as the round wrote them."""

    model_config = ConfigDict(strict=True, extra="forbid")
    round: int = Field(ge=1)
    formula: str = Field(min_length=1)
    band_gap: float = Field(ge=0, allow_inf_nan=False)
    imported: str  # ISO time (UTC)
    file: str | None = None  # the CSV's name, no folder


class StateFile(BaseModel):
    """state.json: the commit point of every round and of every label import."""

    model_config = ConfigDict(strict=True, extra="forbid")
    version: Literal[VERSION]
    rounds_done: int = Field(ge=0)
    gp: GPState | None
    history: list[RoundReport]
    labels: list[LabelRecord] = Field(default_factory=list)  # absent before external labellers



# ---- seeds ------------------------------------------------------------------------------------
def clean_seeds(formulas, gaps) -> pd.DataFrame:
    """Canonical, de-duplicated (mean gap per formula), finite, non-negative gaps."""
    from ..composition import FormulaError, canonical_formula

    formulas = list(formulas)
    gaps = np.asarray(list(gaps), dtype=np.float64)
    if len(formulas) != len(gaps):
        raise CampaignError(f"{len(formulas)} seed formulas but {len(gaps)} gaps")
    rows, bad = [], []
    for f, g in zip(formulas, gaps):
        try:
            c = canonical_formula(str(f))
        except FormulaError as exc:
            bad.append(str(exc))
            continue
        if not np.isfinite(g) or g < 0:
            bad.append(f"{f}: band gap {g} is not a number >= 0")
            continue
        rows.append((c, g))
    if not rows:
        raise CampaignError("no usable seed formula" + (f": {bad[:3]}" if bad else ""))
    df = pd.DataFrame(rows, columns=["formula", "band_gap"]).groupby("formula", as_index=False, sort=False)["band_gap"].mean()
    return df


def pick_seeds(n: int, seed: int = 0, max_gap: float | None = None, min_gap: float | None = None,
               subset: str = "encodable") -> pd.DataFrame:
    """n random training-split formulas with their MP gaps (Exp 2/3: random; Exp 4: max_gap 3.0).

    Only the train split: validation and test formulas stay unseen by every AL run."""
    from ..data import load_bandgaps, split
    from ..settings import get_settings

    if n < 2:
        raise CampaignError("pick at least 2 seeds")
    train = split(load_bandgaps(), seed=get_settings().split_seed, subset=subset)["train"]
    if max_gap is not None:
        train = train[train["band_gap"] < max_gap]
    if min_gap is not None:
        train = train[train["band_gap"] >= min_gap]
    if len(train) < n:
        raise CampaignError(f"only {len(train)} training formulas match; asked for {n}")
    pick = train.sample(n=n, random_state=seed)
    return pick[["formula", "band_gap"]].reset_index(drop=True)


def seeds_from_csv(path: str | Path) -> pd.DataFrame:
    """A user's table: columns formula and band_gap (eV)."""
    path = Path(path)
    if not path.exists():
        raise CampaignError(f"seed file {path} does not exist")
    try:
        df = pd.read_csv(path, keep_default_na=False, dtype={"formula": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CampaignError(f"{path} is not a readable CSV: {exc}") from exc
    cols = {c.strip().lower(): c for c in df.columns}
    if "formula" not in cols or "band_gap" not in cols:
        raise CampaignError(f"{path} needs columns 'formula' and 'band_gap', has {list(df.columns)}")
    gaps = pd.to_numeric(df[cols["band_gap"]], errors="coerce")
    return clean_seeds(df[cols["formula"]], gaps)
