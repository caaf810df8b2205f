"""The band-gap oracle: a deep ensemble of Roost-style composition networks (stands in for DFT).

Each member follows Roost (Goodall & Lee 2020) as the paper's oracle did: elements of a
composition are nodes initialised from the matscholar embedding plus their fraction;
message-passing layers update each element from every element of the composition
(fraction-weighted soft attention, several heads, residual); a fraction-weighted attention
pooling gives the composition descriptor; a residual network with 5 hidden layers (ReLU)
maps it to the gap. Each member predicts a mean and a log standard deviation trained with
Roost's robust L1 loss (the Laplace likelihood), so it knows its aleatoric noise; the
ensemble's spread adds the epistemic part. A head (oracle_head.py: P(non-metal) times the gap
of a non-metal, with per-bin conformal σ fitted on the validation split) turns the members'
outputs into the prediction the app shows; a checkpoint without one falls back to the
ensemble mean and one σ scale factor. Predictions are clipped at 0 eV. Any formula parses, including those
the 87 x 8 matrix cannot hold (up to MAX_ELEMENTS distinct elements).

The network works on dense padded tensors (batch x elements x elements pairs) with batches
bucketed by the number of elements, which is several times faster on a CPU than
scatter-based message passing for compositions of 2-9 elements.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..composition.featurize import MAX_ELEMENTS, N_TABLE, featurise  # noqa: F401 (featurise: the oracle's input)
from .base import GapModel
from .configs import OracleConfig  # noqa: F401 (re-exported: the trainers and tests build it from here)
from .checkpoint import ModelError, build_module, load_checkpoint, require_finite

NAME = "oracle"
NONMETAL_MEMBERS = 5  # what `wbg train oracle` trains by default beside the full members
NONMETAL_PREFIX = "nonmetal_member_"  # tensor names of the members trained on gap > 0 only


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU()]
    return nn.Sequential(*layers[:-1])


class WeightedAttention(nn.Module):
    """Roost's weighted soft attention: softmax over j of gate(x_ij) + pow * log w_j."""

    def __init__(self, in_len: int, out_len: int, hidden: int):
        super().__init__()
        self.gate = _mlp([in_len, hidden, 1])
        self.msg = _mlp([in_len, hidden, out_len])
        self.pow = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor, logw: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x (..., J, in), logw (..., J), mask (..., J) bool
        logits = self.gate(x).squeeze(-1) + self.pow * logw
        logits = logits.masked_fill(~mask, float("-inf"))
        att = torch.softmax(logits, dim=-1).unsqueeze(-1)
        return (att * self.msg(x)).sum(dim=-2)


class PairAttention(nn.Module):
    """Roost's message head over all element pairs (i, j) of a composition.

    gate(x_ij) and msg(x_ij) are MLPs on the concatenation x_ij = [h_i, h_j]; their first
    layer is computed as W_i h_i + W_j h_j per element and broadcast over pairs, which is the
    same function at a fraction of the cost of materialising the concatenations; likewise
    the last (linear) layer of msg is applied after the attention-weighted sum over j.
    """

    def __init__(self, fea_len: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.first_i = nn.Linear(fea_len, 2 * hidden)
        self.first_j = nn.Linear(fea_len, 2 * hidden, bias=False)
        self.gate_out = nn.Linear(hidden, 1)
        self.msg_out = nn.Linear(hidden, fea_len)
        self.act = nn.LeakyReLU()
        self.pow = nn.Parameter(torch.ones(1))

    def forward(self, h: torch.Tensor, logw: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pair = self.act(self.first_i(h).unsqueeze(2) + self.first_j(h).unsqueeze(1))  # (B, M, M, 2H)
        logits = self.gate_out(pair[..., : self.hidden]).squeeze(-1) + self.pow * logw.unsqueeze(1)
        logits = logits.masked_fill(~mask.unsqueeze(1), float("-inf"))
        att = torch.softmax(logits, dim=-1).unsqueeze(-1)  # over j
        # msg_out is linear and the weights sum to 1: pool first, then project (same result).
        return self.msg_out((att * pair[..., self.hidden :]).sum(dim=2))


class MessageLayer(nn.Module):
    def __init__(self, fea_len: int, heads: int, hidden: int):
        super().__init__()
        self.heads = nn.ModuleList(PairAttention(fea_len, hidden) for _ in range(heads))

    def forward(self, h: torch.Tensor, logw: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        upd = torch.stack([head(h, logw, mask) for head in self.heads]).mean(0)
        return h + upd * mask.unsqueeze(-1)


class ResidualNetwork(nn.Module):
    def __init__(self, in_len: int, hidden: tuple[int, ...], out_len: int):
        super().__init__()
        dims = [in_len, *hidden]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.skips = nn.ModuleList(nn.Linear(a, b, bias=False) if a != b else nn.Identity() for a, b in zip(dims[:-1], dims[1:]))
        self.act = nn.ReLU()
        self.out = nn.Linear(dims[-1], out_len)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for fc, skip in zip(self.fcs, self.skips):
            x = self.act(fc(x)) + skip(x)
        return self.out(x)


class RoostGap(nn.Module):
    """One member: Roost message passing + residual head -> (mean, log std)."""

    def __init__(self, embedding: torch.Tensor | None = None, emb_dim: int = 200, fea_len: int = 64,
                 n_graph: int = 3, heads: int = 2, hidden: int = 128, out_hidden: tuple[int, ...] = (512, 256, 128, 64, 32)):
        super().__init__()
        self.register_buffer("embedding", embedding if embedding is not None else torch.zeros(N_TABLE, emb_dim))
        self.embed = nn.Linear(self.embedding.shape[1], fea_len - 1)
        self.graphs = nn.ModuleList(MessageLayer(fea_len, heads, hidden) for _ in range(n_graph))
        self.pool = nn.ModuleList(WeightedAttention(fea_len, fea_len, hidden) for _ in range(heads))
        self.head = ResidualNetwork(fea_len, tuple(out_hidden), 2)

    def forward(self, z: torch.Tensor, w: torch.Tensor, return_descriptor: bool = False):
        mask = z > 0
        logw = torch.log(w.clamp_min(1e-12))
        h = torch.cat([self.embed(self.embedding[z]), w.unsqueeze(-1)], dim=-1) * mask.unsqueeze(-1)
        for layer in self.graphs:
            h = layer(h, logw, mask)
        desc = torch.stack([p(h, logw, mask) for p in self.pool]).mean(0)
        out = self.head(desc)
        return (out, desc) if return_descriptor else out


def robust_l1(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Roost's robust L1: the Laplace negative log-likelihood of (mean, log std)."""
    mean, log_std = out[:, 0], out[:, 1]
    return (math.sqrt(2.0) * (y - mean).abs() * torch.exp(-log_std) + log_std).mean()


def l1_with_std(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The paper's L1 loss on the mean, plus the Laplace likelihood of the std with the mean
    held fixed. Tried against robust_l1: no better at equal epochs (validation MAE 0.567 vs
    0.541 after 15 epochs), so robust_l1 is the default."""
    mean, log_std = out[:, 0], out[:, 1]
    err = (y - mean).abs()
    return err.mean() + (math.sqrt(2.0) * err.detach() * torch.exp(-log_std) + log_std).mean()


def _bucket_batches(n_el: np.ndarray, batch_size: int, rng: np.random.Generator | None):
    """Batches of rows with similar numbers of elements (little padding), in random order."""
    order = np.argsort(n_el + (rng.random(len(n_el)) if rng is not None else 0), kind="stable")
    chunks = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(chunks)
    return chunks


def _trim(z: np.ndarray, w: np.ndarray, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    zb, wb = z[idx], w[idx]
    m = max(1, int((zb > 0).sum(axis=1).max()))
    return torch.from_numpy(zb[:, :m]), torch.from_numpy(wb[:, :m])


@dataclass
class EnsembleOutputs:
    """What the members say about N formulas: (members, N) means and σ, the (N, fea_len) descriptor."""

    means: np.ndarray
    stds: np.ndarray
    desc: np.ndarray
    nonmetal_means: np.ndarray  # (non-metal members, N); 0 rows without them
    nonmetal_stds: np.ndarray

    def stacked(self) -> np.ndarray:
        return np.hstack([self.means.T, self.stds.T, self.nonmetal_means.T, self.nonmetal_stds.T, self.desc])

    def regressor_std(self) -> np.ndarray:
        """The σ the head scales for the gap of a non-metal: the non-metal members' where there are some."""
        if len(self.nonmetal_means):
            return Oracle.ensemble_std(self.nonmetal_means, self.nonmetal_stds)
        return Oracle.ensemble_std(self.means, self.stds)


class Oracle(GapModel):
    """The trained ensemble, plus its head where the checkpoint has one (oracle_head.py).

    A GapModel: predict(formulas) -> Prediction (with P(non-metal)); predict_arrays for the hot path.
    """

    extra_columns = ("p_nonmetal",)
    window_columns = ("p_nonmetal", "gap_if_nonmetal", "std_if_nonmetal")

    def __init__(self, members: list[RoostGap], config: dict, card: dict, directory: Path | None = None,
                 std_scale: float = 1.0, head=None, nonmetal_members: list[RoostGap] | None = None):
        self.members = [m.eval() for m in members]
        # trained on the gap > 0 rows only: the head's regressor reads them (no metal pulls them down)
        self.nonmetal_members = [m.eval() for m in nonmetal_members or []]
        self.config = config
        self.card = card
        self.directory = directory
        self.std_scale = std_scale
        self.head = head

    @torch.no_grad()
    def ensemble_outputs(self, z: np.ndarray, w: np.ndarray, batch: int = 4096) -> EnsembleOutputs:
        """Every member's mean and σ (unclipped) and the full members' averaged descriptor."""
        n, k_m, k_nm = len(z), len(self.members), len(self.nonmetal_members)
        out = EnsembleOutputs(np.zeros((k_m, n), np.float32), np.zeros((k_m, n), np.float32),
                              np.zeros((n, self.descriptor_len), np.float32),
                              np.zeros((k_nm, n), np.float32), np.zeros((k_nm, n), np.float32))
        if n == 0:
            return out
        n_el = (z > 0).sum(axis=1)
        for idx in _bucket_batches(n_el, batch, None):
            zb, wb = _trim(z, w, idx)
            for k, m in enumerate(self.members):
                o, d = m(zb, wb, return_descriptor=True)
                out.means[k, idx] = o[:, 0].numpy()
                out.stds[k, idx] = torch.exp(o[:, 1]).numpy()
                out.desc[idx] += d.numpy() / k_m
            for k, m in enumerate(self.nonmetal_members):
                o = m(zb, wb)
                out.nonmetal_means[k, idx] = o[:, 0].numpy()
                out.nonmetal_stds[k, idx] = torch.exp(o[:, 1]).numpy()
        return out

    @property
    def descriptor_len(self) -> int:
        """Width of a member's pooled composition descriptor (the input of its residual head)."""
        return self.members[0].head.fcs[0].in_features if self.members else 0

    @staticmethod
    def ensemble_std(means: np.ndarray, stds: np.ndarray) -> np.ndarray:
        """Epistemic (spread of the members) and aleatoric (their own σ) parts together."""
        return np.sqrt(means.var(axis=0) + (stds ** 2).mean(axis=0))

    def predict_detail(self, z: np.ndarray, w: np.ndarray, batch: int = 4096) -> dict[str, np.ndarray]:
        """mean, std and, with a head, p_nonmetal, gap_if_nonmetal, std_if_nonmetal per row.
        Non-finite outputs (garbled weights) raise ModelError: an error, never a blank."""
        e = self.ensemble_outputs(z, w, batch)
        # before the head too: its LightGBM boosters read a NaN as "missing" and answer a number
        require_finite(e.stacked(), self.directory, "oracle")
        if self.head is None:
            d = {"mean": np.clip(e.means.mean(axis=0), 0.0, None), "std": self.ensemble_std(e.means, e.stds) * self.std_scale}
        else:
            from .forest import statistics_with_ionic
            from .oracle_head import head_features

            d = self.head.predict(head_features(e, statistics_with_ionic(z, w)), e.regressor_std())
        require_finite(np.c_[d["mean"], d["std"]], self.directory, "oracle")
        return d

    def window_probability(self, detail: dict[str, np.ndarray], window: tuple[float, float]) -> np.ndarray:
        """With a head, from P(non-metal) and the non-metal gap's conformal distribution (oracle_head);
        without one, or with a calibration from before its residual quantiles, the normal."""
        cal = self.head.calibration if self.head is not None else {}
        if "residual_quantiles" not in cal or any(c not in detail for c in self.window_columns):
            return super().window_probability(detail, window)
        from .oracle_head import hurdle_window_probability

        return hurdle_window_probability(detail["p_nonmetal"], detail["gap_if_nonmetal"], detail["std_if_nonmetal"],
                                         window, cal)

    def mean_gap_if_nonmetal(self, detail: dict[str, np.ndarray]) -> np.ndarray | None:
        if self.head is None or any(c not in detail for c in self.window_columns):
            return None
        from .oracle_head import nonmetal_mean

        return nonmetal_mean(detail["gap_if_nonmetal"], detail["std_if_nonmetal"], self.head.calibration)

    def predict_arrays(self, z: np.ndarray, w: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        if len(z) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        d = self.predict_detail(z, w, batch)
        return d["mean"], d["std"]


LOSSES = {"robust_l1": robust_l1, "l1_with_std": l1_with_std}


def load(directory: Path, with_head: bool = True) -> Oracle:
    """with_head=False: the ensemble alone (to fit a new head over a missing or broken one)."""
    directory = Path(directory)
    tensors, config, card = load_checkpoint(directory, kind="oracle")  # config validated (config_bounds)
    weights = directory / "model.safetensors"
    emb = tensors.get("embedding")
    if emb is None or emb.ndim != 2 or emb.shape[0] != N_TABLE:
        raise ModelError(f"{weights} lacks the element embedding ({N_TABLE} rows)")
    def _kwargs(section: dict) -> dict:
        out = dict(section)
        if "out_hidden" in out:
            out["out_hidden"] = tuple(out["out_hidden"])
        return out

    kwargs = _kwargs(config["kwargs"])
    nm_kwargs = _kwargs(config.get("nonmetal_kwargs") or config["kwargs"])  # wider non-metal members (2026-12-04)
    n, n_nm = config["members"], int(config.get("nonmetal_members", 0))
    prefixes = [f"member_{i}." for i in range(n)] + [f"{NONMETAL_PREFIX}{i}." for i in range(n_nm)]
    stray = sorted(k for k in tensors if k != "embedding" and not k.startswith(tuple(prefixes)))
    if stray:
        raise ModelError(f"{weights} does not match its config.json ({n} members, {n_nm} non-metal members): "
                         f"it also holds {stray[0]}")
    built = []
    for i, head in enumerate(prefixes):
        sd = {kk[len(head):]: v for kk, v in tensors.items() if kk.startswith(head)}
        sd["embedding"] = emb
        kw = kwargs if i < n else nm_kwargs
        built.append(build_module(lambda: RoostGap(emb, **kw), sd, weights))
    members, nonmetal_members = built[:n], built[n:]
    head = None
    if with_head and "head" in config:  # the hurdle head and its conformal calibration (oracle_head.py)
        from .oracle_head import OracleHead

        head = OracleHead.load(directory, dict((config["head"] or {}).get("sha256") or {}))
    return Oracle(members, config, card, directory, std_scale=float(config.get("std_scale", 1.0)), head=head,
                  nonmetal_members=nonmetal_members)


@lru_cache(maxsize=4)
def load_oracle(directory: str | None = None) -> Oracle:
    from ..settings import get_settings, set_torch_threads

    set_torch_threads()
    return load(Path(directory) if directory else get_settings().models_dir / NAME)
