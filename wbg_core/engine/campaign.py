"""An active-learning campaign in the autoencoder's latent space, saved after every round.

The files (campaign_store: layout, schema checks, lock) make state.json the commit point,
so a kill at any moment loses at most the round in flight, and a resumed campaign repeats it
exactly: each round's randomness derives from (seed, round).

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

Models: a campaign holds none of its own. Whoever opens it (a page, a CLI command, a benchmark)
hands it the autoencoder that encodes and decodes and the labeller that labels, e.g.
`model_labeller(CheckpointSet(...).oracle())`; a campaign opened with None for either can be
read, exported and given DFT labels, not stepped. `labeller="external"` leaves the gaps to the
user's own DFT, the labeller's values kept as provisional (campaign_labels: export of a round,
import of the computed gaps).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..composition import compound_valid
from ..models.base import GapModel
from . import campaign_labels as labels
from . import campaign_proposals as proposals
from . import campaign_store as store
from .campaign_schema import (  # noqa: F401 - public names, importable from here as before
    VERSION, CampaignBusy, CampaignConfig, CampaignDamaged, CampaignError, RoundReport, clean_seeds, pick_seeds,
    seeds_from_csv)
from .campaign_store import campaign_lock
from .surrogate import GPHyper, GPSurrogate, candidate_latents, objective_values

Progress = Callable[[float, str], None] | None


def _known_formulas() -> frozenset:
    from ..data import load_bandgaps

    return frozenset(load_bandgaps()["formula"])


Labeller = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]


def model_labeller(model: GapModel) -> Labeller:
    """A campaign's labeller from any GapModel (the oracle, a forest): formulas -> (mean, σ) in
    eV as float64; the campaign clips the mean at 0 (as the authors' files needed)."""
    if model is None:
        raise TypeError("model_labeller needs a model (e.g. CheckpointSet.shipped().oracle()), not None")

    def label(formulas: list[str]) -> tuple[np.ndarray, np.ndarray]:
        pred = model.predict(list(formulas))
        return np.asarray(pred.mean, np.float64), np.asarray(pred.std, np.float64)

    return label


class Campaign:
    """new() / load() / step() / run() / history() / export()."""

    def __init__(self, directory: Path | None, config: CampaignConfig, seeds: pd.DataFrame, seeds_z: np.ndarray,
                 rounds: list[pd.DataFrame], rounds_z: list[np.ndarray], state: dict, autoencoder=None,
                 labeller: Labeller | None = None):
        self.directory = Path(directory) if directory is not None else None
        self._ae = autoencoder
        self._labeller = labeller
        self._locked_depth = 0
        self._state_text: str | None = None  # state.json as last read or written: a change means another writer
        self._adopt(config, seeds, seeds_z, rounds, rounds_z, state)

    def _adopt(self, config, seeds, seeds_z, rounds, rounds_z, state) -> None:
        self.config, self.seeds, self.seeds_z = config, seeds, seeds_z
        self.rounds_z, self.state = rounds_z, state
        self.rounds = [labels.overlay(config, r, df, state.get("labels", [])) for r, df in enumerate(rounds, 1)]
        lo, hi = seeds_z.min(axis=0).astype(np.float64), seeds_z.max(axis=0).astype(np.float64)
        pad = (hi - lo) * config.box_margin
        self.lo, self.hi = lo - pad, hi + pad

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def new(cls, directory: str | Path | None, config: CampaignConfig, seed_formulas, seed_gaps, *,
            autoencoder, labeller: Labeller | None, overwrite: bool = False) -> "Campaign":
        """Encode the seeds with `autoencoder` and write the campaign (directory None: in memory
        only); `labeller` (model_labeller(oracle)) labels its rounds, None: it is not stepped
        here. overwrite replaces only a campaign: a folder with other files in it is refused."""
        if autoencoder is None:
            raise TypeError("Campaign.new needs the autoencoder that encodes the seeds "
                            "(e.g. CheckpointSet.shipped().autoencoder()), not None")
        config.validate()
        if directory is not None:
            store.check_replaceable(Path(directory), overwrite)  # refuse before any work or write
        seeds = clean_seeds(seed_formulas, seed_gaps)
        z, ok, errors = autoencoder.encode_formulas(seeds["formula"].to_numpy(dtype=object))
        seeds = seeds[ok].reset_index(drop=True)
        z = z[ok]
        if len(seeds) < 2:
            raise CampaignError("a campaign needs at least 2 distinct seed formulas that fit the 87 x 8 encoding "
                                f"(got {len(seeds)}); the GP and the search box need two points")
        if np.all(z.max(axis=0) - z.min(axis=0) < 1e-9):
            raise CampaignError("the seed latents are all identical; give seeds with different compositions")
        state = {"version": VERSION, "rounds_done": 0, "gp": None, "history": []}
        camp = cls(directory, config, seeds, z.astype(np.float32), [], [], state, autoencoder, labeller)
        if camp.directory is not None:
            d = camp.directory
            d.mkdir(parents=True, exist_ok=True)
            with camp._locked():
                if store.check_replaceable(d, overwrite):  # again, under the lock
                    store.clear_campaign(d)
                camp._state_text = store.write_new(d, config, seeds, camp.seeds_z, state)
        return camp

    @classmethod
    def load(cls, directory: str | Path, *, autoencoder, labeller: Labeller | None) -> "Campaign":
        """Every file is checked against the schema: CampaignDamaged names what is wrong and where.
        autoencoder and labeller: what step() needs; None for either when the campaign is only
        read (status, export, a label import)."""
        snap = store.read_campaign(Path(directory))
        camp = cls(directory, snap.config, snap.seeds, snap.seeds_z, snap.rounds, snap.rounds_z, snap.state,
                   autoencoder, labeller)
        camp._state_text = snap.state_text
        return camp

    @contextlib.contextmanager
    def _locked(self):
        """The directory's lock, taken once per object (run() holds it across its steps)."""
        if self.directory is None or self._locked_depth:
            yield
            return
        with campaign_lock(self.directory):
            self._locked_depth += 1
            try:
                yield
            finally:
                self._locked_depth -= 1

    def _refresh(self) -> None:
        """Under the lock: adopt what another writer committed since this object last read the disk."""
        if self.directory is None or store.read_state_text(self.directory) == self._state_text:
            return
        snap = store.read_campaign(self.directory)
        self._adopt(snap.config, snap.seeds, snap.seeds_z, snap.rounds, snap.rounds_z, snap.state)
        self._state_text = snap.state_text

    @property
    def autoencoder(self):
        if self._ae is None:
            raise CampaignError("this campaign was opened without an autoencoder (autoencoder=None): it can be "
                                "read, not stepped")
        return self._ae

    @property
    def labeller(self) -> Labeller:
        if self._labeller is None:
            raise CampaignError("this campaign was opened without a labeller (labeller=None): it can be read, "
                                "not stepped; pass model_labeller(oracle)")
        return self._labeller

    # ---- data -----------------------------------------------------------------------------
    def points(self) -> tuple[np.ndarray, pd.DataFrame]:
        """(latents, table) of every seed and proposal, an external campaign's pending ones too."""
        seeds = self.seeds.assign(round=0, source="seed", valid=True)
        parts = [seeds.assign(label_source=labels.SEED) if self.config.labeller == "external" else seeds]
        zs = [self.seeds_z]
        for r, (df, z) in enumerate(zip(self.rounds, self.rounds_z), start=1):
            parts.append(df.assign(round=r, source="al"))
            zs.append(z)
        return np.vstack(zs).astype(np.float64), pd.concat(parts, ignore_index=True)

    def data(self, use_provisional: bool = False) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """(latents, objective values, table) of every point the GP sees: not an external
        campaign's pending proposals, unless use_provisional (then with the oracle's value)."""
        z, table = labels.training_set(*self.points(), use_provisional)
        gap = table["band_gap"].to_numpy(np.float64)
        y = objective_values(gap, self.config.objective, self.config.window)
        if "valid" in table:
            pen = ~table["valid"].astype(bool).to_numpy()
            if pen.any():  # paper's penalty rows: 0 eV
                y[pen] = objective_values(np.zeros(pen.sum()), self.config.objective, self.config.window)
        return z, y, table

    @property
    def total_proposals(self) -> int:
        return int(sum(len(df) for df in self.rounds))

    def done(self) -> bool:
        b = self.config.budget
        return b is not None and self.total_proposals >= b

    # ---- one round ------------------------------------------------------------------------
    def step(self, progress_callback: Progress = None, use_provisional: bool = False) -> RoundReport:
        """Fit the GP, propose a batch, decode, label, save. Raises CampaignError when the
        budget is spent, CampaignBusy when another process is stepping this campaign."""
        with self._locked():
            self._refresh()
            return self._step(progress_callback, use_provisional)

    def import_labels(self, table: "labels.LabelFile", replace: bool = False) -> dict:
        """Commit DFT gaps (campaign_labels.read_labels' result) under the lock: all rows or none."""
        with self._locked():
            self._refresh()
            records, report = labels.plan_import(self, table, replace)
            self._commit({**self.state, "labels": records})
        return report

    def _commit(self, state: dict) -> None:
        if self.directory is not None:
            self._state_text = store.write_state(self.directory, state)
        self._adopt(self.config, self.seeds, self.seeds_z, self.rounds, self.rounds_z, state)

    def _step(self, progress_callback: Progress, use_provisional: bool = False) -> RoundReport:
        cfg = self.config
        if self.done():
            raise CampaignError(f"the budget of {cfg.budget} proposals is spent")
        ae, labeller = self.autoencoder, self.labeller  # before any work: a read-only campaign says so
        cb = progress_callback or (lambda f, m: None)
        r = self.state["rounds_done"] + 1
        q = cfg.batch_size if cfg.budget is None else min(cfg.batch_size, cfg.budget - self.total_proposals)
        t0 = time.perf_counter()
        stage: dict[str, float] = {}
        rng = np.random.default_rng([cfg.seed, r])

        cb(0.0, f"round {r}: fitting the GP")
        z_data, y_data, table = self.data(use_provisional)
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

        everything = self.points()[1]["formula"]
        known = set(everything[everything != ""])
        t = time.perf_counter()
        picked = proposals.select(cfg, gp, ae, cands, order, known, q)
        stage["acquisition"] += time.perf_counter() - t - picked.decode_s
        stage["decode"] = picked.decode_s
        pick_idx, formulas, valid = picked.idx, picked.formulas, picked.valid

        cb(0.7, f"round {r}: labelling {int(valid.sum())} formulas")
        t = time.perf_counter()
        n = len(pick_idx)
        gap_m = np.full(n, np.nan)
        gap_s = np.full(n, np.nan)
        if valid.any():
            vf = [f for f, v in zip(formulas, valid) if v]
            m, s = labeller(vf)
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
        df = labels.hold_for_dft(cfg, df)  # external: the oracle's value only provisional
        self.rounds.append(labels.overlay(cfg, r, df, []))  # in memory first: the report reads it
        self.rounds_z.append(z_new)  # ... and both are undone if the disk write fails
        try:
            report = labels.fit_record(self._report(r, df, valid, picked.attempts, picked.valid_decodes,
                                                    picked.duplicates, picked.rejected, hyper, t0, stage),
                                       df, table)
            state = {**self.state, "rounds_done": r, "gp": hyper.to_dict(),
                     "history": [*self.state["history"], asdict(report)]}
            if self.directory is not None:
                store.write_round(self.directory, r, df, z_new, hyper.to_dict())
                self._state_text = store.write_state(self.directory, state)
        except BaseException:
            self.rounds.pop()
            self.rounds_z.pop()
            raise
        self.state = state
        cb(1.0, f"round {r}: best {report.best_gap:.2f} eV ({report.best_formula}), {report.hits_round} hits")
        return report

    def _report(self, r, df, valid, attempts, valid_n, dup, rejected, hyper, t0, stage) -> RoundReport:
        lo_w, hi_w = self.config.window
        vg = df.loc[df["valid"], "band_gap"].dropna()
        _, _, all_table = self.data()
        all_valid = all_table[all_table["valid"].astype(bool)]
        best_i = all_valid["band_gap"].idxmax()
        al_ok = (all_table["source"] == "al").to_numpy() & all_table["valid"].astype(bool).to_numpy()
        hits_total = int((al_ok & (all_table["band_gap"] >= lo_w).to_numpy() & (all_table["band_gap"] <= hi_w).to_numpy()
                          & compound_valid(np.where(al_ok, all_table["formula"].to_numpy(dtype=object), None))).sum())
        return RoundReport(
            round=r, proposals=len(df), labelled=int(valid.sum()), decode_attempts=int(attempts), valid_decodes=int(valid_n),
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

    def run(self, rounds: int, progress_callback: Progress = None, stop: Callable[[], bool] | None = None,
            use_provisional: bool = False) -> list[RoundReport]:
        """Up to `rounds` rounds (fewer when the budget runs out or stop() says so)."""
        reports = []
        with self._locked():  # held across the rounds: no other runner slips in between
            for k in range(rounds):
                self._refresh()
                if self.done() or (stop is not None and stop()):
                    break
                cb = None
                if progress_callback is not None:
                    cb = lambda f, m, k=k: progress_callback((k + f) / rounds, m)  # noqa: E731
                reports.append(self.step(cb, use_provisional))
        return reports

    # ---- views ------------------------------------------------------------------------------
    def history(self) -> pd.DataFrame:
        rows = []
        for h in self.state["history"]:
            row = {k: v for k, v in h.items() if k not in ("stage_s", "gp")}
            row.update({f"{k}_s": v for k, v in h.get("stage_s", {}).items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def status(self) -> dict:
        return labels.status(self)

    def labelled(self) -> pd.DataFrame:
        """Every seed and valid AL formula with its gap (what a screening model trains on)."""
        _, _, table = self.data()
        t = table[table["valid"].astype(bool)]
        return t[["formula", "band_gap", "source", "round"]].reset_index(drop=True)

    def export(self, path: str | Path) -> Path:
        """CSV of every point: seeds and proposals (pending ones too), with labels, windows and novelty."""
        return labels.export_points(self, path, _known_formulas())
