"""An active-learning campaign in the autoencoder's latent space, saved after every round.

Directory layout (JSON, CSV and .npy only; no pickles):
  config.json            CampaignConfig
  seeds.csv, seeds_z.npy the seed formulas, gaps and latents
  rounds/0001/           proposals.csv (one row per proposal) and z.npy (their latents)
  state.json             rounds_done, GP hyper-parameters, per-round reports

A round is written to a temporary directory renamed into place, then state.json is
replaced; state.json is the commit point, so a kill at any moment loses at most the round
in flight and a resumed campaign repeats it exactly (each round's randomness derives from
(seed, round)).

Invalid decodes: the paper registers them with target 0 eV and spends budget on them
(`invalid="penalty"`). The default, `invalid="skip"`, decodes the UCB-ranked candidates
before spending budget and proposes only points that decode to a new formula: a decode
costs milliseconds, an oracle (DFT) label does not, and a 0 eV penalty teaches the GP a
cliff that is not in the band gap at all. The valid-decode rate of the ranked candidates
is still reported each round.

Proposal rule: by default (`proposal_rule="compound"`) a decode counts only when it is a
compound under the project's validity rule (wbg_core.composition.validity: >= 2 elements, not
all metals, ICSD-24 charge neutrality, Pauling test). H, Hf, Cs2 or PtXe2Cl are skipped before
any label is spent on them (skip mode) or penalised like an invalid decode (penalty mode);
each round reports how many the rule turned away. `proposal_rule="any"` labels every decoded
formula, as the paper did; campaigns saved before the rule existed load with "any".
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..composition import compound_valid
from .surrogate import GPHyper, GPSurrogate, candidate_latents, objective_values

VERSION = 1
Progress = Callable[[float, str], None] | None



def _triage(ids, decoded, known: set, seen: set, accept: Callable[[str], bool] | None = None
            ) -> tuple[list[tuple[int, str | None]], int, int, int]:
    """Decodes in order, minus duplicates of known or already-seen formulas (seen grows):
    (kept (id, formula or None for an invalid decode), valid decodes, duplicates, rejected
    by `accept`, which turns a decoded formula into an invalid one)."""
    kept: list[tuple[int, str | None]] = []
    n_valid = n_dup = n_rej = 0
    for i, f in zip(ids, decoded):
        if f is not None and accept is not None and not accept(f):
            n_rej += 1
            f = None
        if f is not None:
            n_valid += 1
            if f in known or f in seen:
                n_dup += 1
                continue
            seen.add(f)
        kept.append((int(i), f))
    return kept, n_valid, n_dup, n_rej

class CampaignError(ValueError):
    """Bad campaign input or state; the message says what to fix."""


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
    box_margin: float = 0.0  # widen the seed box by this fraction of its width (paper: 0)
    max_fit_points: int = 600
    fit_steps: int = 30
    warm_steps: int = 10
    seed: int = 0

    def validate(self) -> "CampaignConfig":
        if self.objective not in ("max", "window"):
            raise CampaignError(f"objective must be 'max' or 'window', not {self.objective!r}")
        if self.objective == "window":
            if self.window_min is None or self.window_max is None:
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


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _atomic_npy(path: Path, arr: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npy")
    with os.fdopen(fd, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
    os.replace(tmp, path)


def _known_formulas() -> frozenset:
    from ..data import load_bandgaps

    return frozenset(load_bandgaps()["formula"])


def default_labeller(formulas: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The oracle ensemble: mean (clipped at 0, as the authors' files needed) and std."""
    from ..models import load_oracle

    pred = load_oracle().predict(formulas)
    return pred["band_gap_mean"].to_numpy(np.float64), pred["band_gap_std"].to_numpy(np.float64)


class Campaign:
    """new() / load() / step() / run() / history() / export()."""

    def __init__(self, directory: Path | None, config: CampaignConfig, seeds: pd.DataFrame, seeds_z: np.ndarray,
                 rounds: list[pd.DataFrame], rounds_z: list[np.ndarray], state: dict, autoencoder=None,
                 labeller=None):
        self.directory = Path(directory) if directory is not None else None
        self.config = config
        self.seeds = seeds
        self.seeds_z = seeds_z
        self.rounds = rounds
        self.rounds_z = rounds_z
        self.state = state
        self._ae = autoencoder
        self._labeller = labeller or default_labeller
        lo, hi = seeds_z.min(axis=0).astype(np.float64), seeds_z.max(axis=0).astype(np.float64)
        pad = (hi - lo) * config.box_margin
        self.lo, self.hi = lo - pad, hi + pad

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def new(cls, directory: str | Path | None, config: CampaignConfig, seed_formulas, seed_gaps,
            autoencoder=None, labeller=None, overwrite: bool = False) -> "Campaign":
        """Encode the seeds and write the campaign (directory None: in memory only)."""
        from ..models import load_autoencoder

        config.validate()
        seeds = clean_seeds(seed_formulas, seed_gaps)
        ae = autoencoder or load_autoencoder()
        z, ok, errors = ae.encode_formulas(seeds["formula"].to_numpy(dtype=object))
        seeds = seeds[ok].reset_index(drop=True)
        z = z[ok]
        if len(seeds) < 2:
            raise CampaignError("a campaign needs at least 2 distinct seed formulas that fit the 87 x 8 encoding "
                                f"(got {len(seeds)}); the GP and the search box need two points")
        if np.all(z.max(axis=0) - z.min(axis=0) < 1e-9):
            raise CampaignError("the seed latents are all identical; give seeds with different compositions")
        state = {"version": VERSION, "rounds_done": 0, "gp": None, "history": []}
        camp = cls(directory, config, seeds, z.astype(np.float32), [], [], state, ae, labeller)
        if camp.directory is not None:
            d = camp.directory
            if d.exists() and any(d.iterdir()):
                if not overwrite:
                    raise CampaignError(f"{d} already holds a campaign or other files; pick a new directory")
                shutil.rmtree(d)
            d.mkdir(parents=True, exist_ok=True)
            _atomic_write(d / "config.json", json.dumps(asdict(config), indent=2))
            _atomic_write(d / "seeds.csv", seeds.to_csv(index=False))
            _atomic_npy(d / "seeds_z.npy", camp.seeds_z)
            camp._save_state()
        return camp

    @classmethod
    def load(cls, directory: str | Path, autoencoder=None, labeller=None) -> "Campaign":
        d = Path(directory)
        if not (d / "state.json").exists():
            raise CampaignError(f"{d} is not a campaign directory (no state.json); create one with 'campaign new'")
        try:
            state = json.loads((d / "state.json").read_text())
            cfg = json.loads((d / "config.json").read_text())
            cfg.setdefault("proposal_rule", "any")  # saved before the rule: keep its behaviour
            config = CampaignConfig(**{k: v for k, v in cfg.items() if k in CampaignConfig.__dataclass_fields__})
            seeds = pd.read_csv(d / "seeds.csv", keep_default_na=False, dtype={"formula": str})
            seeds_z = np.load(d / "seeds_z.npy", allow_pickle=False)
            rounds, rounds_z = [], []
            for r in range(1, state["rounds_done"] + 1):
                rd = d / "rounds" / f"{r:04d}"
                rounds.append(pd.read_csv(rd / "proposals.csv", keep_default_na=False,
                                          dtype={"formula": str}, na_values={"band_gap_mean": [""], "band_gap_std": [""]}))
                rounds_z.append(np.load(rd / "z.npy", allow_pickle=False))
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise CampaignError(f"campaign {d} is damaged: {exc}") from exc
        return cls(d, config.validate(), seeds, seeds_z, rounds, rounds_z, state, autoencoder, labeller)

    @property
    def autoencoder(self):
        if self._ae is None:
            from ..models import load_autoencoder

            self._ae = load_autoencoder()
        return self._ae

    # ---- data -----------------------------------------------------------------------------
    def data(self) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """(latents, objective values, table) of every point the GP sees."""
        parts = [self.seeds.assign(round=0, source="seed", valid=True)]
        zs = [self.seeds_z]
        for r, (df, z) in enumerate(zip(self.rounds, self.rounds_z), start=1):
            parts.append(df.assign(round=r, source="al"))
            zs.append(z)
        table = pd.concat(parts, ignore_index=True)
        gap = table["band_gap"].to_numpy(np.float64)
        y = objective_values(gap, self.config.objective, self.config.window)
        if "valid" in table:
            pen = ~table["valid"].astype(bool).to_numpy()
            if pen.any():  # paper's penalty rows: 0 eV
                y[pen] = objective_values(np.zeros(pen.sum()), self.config.objective, self.config.window)
        return np.vstack(zs).astype(np.float64), y, table

    @property
    def total_proposals(self) -> int:
        return int(sum(len(df) for df in self.rounds))

    def done(self) -> bool:
        b = self.config.budget
        return b is not None and self.total_proposals >= b

    # ---- one round ------------------------------------------------------------------------
    def step(self, progress_callback: Progress = None) -> RoundReport:
        """Fit the GP, propose a batch, decode, label, save. Raises CampaignError when the
        budget is spent."""
        cfg = self.config
        if self.done():
            raise CampaignError(f"the budget of {cfg.budget} proposals is spent")
        cb = progress_callback or (lambda f, m: None)
        r = self.state["rounds_done"] + 1
        q = cfg.batch_size if cfg.budget is None else min(cfg.batch_size, cfg.budget - self.total_proposals)
        t0 = time.perf_counter()
        stage: dict[str, float] = {}
        rng = np.random.default_rng([cfg.seed, r])

        cb(0.0, f"round {r}: fitting the GP")
        z_data, y_data, table = self.data()
        gp = GPSurrogate(self.lo, self.hi, fit_steps=cfg.fit_steps, warm_steps=cfg.warm_steps,
                         max_fit_points=cfg.max_fit_points, seed=cfg.seed * 1000 + r)
        hyper = gp.fit(z_data, y_data, warm=GPHyper.from_dict(self.state.get("gp")))
        stage["gp_fit"] = time.perf_counter() - t0

        cb(0.3, f"round {r}: acquisition")
        t = time.perf_counter()
        cands = candidate_latents(rng, self.lo, self.hi, z_data, y_data, cfg.n_candidates)
        mean, std = gp.predict(cands)
        order = np.argsort(-(mean + cfg.kappa * std))
        stage["acquisition"] = time.perf_counter() - t

        known = set(table["formula"][table["formula"] != ""])
        ae = self.autoencoder
        t = time.perf_counter()
        dec_s = 0.0
        attempts = valid_n = dup = rejected = 0
        accept = None
        if cfg.proposal_rule == "compound":
            from ..composition import compound_verdict

            accept = lambda f: compound_verdict(f).valid  # noqa: E731
        if cfg.invalid == "penalty":
            idx, mu, sd, ucb = gp.select_batch(cands, q, cfg.kappa)
            td = time.perf_counter()
            dec = ae.decode(cands[idx], rule=cfg.decode_rule)
            dec_s += time.perf_counter() - td
            attempts = len(idx)
            kept, valid_n, dup, rejected = _triage(idx, dec, known, set(), accept)
            pick_idx = np.array([i for i, _ in kept], np.int64)
            formulas = [f or "" for _, f in kept]
            valid = np.array([f is not None for _, f in kept], bool)
        else:
            # decode the UCB-ranked candidates in chunks until q new valid formulas are in
            # hand (x3 for the batch rule to choose among), then kriging believer on those.
            want = 3 * q
            pool_idx: list[int] = []
            pool_f: list[str] = []
            seen = set()
            chunk = max(4 * q, 100)
            for s in range(0, len(order), chunk):
                ids = order[s : s + chunk]
                td = time.perf_counter()
                dec = ae.decode(cands[ids], rule=cfg.decode_rule)
                dec_s += time.perf_counter() - td
                attempts += len(ids)
                kept, n_valid, n_dup, n_rej = _triage(ids, dec, known, seen, accept)
                valid_n, dup, rejected = valid_n + n_valid, dup + n_dup, rejected + n_rej
                for i, f in kept:
                    if f is not None:
                        pool_idx.append(i)
                        pool_f.append(f)
                if len(pool_idx) >= want:
                    break
            pool_idx_a = np.array(pool_idx, np.int64)
            if len(pool_idx_a):
                sel, mu, sd, ucb = gp.select_batch(cands[pool_idx_a], q, cfg.kappa)
            else:
                sel = np.zeros(0, np.int64)
            pick_idx = pool_idx_a[sel]
            formulas = [pool_f[i] for i in sel]
            valid = np.ones(len(sel), bool)
        stage["acquisition"] += time.perf_counter() - t - dec_s
        stage["decode"] = dec_s

        cb(0.7, f"round {r}: labelling {int(valid.sum())} formulas")
        t = time.perf_counter()
        n = len(pick_idx)
        gap_m = np.full(n, np.nan)
        gap_s = np.full(n, np.nan)
        if valid.any():
            vf = [f for f, v in zip(formulas, valid) if v]
            m, s = self._labeller(vf)
            gap_m[valid], gap_s[valid] = np.clip(m, 0, None), s
        stage["label"] = time.perf_counter() - t
        # the GP learns the label at the formula's own latent (what a seed of that formula has)
        z_new = cands[pick_idx].astype(np.float32)
        if valid.any():
            zf, ok, _ = ae.encode_formulas([f for f, v in zip(formulas, valid) if v])
            zv = z_new[valid]
            zv[ok] = zf[ok]
            z_new[valid] = zv
        p_mean, p_std = gp.predict(cands[pick_idx]) if n else (np.zeros(0), np.zeros(0))
        novel_set = _known_formulas()
        lo_w, hi_w = cfg.window
        df = pd.DataFrame({
            "formula": formulas,
            "valid": valid,
            "band_gap": np.where(valid, gap_m, 0.0),
            "band_gap_mean": gap_m,
            "band_gap_std": gap_s,
            "gp_mean": p_mean,
            "gp_std": p_std,
            "ucb": p_mean + cfg.kappa * p_std,
            # a hit is a compound in the window, whichever proposal rule labelled it
            "in_window": valid & (gap_m >= lo_w) & (gap_m <= hi_w) & compound_valid(
                np.where(valid, np.asarray(formulas, dtype=object), None)),
            "novel": valid & np.array([f not in novel_set for f in formulas], bool),
        })
        self._commit_round(r, df, z_new, hyper)

        vg = df.loc[df["valid"], "band_gap"]
        _, _, all_table = self.data()
        all_valid = all_table[all_table["valid"].astype(bool)]
        best_i = all_valid["band_gap"].idxmax()
        al_ok = (all_table["source"] == "al").to_numpy() & all_table["valid"].astype(bool).to_numpy()
        hits_total = int((al_ok & (all_table["band_gap"] >= lo_w).to_numpy() & (all_table["band_gap"] <= hi_w).to_numpy()
                          & compound_valid(np.where(al_ok, all_table["formula"].to_numpy(dtype=object), None))).sum())
        report = RoundReport(
            round=r, proposals=n, labelled=int(valid.sum()), decode_attempts=int(attempts), valid_decodes=int(valid_n),
            valid_decode_rate=float(valid_n / attempts) if attempts else 0.0, duplicates_skipped=int(dup),
            invalid_penalised=int((~valid).sum()),
            best_gap_round=float(vg.max()) if len(vg) else None,
            best_formula_round=str(df.loc[vg.idxmax(), "formula"]) if len(vg) else None,
            best_gap=float(all_valid.loc[best_i, "band_gap"]), best_formula=str(all_valid.loc[best_i, "formula"]),
            hits_round=int(df["in_window"].sum()), hits_total=hits_total,
            novel_round=int(df["novel"].sum()), novel_fraction_round=float(df["novel"].sum() / max(1, valid.sum())),
            n_data=len(all_table), total_proposals=self.total_proposals,
            time_s=time.perf_counter() - t0, stage_s={k: round(v, 3) for k, v in stage.items()},
            gp={k: v for k, v in hyper.to_dict().items() if k in ("lengthscale", "outputscale", "noise", "fit_points")},
            rule_rejected=int(rejected),
        )
        self.state["history"].append(asdict(report))
        self._save_state()
        cb(1.0, f"round {r}: best {report.best_gap:.2f} eV ({report.best_formula}), {report.hits_round} hits")
        return report

    def run(self, rounds: int, progress_callback: Progress = None, stop: Callable[[], bool] | None = None) -> list[RoundReport]:
        """Up to `rounds` rounds (fewer when the budget runs out or stop() says so)."""
        reports = []
        for k in range(rounds):
            if self.done() or (stop is not None and stop()):
                break
            cb = None
            if progress_callback is not None:
                cb = lambda f, m, k=k: progress_callback((k + f) / rounds, m)  # noqa: E731
            reports.append(self.step(cb))
        return reports

    def _commit_round(self, r: int, df: pd.DataFrame, z: np.ndarray, hyper: GPHyper) -> None:
        self.rounds.append(df)
        self.rounds_z.append(z)
        self.state["rounds_done"] = r
        self.state["gp"] = hyper.to_dict()
        if self.directory is None:
            return
        rounds_dir = self.directory / "rounds"
        rounds_dir.mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=rounds_dir, prefix=f".{r:04d}."))
        df.to_csv(tmp / "proposals.csv", index=False)
        np.save(tmp / "z.npy", z, allow_pickle=False)
        (tmp / "gp.json").write_text(json.dumps(hyper.to_dict(), indent=2))
        final = rounds_dir / f"{r:04d}"
        if final.exists():  # left by a round killed after its rename, before state.json
            shutil.rmtree(final)
        os.replace(tmp, final)

    def _save_state(self) -> None:
        if self.directory is not None:
            _atomic_write(self.directory / "state.json", json.dumps(self.state, indent=2, default=float))

    # ---- views ------------------------------------------------------------------------------
    def history(self) -> pd.DataFrame:
        rows = []
        for h in self.state["history"]:
            row = {k: v for k, v in h.items() if k not in ("stage_s", "gp")}
            row.update({f"{k}_s": v for k, v in h.get("stage_s", {}).items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def status(self) -> dict:
        _, _, table = self.data()
        hist = self.state["history"]
        return {
            "directory": str(self.directory) if self.directory else None,
            "config": asdict(self.config),
            "seeds": len(self.seeds),
            "rounds_done": self.state["rounds_done"],
            "total_proposals": self.total_proposals,
            "labelled_al": int(((table["source"] == "al") & table["valid"].astype(bool)).sum()),
            "budget_left": None if self.config.budget is None else max(0, self.config.budget - self.total_proposals),
            "best_gap": hist[-1]["best_gap"] if hist else float(self.seeds["band_gap"].max()),
            "best_formula": hist[-1]["best_formula"] if hist else str(self.seeds.loc[self.seeds["band_gap"].idxmax(), "formula"]),
            "hits_total": hist[-1]["hits_total"] if hist else 0,
            "gp": self.state.get("gp"),
        }

    def labelled(self) -> pd.DataFrame:
        """Every seed and valid AL formula with its gap (what a screening model trains on)."""
        _, _, table = self.data()
        t = table[table["valid"].astype(bool)]
        return t[["formula", "band_gap", "source", "round"]].reset_index(drop=True)

    def export(self, path: str | Path) -> Path:
        """CSV of every point: seeds and proposals, with labels, windows and novelty."""

        _, _, table = self.data()
        lo_w, hi_w = self.config.window
        table = table.copy()
        known = _known_formulas()
        table["novel"] = [bool(f) and f not in known for f in table["formula"]]
        table["compound_valid"] = compound_valid(np.where(table["formula"] != "", table["formula"], None))
        table["in_window"] = (table["valid"].astype(bool) & (table["band_gap"] >= lo_w) & (table["band_gap"] <= hi_w)
                              & table["compound_valid"])
        cols = ["round", "source", "formula", "valid", "band_gap", "band_gap_mean", "band_gap_std", "gp_mean",
                "gp_std", "ucb", "in_window", "novel", "compound_valid"]
        out = table[[c for c in cols if c in table]]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, out.to_csv(index=False))
        return path


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
