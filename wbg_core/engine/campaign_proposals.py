"""Which of a round's UCB-ranked candidates become its proposals (campaign.Campaign.step).

Candidates are decoded in UCB order. A decode the proposal rule turns away counts as an
invalid one, and a formula the campaign already holds, or that came up earlier this round,
is dropped as a duplicate. Penalty mode (the paper) takes the GP's batch first and keeps its
invalid decodes as 0 eV rows; skip mode (the default) decodes until 3 x q new valid formulas
are in hand and lets the batch rule choose among those only.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class Proposals:
    idx: np.ndarray  # rows of the candidates proposed
    formulas: list[str]  # "" for an invalid decode (penalty mode)
    valid: np.ndarray
    attempts: int  # candidates decoded
    valid_decodes: int
    duplicates: int
    rejected: int  # valid decodes the proposal rule turned away
    decode_s: float  # seconds spent decoding


def triage(ids, decoded, known: set, seen: set, accept: Callable[[str], bool] | None = None
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


def select(cfg, gp, ae, cands: np.ndarray, order: np.ndarray, known: set, q: int) -> Proposals:
    """Up to q proposals among `cands` (UCB ranking `order`) for a campaign of config `cfg`."""
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
        kept, valid_n, dup, rejected = triage(idx, dec, known, set(), accept)
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
            kept, n_valid, n_dup, n_rej = triage(ids, dec, known, seen, accept)
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
    return Proposals(pick_idx, formulas, valid, attempts, valid_n, dup, rejected, dec_s)
