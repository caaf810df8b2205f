"""The composition generator: a WGAN with gradient penalty over 87 x 8 matrices (the paper's MATGAN).

Two architectures, one training loop (gradient penalty weight 10, Adam betas (0.5, 0.9),
n_critic 5, noise of length 128):

- "conv", MATGAN's layout as PAPER.md describes (after Dan et al., npj Comput. Mater. 2020):
  Linear -> transposed convolutions with BatchNorm and ReLU -> sigmoid; the critic is five
  convolutions (16, 16, 32, 64, 128 channels) with LeakyReLU, then a linear layer.
- "dense" (shipped): the same WGAN-GP with fully connected layers, generator 128 -> 256 ->
  512 -> 87 x 9 with BatchNorm and ReLU, a softmax per element over "absent" and the 8 count
  classes (the first is dropped, so the output is the same 87 x 8 matrix of probabilities);
  critic 696 -> 512 -> 256 -> 1 with LeakyReLU.

Why the dense one ships: on this 2-core CPU a critic step of the conv pair takes ~0.3 s (torch's
CPU convolutions on 87 x 8 maps), so a session affords ~1,000 generator steps, and the conv
checkpoint trained that way was mode-collapsed (138 distinct formulas in 100,000 samples, all
with 5-8 elements). The dense pair runs ~40 critic steps per second, so it reaches the ~10^4
generator steps a WGAN needs; the per-element softmax also makes every output row a
distribution over counts, like the one-hot rows of real data. Both are in the code and
selectable (`GANConfig.arch`); docs/models.md compares them.

Shared departures from MATGAN, both for stable training: no BatchNorm in the critic (it breaks
the per-sample gradient penalty of WGAN-GP; Gulrajani et al. 2017), and learning rates of 1e-4
for both networks (MATGAN's 1e-3 / 1e-2 are tuned for batch 32 on a GPU). Samples are decoded
with the "argmax" rule (an element is present when its largest probability reaches 0.5) and
kept with 2-8 elements, as MATGAN did. A checkpoint's config.json "sampling.compound_max_drop"
(COMPOUND_MAX_DROP for new ones, 0 = off) then reads a sample that is not a compound as its most
likely compound reading within that many nats under the per-element softmax
(models.compound_decoding): the generator's output is a distribution, and its single most
likely reading is often one step from a compound. The card reports both decodes.
"""
from __future__ import annotations

import sys
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Callable, Union

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..composition import N_COUNTS, N_ELEMENTS, VOCAB, counts_to_formulas, counts_to_onehot, encode_counts, onehot_to_counts
from .base import GapModel
from .checkpoint import build_module, load_checkpoint, require_finite, save_checkpoint
from . import compound_decoding
from .configs import NOISE, GANConfig  # noqa: F401 (their home before configs.py)
from .sampling import CompositionSampler

NAME = "gan"
# nats: a compound reading at least e^-4 (1.8%) as likely as the plain decode. docs/models.md
# has the sweep (2, 4, 8 nats); distinctness and novelty do not change over it.
COMPOUND_MAX_DROP = 4.0
# what the evaluation predicts the gap histogram with: a model, a loader of one, or None (no histogram)
OracleSource = Union[GapModel, Callable[[], GapModel], None]


class Generator(nn.Module):
    def __init__(self, noise_dim: int = NOISE):
        super().__init__()
        self.noise_dim = noise_dim
        self.fc = nn.Sequential(nn.Linear(noise_dim, 128 * 6), nn.BatchNorm1d(128 * 6), nn.ReLU())

        def up(cin, cout, kernel):
            return [nn.ConvTranspose2d(cin, cout, kernel, stride=(2, 1), padding=(1, 0)), nn.BatchNorm2d(cout), nn.ReLU()]

        self.deconv = nn.Sequential(
            *up(128, 64, (4, 3)),  # 6x1 -> 12x3
            *up(64, 32, (4, 3)),  # -> 24x5
            *up(32, 16, (4, 3)),  # -> 48x7
            nn.ConvTranspose2d(16, 1, (4, 2), stride=(2, 1), padding=(1, 0)),  # -> 96x8
        )

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        h = self.fc(noise).view(-1, 128, 6, 1)
        return torch.sigmoid(self.deconv(h)[:, 0, :N_ELEMENTS, :])


class DenseGenerator(nn.Module):
    def __init__(self, noise_dim: int = NOISE, hidden: tuple[int, int] = (256, 512)):
        super().__init__()
        self.noise_dim = noise_dim
        h1, h2 = hidden
        self.net = nn.Sequential(
            nn.Linear(noise_dim, h1), nn.BatchNorm1d(h1), nn.ReLU(),
            nn.Linear(h1, h2), nn.BatchNorm1d(h2), nn.ReLU(),
            nn.Linear(h2, N_ELEMENTS * (N_COUNTS + 1)),
        )

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        logits = self.net(noise).view(-1, N_ELEMENTS, N_COUNTS + 1)
        return torch.softmax(logits, dim=-1)[..., 1:]  # class 0 is "absent"


class DenseCritic(nn.Module):
    def __init__(self, hidden: tuple[int, int] = (512, 256)):
        super().__init__()
        h1, h2 = hidden
        act = nn.LeakyReLU(0.2)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(N_ELEMENTS * N_COUNTS, h1), act, nn.Linear(h1, h2), act, nn.Linear(h2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        act = nn.LeakyReLU(0.2)
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), act,
            nn.Conv2d(16, 16, 3, stride=(2, 1), padding=1), act,  # 44x8
            nn.Conv2d(16, 32, 3, stride=(2, 2), padding=1), act,  # 22x4
            nn.Conv2d(32, 64, 3, stride=(2, 1), padding=1), act,  # 11x4
            nn.Conv2d(64, 128, 3, stride=(2, 2), padding=1), act,  # 6x2
            nn.Flatten(), nn.Linear(128 * 6 * 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(1)).squeeze(-1)


ARCHS = {"conv": (Generator, Critic), "dense": (DenseGenerator, DenseCritic)}


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    eps = torch.rand(real.shape[0], 1, 1, device=real.device, dtype=real.dtype)
    mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


class CompositionGAN(CompositionSampler):
    """Sampling formulas from the trained generator."""

    row_options = staticmethod(compound_decoding.categorical_row_options)  # a softmax per element

    def __init__(self, gen: Generator, config: dict, card: dict, directory: Path | None = None):
        self.gen = gen.eval()
        self.compound_max_drop = float(config.get("sampling", {}).get("compound_max_drop", 0.0))
        self.config = config
        self.card = card
        self.directory = directory

    @torch.no_grad()
    def sample_probs(self, n: int, seed: int = 0, batch: int = 8192) -> np.ndarray:
        g = torch.Generator().manual_seed(seed)
        out = np.zeros((n, N_ELEMENTS, N_COUNTS), np.float32)
        for s in range(0, n, batch):
            m = min(batch, n - s)
            out[s : s + m] = require_finite(self.gen(torch.randn(m, self.gen.noise_dim, generator=g)).numpy(),
                                            self.directory, "generator")
        return out


def training_formulas(df: pd.DataFrame, seed: int, train_on: str, limit: int | None = None) -> np.ndarray:
    """The train split's encodable formulas the generator learns from (GANConfig.train_on); with
    `limit`, the first `limit` of them, judged in chunks so a smoke run does not check the whole
    split's validity (the same rows as filtering everything and cutting)."""
    from ..data import split

    if train_on not in ("compounds", "all"):
        raise ValueError(f"train_on must be 'compounds' or 'all', not {train_on!r}")
    formulas = split(df, seed=seed, subset="encodable")["train"]["formula"].to_numpy(dtype=object)
    if train_on == "all":
        return formulas[:limit] if limit else formulas
    from ..composition import compound_valid

    if not limit:
        return formulas[compound_valid(formulas)]
    kept, chunk = [], max(4 * limit, 1024)
    for start in range(0, len(formulas), chunk):
        part = formulas[start:start + chunk]
        kept.append(part[compound_valid(part)])
        if sum(len(k) for k in kept) >= limit:
            break
    return np.concatenate(kept)[:limit] if kept else formulas[:0]


def train(out: Path, cfg: GANConfig, device: torch.device, command: str | None = None, limit: int | None = None,
          oracle: OracleSource = None) -> dict:
    """Train, save and evaluate (evaluate's `oracle`: what the card's gap histogram is predicted with)."""
    from ..data import load_bandgaps
    from .trainer import Trainer
    from .training import card_base, data_checksum

    out = Path(out)
    df = load_bandgaps()
    sha = data_checksum()
    counts = encode_counts(training_formulas(df, cfg.seed, cfg.train_on, limit)).counts
    real_all = torch.from_numpy(counts_to_onehot(counts)).to(device)
    if cfg.arch not in ARCHS:
        raise ValueError(f"unknown GAN architecture {cfg.arch!r}: use one of {sorted(ARCHS)}")
    torch.manual_seed(cfg.seed)
    gen_cls, critic_cls = ARCHS[cfg.arch]
    gen, critic = gen_cls(cfg.noise_dim).to(device), critic_cls().to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr_g, betas=tuple(cfg.betas))
    opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.lr_d, betas=tuple(cfg.betas))
    signature = {"model": NAME, **asdict(cfg), "data": sha, "limit": limit}
    signature.pop("epochs")
    signature["betas"] = list(cfg.betas)
    trainer = Trainer(out, signature, {"gen": gen, "critic": critic}, {"g": opt_g, "d": opt_d}, label=NAME, seed=cfg.seed)
    n = len(real_all)
    for epoch, rng in trainer.epochs(cfg.epochs):
        gen.train()
        critic.train()
        perm = torch.from_numpy(rng.permutation(n)).to(device)
        d_losses, g_losses, w_dists = [], [], []
        steps = n // cfg.batch_size
        for step in range(steps):
            real = real_all[perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]]
            fake = gen(torch.randn(len(real), cfg.noise_dim, device=device)).detach()
            w_dist = critic(real).mean() - critic(fake).mean()
            d_loss = -w_dist + cfg.gp_weight * gradient_penalty(critic, real, fake)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            d_losses.append(d_loss.item())
            w_dists.append(w_dist.item())
            if (step + 1) % cfg.n_critic == 0:
                g_loss = -critic(gen(torch.randn(cfg.batch_size, cfg.noise_dim, device=device))).mean()
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                g_losses.append(g_loss.item())
        trainer.log(critic_loss=float(np.mean(d_losses)), generator_loss=float(np.mean(g_losses)),
                    wasserstein=float(np.mean(w_dists)))
    state = trainer.state
    gen = gen.cpu().eval()
    config = {"class": gen_cls.__name__, "kwargs": {"noise_dim": cfg.noise_dim},
              "train": {**asdict(cfg), "betas": list(cfg.betas)},
              "sampling": {"compound_max_drop": COMPOUND_MAX_DROP}}
    card = card_base(NAME, device, cfg.seed, cfg.epochs, config["train"], sha, command)
    card["wall_time_s"] = round(state.elapsed_s, 1)
    card["history"] = state.history
    model = CompositionGAN(gen, config, card)
    card["metrics"] = evaluate(model, df, counts, n=100_000 if not limit else 500,  # smoke runs: a small sample
                               oracle=oracle)
    save_checkpoint(out, gen.state_dict(), config, card)
    return card


def evaluate(model: CompositionGAN, df: pd.DataFrame, train_counts: np.ndarray, n: int = 100_000, seed: int = 12345,
             oracle: OracleSource = None) -> dict:
    """Validity under both rules, uniqueness, novelty, element and gap distributions of n samples.

    paper_rule_*: the paper's smact_validity defaults (MATGAN reported 84.5% charge-neutral and
    balanced); compound_*: the project's rule (ICSD-24 states, no alloys or single elements).
    oracle: the GapModel that predicts the gap histogram, or a function that loads it (called
    here, so a checkpoint trained earlier in the same run is the one read, and a failure to load
    is written in the card); None: no histogram, the card says why."""
    from ..composition import compound_valid, smact_valid

    def decoded(drop):
        counts, valid = model.sample_counts(n, seed=seed, compound_max_drop=drop)
        formulas = np.where(valid, counts_to_formulas(counts), None)
        return counts, valid, formulas, smact_valid(formulas), compound_valid(formulas)

    def of_valid(mask, valid):
        return float(mask[valid].mean()) if valid.any() else 0.0

    counts, valid, formulas, paper, compound = decoded(None)
    uniq = pd.unique(formulas[valid])
    known = set(df["formula"])
    novel_mask = np.array([f not in known for f in uniq])
    gen_freq = (counts[valid] > 0).mean(axis=0) if valid.any() else np.zeros(counts.shape[1])
    data_freq = (train_counts > 0).mean(axis=0)
    js = None  # undefined when no sample decodes
    if gen_freq.sum() > 0:
        p, q = gen_freq / gen_freq.sum(), data_freq / data_freq.sum()
        mid = (p + q) / 2
        js = float(0.5 * sum(np.sum(a[a > 0] * np.log(a[a > 0] / mid[a > 0])) for a in (p, q)))
    metrics = {
        "samples": n,
        "compound_max_drop": model.compound_max_drop,
        "valid_fraction": float(valid.mean()),
        "paper_rule_fraction": float(paper.mean()),
        "paper_rule_fraction_of_valid": of_valid(paper, valid),
        "paper_rule_fraction_no_alloys": float(smact_valid(formulas, include_alloys=False).mean()),
        "compound_fraction": float(compound.mean()),
        "compound_fraction_of_valid": of_valid(compound, valid),
        "unique_fraction_of_valid": float(len(uniq) / max(1, valid.sum())),
        "novel_fraction_of_unique": float(novel_mask.mean()) if len(uniq) else 0.0,
        "element_frequency_js_divergence": js,
        "element_frequency": {"elements": list(VOCAB), "generated": gen_freq.round(5).tolist(), "data": data_freq.round(5).tolist()},
        "n_elements_histogram": np.bincount((counts[valid] > 0).sum(axis=1), minlength=9).tolist(),
    }
    if n >= 5000:  # a fixed slice that a loaded checkpoint must reproduce (smoke runs skip it)
        metrics["slice_seed7_5000_valid_fraction"] = float(model.sample_counts(5000, seed=7)[1].mean())
    if model.compound_max_drop > 0:  # the generator's own most likely readings, for comparison
        _, pv, pf, pp, pcv = decoded(0.0)
        metrics["plain_decode"] = {
            "valid_fraction": float(pv.mean()), "paper_rule_fraction_of_valid": of_valid(pp, pv),
            "compound_fraction_of_valid": of_valid(pcv, pv),
            "unique_fraction_of_valid": float(len(pd.unique(pf[pv])) / max(1, pv.sum()))}
    try:
        if oracle is None:
            raise ValueError("no oracle was given to the evaluation")
        gap_model = oracle if isinstance(oracle, GapModel) else oracle()
        gaps = gap_model.predict(list(uniq[:20000])).mean
        bins = np.arange(0, 10.5, 0.5)
        metrics["gap_histogram"] = {
            "bins": bins.tolist(),
            "generated_unique": np.histogram(gaps[~np.isnan(gaps)], bins)[0].tolist(),
            "data": np.histogram(df["band_gap"].to_numpy(), bins)[0].tolist(),
        }
    except Exception as exc:  # the oracle may not be trained yet: the card says so
        metrics["gap_histogram"] = {"error": f"oracle unavailable: {exc}"}
    return metrics


def reevaluate(directory: Path, write: bool = False, command: str | None = None,
               compound_max_drop: float | None = None, n: int = 100_000, oracle: OracleSource = None) -> dict:
    """Card metrics of a checkpoint by the code as it is now (evaluate's `oracle` for the gap
    histogram); compound_max_drop sets the sampling setting first; `write` stores both in
    config.json and card.json, keeping the old metrics (weights untouched: decoding is not training)."""
    import json

    from ..data import load_bandgaps
    from .checkpoint import CARD, CONFIG, _jsonable, atomic_write_text, restamp_card

    directory = Path(directory)
    model = load(directory)
    if compound_max_drop is not None:
        if not compound_max_drop >= 0:
            raise ValueError(f"compound_max_drop must be >= 0 nats, not {compound_max_drop}")
        model.config = {**model.config, "sampling": {"compound_max_drop": float(compound_max_drop)}}
        model.compound_max_drop = float(compound_max_drop)
    df = load_bandgaps()
    train = training_formulas(df, int(model.card.get("seed", 0)), model.config.get("train", {}).get("train_on", "all"))
    metrics = evaluate(model, df, encode_counts(train).counts, n=n, oracle=oracle)
    if write:
        card = restamp_card(model.card, metrics, command)
        atomic_write_text(directory / CONFIG, json.dumps(model.config, indent=2) + "\n")
        atomic_write_text(directory / CARD, json.dumps(card, indent=2, default=_jsonable) + "\n")
    return metrics


def load(directory: Path) -> CompositionGAN:
    directory = Path(directory)
    tensors, config, card = load_checkpoint(directory, kind="gan")  # config validated (config_bounds)
    cls = {cls.__name__: cls for cls, _ in ARCHS.values()}[config["class"]]
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config["kwargs"].items()}
    gen = build_module(lambda: cls(**kwargs), tensors, directory / "model.safetensors")
    return CompositionGAN(gen, config, card, directory)


@lru_cache(maxsize=4)
def load_gan(directory: str | None = None) -> CompositionGAN:
    from ..settings import get_settings, set_torch_threads

    set_torch_threads()
    return load(Path(directory) if directory else get_settings().models_dir / NAME)
