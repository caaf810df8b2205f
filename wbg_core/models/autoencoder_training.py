"""Training the autoencoder (resumable per epoch) and measuring a checkpoint for its card.

Lives apart from the model (autoencoder.py) so that loading a checkpoint never pulls in the
training loop, the element substitution (pymatgen) or the card's measurements.
"""
from __future__ import annotations

import sys
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..composition import counts_to_formulas, counts_to_onehot, encode_counts, onehot_to_counts
from .autoencoder import (NAME, REFINE_LR, REFINE_MARGIN, SMOKE_REFINE_STEPS, AEConfig, Autoencoder, ConvAutoencoder,
                          load)
from .checkpoint import ModelError, save_checkpoint
from .latent_map import build_latent_map


def substitute_elements(counts: np.ndarray, fraction: float, rng: np.random.Generator,
                        pool: np.ndarray, within: int = 0, oxidation: bool = False) -> np.ndarray:
    """A copy of `counts` (N, 87) where a `fraction` of the rows have each element replaced,
    with probability 1/2 and at least one per row, by a random element of `pool` that the
    row does not hold; the stoichiometry is kept. `oxidation`: only elements sharing a common
    oxidation state with the one replaced; `within` > 0: only the 2 x `within` of those
    nearest on the Pettifor scale. Any free pool element when all candidates are taken."""
    out = counts.copy()
    cands = _substitutes(tuple(int(e) for e in pool), within, oxidation)
    for r in np.flatnonzero(rng.random(len(out)) < fraction):
        present = np.flatnonzero(out[r])
        swap = present[rng.random(len(present)) < 0.5]
        if not len(swap):
            swap = present[rng.integers(len(present), size=1)]
        taken = set(present.tolist())
        for el in swap:
            free = [e for e in cands.get(int(el), ()) if e not in taken] or [int(e) for e in pool if int(e) not in taken]
            new = free[rng.integers(len(free))]
            taken.add(new)
            out[r, new] = out[r, el]
            out[r, el] = 0
    return out


@lru_cache(maxsize=8)
def _substitutes(pool: tuple[int, ...], within: int, oxidation: bool) -> dict[int, tuple[int, ...]]:
    """Candidate substitutes per element (by vocabulary index), nearest on the Pettifor scale first."""
    from pymatgen.core import Element

    from ..composition.elements import VOCAB

    elements = {e: Element(VOCAB[e]) for e in pool}
    order = sorted(pool, key=lambda e: elements[e].mendeleev_no or 0)
    rank = {e: r for r, e in enumerate(order)}
    ox = {e: set(elements[e].common_oxidation_states) for e in pool}
    out = {}
    for e in pool:
        c = [p for p in pool if p != e and (not oxidation or _same_role(ox[e], ox[p]))]
        c.sort(key=lambda p: (abs(rank[p] - rank[e]), rank[p]))
        out[e] = tuple(c[: 2 * within] if within else c)
    return out


def _same_role(a: set, b: set) -> bool:
    """Anions by anions of the same lowest charge, cations by cations sharing a state."""
    if not a or not b:
        return not a
    if min(a) < 0:
        return min(a) == min(b)
    return min(b) > 0 and bool(a & b)


def _bce_sum(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="mean")


def train(out: Path, cfg: AEConfig, device: torch.device, command: str | None = None, limit: int | None = None) -> dict:
    """Train on the encodable formulas of the train split; resumable per epoch."""
    from ..data import load_bandgaps, split
    from .trainer import Trainer
    from .training import autocast, batches, card_base, data_checksum

    df = load_bandgaps()
    parts = split(df, seed=cfg.seed, subset="encodable")
    sha = data_checksum()
    counts = {k: encode_counts(v["formula"].to_numpy(dtype=object)).counts for k, v in parts.items()}
    if limit:
        counts = {k: v[:limit] for k, v in counts.items()}
    x_train = torch.from_numpy(counts_to_onehot(counts["train"])).to(device)
    x_val = torch.from_numpy(counts_to_onehot(counts["val"])).to(device)
    pool = np.flatnonzero((counts["train"] > 0).any(axis=0))  # elements substitution may bring in

    torch.manual_seed(cfg.seed)
    net = ConvAutoencoder(cfg.latent_dim, tuple(cfg.channels)).to(device)
    init_card = None
    if cfg.init_from:
        start = load(Path(cfg.init_from))
        if start.config["kwargs"] != {"latent_dim": cfg.latent_dim, "channels": list(cfg.channels)}:
            raise ModelError(f"{cfg.init_from}: its layers {start.config['kwargs']} differ from this run's")
        net.load_state_dict(start.net.state_dict())
        init_card = {k: start.card.get(k) for k in ("command", "git_commit", "epochs", "wall_time_s", "hyper_parameters")}
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    signature = {"model": NAME, **asdict(cfg), "data": sha, "limit": limit}
    signature.pop("epochs")  # a longer run resumes a shorter one
    signature["channels"] = list(cfg.channels)
    trainer = Trainer(Path(out), signature, {"net": net}, {"opt": opt}, label=NAME, seed=cfg.seed, best_key="val_bce")
    for epoch, rng in trainer.epochs(cfg.epochs):
        net.train()
        tot, n = 0.0, 0
        sub_rng = np.random.default_rng([cfg.seed, epoch, 1])
        for idx in batches(len(x_train), cfg.batch_size, rng):
            if cfg.substitute > 0:
                xb = torch.from_numpy(counts_to_onehot(substitute_elements(counts["train"][idx], cfg.substitute, sub_rng, pool, cfg.substitute_within, cfg.substitute_oxidation))).to(device)
            else:
                xb = x_train[torch.from_numpy(idx).to(device)]
            with autocast(device):
                loss = _bce_sum(net(xb, noise=cfg.latent_noise).float(), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
            n += len(idx)
        net.eval()
        with torch.no_grad():
            val_logits = torch.cat([net(x_val[s:s + 4096]).float() for s in range(0, len(x_val), 4096)])
            vl = _bce_sum(val_logits, x_val).item()
        val_counts, val_ok = onehot_to_counts(torch.sigmoid(val_logits).cpu().numpy())
        val_rec = float(np.mean(val_ok & (val_counts == counts["val"]).all(axis=1)))
        trainer.log(train_bce=tot / n, val_bce=vl, val_reconstruction=val_rec)
    state = trainer.state
    best_state = trainer.best_state()
    net.load_state_dict(best_state)
    net = net.cpu().eval()
    config = {"class": "ConvAutoencoder", "kwargs": {"latent_dim": cfg.latent_dim, "channels": list(cfg.channels)},
              "train": asdict(cfg)}
    card = card_base(NAME, device, cfg.seed, cfg.epochs, asdict(cfg), sha, command)
    card["wall_time_s"] = round(state.elapsed_s, 1)
    card["history"] = state.history
    if init_card:
        card["initialised_from"] = init_card
    model = Autoencoder(net, config, card)
    if limit:
        model.refine_steps = SMOKE_REFINE_STEPS
    card["metrics"] = evaluate(model, counts["test"], counts["train"], n_random=500 if limit else 2000)
    latent_map = build_latent_map(model, df.iloc[:limit] if limit else df)
    save_checkpoint(Path(out), net.state_dict(), config, card)
    latent_map.save(Path(out))
    return card


def evaluate(model: Autoencoder, test_counts: np.ndarray, train_counts: np.ndarray, n_random: int = 2000, seed: int = 0) -> dict:
    """Reconstruction on test formulas; validity of random points of the BO search box."""
    from ..composition import compound_valid, smact_valid

    import time

    z_amortised = model.encode_counts(test_counts, refine=False)
    truth = counts_to_formulas(test_counts)
    metrics = {"test_formulas": len(test_counts)}
    t = time.perf_counter()
    z_test, steps = model.refine(z_amortised, test_counts)
    refine_s = time.perf_counter() - t
    for rule in ("strict", "argmax"):
        # what encode gives (refined codes), and the encoder network alone
        metrics[f"reconstruction_rate_{rule}"] = float(np.mean(model.decode(z_test, rule=rule) == truth))
        metrics[f"reconstruction_rate_{rule}_amortised"] = float(np.mean(model.decode(z_amortised, rule=rule) == truth))
    moved = np.abs(z_test - z_amortised).sum(axis=1) > 0
    metrics["refine"] = {
        "rows_refined": int(moved.sum()),
        "median_steps": float(np.median(steps[moved])) if moved.any() else 0.0,
        "rows_at_step_limit": int((steps[moved] >= model.refine_steps).sum()),
        "mean_code_shift": float(np.linalg.norm(z_test - z_amortised, axis=1)[moved].mean()) if moved.any() else 0.0,
        "mean_code_norm": float(np.linalg.norm(z_amortised, axis=1).mean()),
        "seconds": round(refine_s, 1),
        "steps": model.refine_steps, "lr": REFINE_LR, "margin": REFINE_MARGIN,
    }
    z_train = model.encode_counts(train_counts)
    lo, hi = z_train.min(axis=0), z_train.max(axis=0)
    rng = np.random.default_rng(seed)
    z_rand = rng.uniform(lo, hi, size=(n_random, z_train.shape[1])).astype(np.float32)
    for rule in ("strict", "argmax"):
        dec = model.decode(z_rand, rule=rule)
        valid = np.array([d is not None for d in dec])
        metrics[f"random_box_valid_{rule}"] = float(valid.mean())
        metrics[f"random_box_smact_valid_{rule}"] = float(smact_valid(dec).mean())  # the paper's rule
        metrics[f"random_box_compound_valid_{rule}"] = float(compound_valid(dec).mean())
        metrics[f"random_box_unique_{rule}"] = int(len(set(dec[valid])))
    # Points near the data (a training code plus noise), as a BO step near good seeds proposes.
    near = z_train[rng.integers(0, len(z_train), n_random)] + rng.normal(0, 1, (n_random, z_train.shape[1])).astype(np.float32) * z_train.std(axis=0) * 0.5
    dec = model.decode(near, rule="strict")
    metrics["near_data_valid_strict"] = float(np.mean([d is not None for d in dec]))
    metrics["random_points"] = n_random
    # Exactly reproducible slice, so a test can re-evaluate the shipped checkpoint.
    metrics["slice_first_2000_test_reconstruction_strict"] = float(np.mean(model.decode(z_test[:2000]) == truth[:2000]))
    return metrics


def reevaluate(directory: Path, write: bool = False, command: str | None = None, n_random: int = 2000,
               limit: int | None = None) -> dict:
    """Metrics of a checkpoint on its own split, by the code as it is now; `write` puts
    them in its card and rebuilds its latent map (weights untouched).

    Why: how a formula becomes a code (e.g. `refine`) can change without retraining; the
    card then says which command and commit measured its numbers, and keeps the old ones.
    """
    import json

    from ..data import load_bandgaps, split
    from .checkpoint import CARD, _jsonable, atomic_write_text, restamp_card

    directory = Path(directory)
    model = load(directory)
    df = load_bandgaps()
    parts = split(df, seed=int(model.card.get("seed", 0)), subset="encodable")
    counts = {k: encode_counts(parts[k]["formula"].to_numpy(dtype=object)).counts[:limit] for k in ("train", "test")}
    if limit:  # smoke runs, as in train()
        model.refine_steps = SMOKE_REFINE_STEPS
        df = df.iloc[:limit]
    metrics = evaluate(model, counts["test"], counts["train"], n_random=n_random)
    if write:
        card = restamp_card(model.card, metrics, command)
        build_latent_map(model, df).save(directory)
        atomic_write_text(directory / CARD, json.dumps(card, indent=2, default=_jsonable) + "\n")
    return metrics
