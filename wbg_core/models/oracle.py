"""The band-gap oracle: a deep ensemble of Roost-style composition networks (stands in for DFT).

Each member follows Roost (Goodall & Lee 2020) as the paper's oracle did: elements of a
composition are nodes initialised from the matscholar embedding plus their fraction;
message-passing layers update each element from every element of the composition
(fraction-weighted soft attention, several heads, residual); a fraction-weighted attention
pooling gives the composition descriptor; a residual network with 5 hidden layers (ReLU)
maps it to the gap. Each member predicts a mean and a log standard deviation trained with
Roost's robust L1 loss (the Laplace likelihood), so it knows its aleatoric noise; the
ensemble's spread adds the epistemic part, and one scale factor fitted on the validation
split calibrates the total. Predictions are clipped at 0 eV. Any formula parses, including those
the 87 x 8 matrix cannot hold (up to MAX_ELEMENTS distinct elements).

The network works on dense padded tensors (batch x elements x elements pairs) with batches
bucketed by the number of elements, which is several times faster on a CPU than
scatter-based message passing for compositions of 2-9 elements.
"""
from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..composition.elements import PERIODIC_TABLE
from ..composition.parse import FormulaError, parse_formula
from .checkpoint import ModelError, load_checkpoint, load_module_state, save_checkpoint

NAME = "oracle"
MAX_ELEMENTS = 12
N_TABLE = len(PERIODIC_TABLE) + 1  # row 0 is padding


@dataclass
class OracleConfig:
    members: int = 5
    loss: str = "robust_l1"  # or "l1_with_std"
    fea_len: int = 64
    n_graph: int = 3
    heads: int = 1  # Roost uses 3; 1 head trains 3x faster on 2 CPU cores
    hidden: int = 128
    out_hidden: tuple[int, ...] = (512, 256, 128, 64, 32)  # 5 hidden layers, residual
    lr: float = 1e-3
    weight_decay: float = 1e-6
    batch_size: int = 256
    epochs: int = 35
    seed: int = 0


def embedding_table() -> np.ndarray:
    """(N_TABLE, 200) matscholar vectors by atomic number; zeros where the table has none."""
    from ..data import load_element_embedding

    emb = load_element_embedding()
    dim = len(next(iter(emb.values())))
    table = np.zeros((N_TABLE, dim), dtype=np.float32)
    for z, sym in enumerate(PERIODIC_TABLE, start=1):
        if sym in emb:
            table[z] = emb[sym]
    return table


def featurise(formulas) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """(atomic numbers (N, MAX_ELEMENTS) int64, fractions (N, MAX_ELEMENTS), errors)."""
    from ..composition.elements import ATOMIC_NUMBER

    formulas = list(formulas)
    z = np.zeros((len(formulas), MAX_ELEMENTS), dtype=np.int64)
    w = np.zeros((len(formulas), MAX_ELEMENTS), dtype=np.float32)
    errors: list[str | None] = [None] * len(formulas)
    known = _embedded_elements()
    for i, f in enumerate(formulas):
        try:
            comp = parse_formula(f)
        except FormulaError as exc:
            errors[i] = str(exc)
            continue
        if len(comp) > MAX_ELEMENTS:
            errors[i] = f"{len(comp)} elements; the oracle takes at most {MAX_ELEMENTS}"
            continue
        missing = [el for el in comp if el not in known]
        if missing:
            errors[i] = f"no element embedding for {', '.join(missing)}"
            continue
        total = sum(comp.values())
        for j, (el, amt) in enumerate(comp.items()):
            z[i, j] = ATOMIC_NUMBER[el]
            w[i, j] = amt / total
    return z, w, errors


@lru_cache(maxsize=1)
def _embedded_elements() -> frozenset:
    from ..data import load_element_embedding

    return frozenset(load_element_embedding())


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

    def forward(self, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        mask = z > 0
        logw = torch.log(w.clamp_min(1e-12))
        h = torch.cat([self.embed(self.embedding[z]), w.unsqueeze(-1)], dim=-1) * mask.unsqueeze(-1)
        for layer in self.graphs:
            h = layer(h, logw, mask)
        desc = torch.stack([p(h, logw, mask) for p in self.pool]).mean(0)
        return self.head(desc)


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


class Oracle:
    """The trained ensemble: predict(formulas) -> mean, std per formula, errors per row."""

    def __init__(self, members: list[RoostGap], config: dict, card: dict, directory: Path | None = None,
                 std_scale: float = 1.0):
        self.members = [m.eval() for m in members]
        self.config = config
        self.card = card
        self.directory = directory
        self.std_scale = std_scale

    @torch.no_grad()
    def predict_arrays(self, z: np.ndarray, w: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        n = len(z)
        means = np.zeros((len(self.members), n), np.float32)
        stds = np.zeros((len(self.members), n), np.float32)
        if n == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        n_el = (z > 0).sum(axis=1)
        for idx in _bucket_batches(n_el, batch, None):
            zb, wb = _trim(z, w, idx)
            for k, m in enumerate(self.members):
                out = m(zb, wb)
                means[k, idx] = out[:, 0].numpy()
                stds[k, idx] = torch.exp(out[:, 1]).numpy()
        mean = means.mean(axis=0)
        std = np.sqrt(means.var(axis=0) + (stds ** 2).mean(axis=0)) * self.std_scale
        return np.clip(mean, 0.0, None), std

    def predict(self, formulas) -> pd.DataFrame:
        """Columns formula, band_gap_mean, band_gap_std, error; input order kept, bad rows get the error."""
        formulas = [f if isinstance(f, str) else str(f) for f in formulas]
        z, w, errors = featurise(formulas)
        ok = np.array([e is None for e in errors], dtype=bool)
        mean = np.full(len(formulas), np.nan, np.float32)
        std = np.full(len(formulas), np.nan, np.float32)
        if ok.any():
            mean[ok], std[ok] = self.predict_arrays(z[ok], w[ok])
        return pd.DataFrame({"formula": formulas, "band_gap_mean": mean, "band_gap_std": std,
                             "error": pd.array(errors, dtype="string")})


def regression_metrics(y: np.ndarray, mean: np.ndarray, std: np.ndarray | None = None) -> dict:
    err = mean - y
    out = {
        "n": int(len(y)),
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err ** 2).mean())),
        "r2": float(1 - (err ** 2).sum() / ((y - y.mean()) ** 2).sum()),
    }
    if std is not None:
        out["within_1_sigma"] = float((np.abs(err) <= std).mean())
        out["within_2_sigma"] = float((np.abs(err) <= 2 * std).mean())
    return out


def _fit_std_scale(err: np.ndarray, std: np.ndarray) -> float:
    """Scale s so that s * std covers 68.3% of validation errors (Gaussian 1-sigma)."""
    ratio = np.abs(err) / np.maximum(std, 1e-6)
    return float(np.quantile(ratio, 0.6827))


LOSSES = {"robust_l1": robust_l1, "l1_with_std": l1_with_std}


def train(out: Path, cfg: OracleConfig, device: torch.device, command: str | None = None, limit: int | None = None,
          only_member: int | None = None) -> dict:
    """Train each member on the full train split (all gaps); resumable per member and epoch.

    `only_member` trains that member's resume state and stops, so members can train in parallel
    processes (one core each); a later run without it finds them finished and assembles the ensemble.
    """
    if only_member is not None and not 0 <= only_member < cfg.members:
        raise ModelError(f"member {only_member} is out of range: the ensemble has members 0-{cfg.members - 1}")
    from ..data import load_bandgaps, split
    from ..data.registry import load_registry
    from .training import TrainState, Timer, autocast, card_base, progress, seed_epoch

    out = Path(out)
    df = load_bandgaps()
    parts = split(df, seed=cfg.seed, subset="full")
    sha = load_registry()["files"]["mp_bandgap.csv"]["sha256"]
    if limit:
        parts = {k: v.iloc[:limit] for k, v in parts.items()}
    feats = {}
    for k, v in parts.items():
        z, w, errs = featurise(v["formula"])
        if any(errs):
            raise ModelError(f"cannot featurise {k} formulas: {[e for e in errs if e][:3]}")
        feats[k] = (z, w, v["band_gap"].to_numpy(np.float32))
    emb = torch.from_numpy(embedding_table())
    kwargs = {"emb_dim": int(emb.shape[1]), "fea_len": cfg.fea_len, "n_graph": cfg.n_graph, "heads": cfg.heads,
              "hidden": cfg.hidden, "out_hidden": list(cfg.out_hidden)}
    members: list[RoostGap] = []
    timer_total = 0.0
    histories = []
    z_tr, w_tr, y_tr = feats["train"]
    n_el = (z_tr > 0).sum(axis=1)
    for k in range(cfg.members):
        if only_member is not None and k != only_member:
            continue
        mdir = out / f"member_{k}"
        torch.manual_seed(cfg.seed * 1000 + k)
        net = RoostGap(emb.clone(), **{**kwargs, "out_hidden": tuple(cfg.out_hidden)}).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = math.ceil(len(z_tr) / cfg.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                    pct_start=0.15)
        signature = {"model": NAME, "member": k, **asdict(cfg), "data": sha, "limit": limit}
        signature["out_hidden"] = list(cfg.out_hidden)
        state = TrainState(mdir, signature=signature)
        resumed = state.try_resume({"net": net}, {"opt": opt})
        best = {kk: v.clone() for kk, v in net.state_dict().items()}
        if resumed:
            tensors, extra = resumed
            sched.load_state_dict({**sched.state_dict(), **extra.get("sched", {})})
            best = {kk[len("best."):]: v for kk, v in tensors.items() if kk.startswith("best.")} or best
            print(f"resuming oracle member {k} after epoch {state.epoch}", file=sys.stderr)
        timer = Timer()
        for epoch in progress(cfg.epochs, state.epoch, f"oracle member {k + 1}/{cfg.members}"):
            rng = seed_epoch(cfg.seed * 1000 + k, epoch)
            net.train()
            tot, n = 0.0, 0
            for idx in _bucket_batches(n_el, cfg.batch_size, rng):
                zb, wb = _trim(z_tr, w_tr, idx)
                yb = torch.from_numpy(y_tr[idx])
                zb, wb, yb = zb.to(device), wb.to(device), yb.to(device)
                with autocast(device):
                    loss = LOSSES[cfg.loss](net(zb, wb).float(), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                tot += loss.item() * len(idx)
                n += len(idx)
            net.eval()
            vm = _member_predict(net, *feats["val"][:2], device)
            val_mae = float(np.abs(np.clip(vm, 0, None) - feats["val"][2]).mean())
            state.epoch = epoch + 1
            state.history.append({"epoch": epoch + 1, "train_loss": tot / n, "val_mae": val_mae})
            if val_mae < state.best:
                state.best = val_mae
                best = {kk: v.detach().clone() for kk, v in net.state_dict().items()}
            state.elapsed_s += timer()
            timer = Timer()
            state.save({"net": net}, {"opt": opt}, extra_tensors={f"best.{kk}": v for kk, v in best.items()},
                       extra={"sched": {kk: v for kk, v in sched.state_dict().items() if isinstance(v, (int, float, list))}})
        net.load_state_dict(best)
        members.append(net.cpu().eval())
        timer_total += state.elapsed_s
        histories.append(state.history)
    if only_member is not None:
        return {"member": only_member, "epochs": state.epoch, "best_val_mae": state.best, "elapsed_s": round(state.elapsed_s, 1)}
    config = {"class": "RoostGapEnsemble", "members": cfg.members, "kwargs": kwargs, "train": asdict(cfg)}
    oracle = Oracle(members, config, {})
    # Calibrate the ensemble std on the validation split (one scale factor), judge on test.
    vz, vw, vy = feats["val"]
    vmean, vstd = oracle.predict_arrays(vz, vw)
    oracle.std_scale = _fit_std_scale(vmean - vy, vstd)
    config["std_scale"] = oracle.std_scale
    card = card_base(NAME, device, cfg.seed, cfg.epochs, asdict(cfg), sha, command)
    card["wall_time_s"] = round(timer_total, 1)
    card["history"] = histories
    card["metrics"] = evaluate(oracle, parts["test"])
    card["std_scale_fitted_on_val"] = oracle.std_scale
    card["baseline_random_forest"] = forest_baseline(parts, cfg.seed)
    rf_mae = card["baseline_random_forest"]["test_full"]["mae"]
    card["metrics"]["mae_reduction_vs_random_forest"] = 1 - card["metrics"]["test_full"]["mae"] / rf_mae
    card["published_composition_only_mae"] = {
        "CrabNet (matbench_mp_gap, 106,113 MP structures)": 0.2655,
        "Roost (103,644 MP compositions, own split)": 0.283,
        "note": "both trained on about twice our 53,931 training formulas",
    }
    tensors = {}
    for k, m in enumerate(members):
        tensors.update({f"member_{k}.{kk}": v for kk, v in m.state_dict().items() if kk != "embedding"})
    tensors["embedding"] = emb
    save_checkpoint(out, tensors, config, card)
    return card


def forest_baseline(parts: dict[str, pd.DataFrame], seed: int) -> dict:
    """The random forest on Magpie-style features, same split, same run."""
    from .forest import ForestConfig, ForestRegressor
    from .training import Timer

    timer = Timer()
    rf = ForestRegressor(ForestConfig(seed=seed, n_jobs=torch.get_num_threads())).fit(parts["train"]["formula"], parts["train"]["band_gap"])
    fit_s = timer()
    mean, std, _ = rf.predict(parts["test"]["formula"])
    y = parts["test"]["band_gap"].to_numpy()
    nm = y > 0
    return {"model": "RandomForestRegressor(100 trees, max_features 0.33) on Magpie-style features",
            "fit_s": round(fit_s, 1),
            "test_full": regression_metrics(y, mean), "test_nonmetal": regression_metrics(y[nm], mean[nm])}


@torch.no_grad()
def _member_predict(net: RoostGap, z: np.ndarray, w: np.ndarray, device: torch.device) -> np.ndarray:
    out = np.zeros(len(z), np.float32)
    for idx in _bucket_batches((z > 0).sum(axis=1), 4096, None):
        zb, wb = _trim(z, w, idx)
        out[idx] = net(zb.to(device), wb.to(device))[:, 0].float().cpu().numpy()
    return out


def evaluate(oracle: Oracle, test: pd.DataFrame) -> dict:
    pred = oracle.predict(test["formula"])
    y = test["band_gap"].to_numpy(np.float32)
    mean, std = pred["band_gap_mean"].to_numpy(), pred["band_gap_std"].to_numpy()
    nonmetal = y > 0
    return {
        "slice_first_500_test": regression_metrics(y[:500], mean[:500], std[:500]),
        "test_full": regression_metrics(y, mean, std),
        "test_nonmetal": regression_metrics(y[nonmetal], mean[nonmetal], std[nonmetal]),
        "test_metal_predicted_below_0.5eV": float((mean[~nonmetal] < 0.5).mean()),
    }


def load(directory: Path) -> Oracle:
    directory = Path(directory)
    tensors, config, card = load_checkpoint(directory)
    if config.get("class") != "RoostGapEnsemble":
        raise ModelError(f"{directory / 'config.json'} is not an oracle config")
    emb = tensors.get("embedding")
    if emb is None:
        raise ModelError(f"{directory / 'model.safetensors'} lacks the element embedding")
    kwargs = dict(config["kwargs"])
    kwargs["out_hidden"] = tuple(kwargs["out_hidden"])
    members = []
    for k in range(config["members"]):
        net = RoostGap(emb, **kwargs)
        head = f"member_{k}."
        sd = {kk[len(head):]: v for kk, v in tensors.items() if kk.startswith(head)}
        sd["embedding"] = emb
        load_module_state(net, sd, directory / "model.safetensors")
        members.append(net)
    return Oracle(members, config, card, directory, std_scale=float(config.get("std_scale", 1.0)))


@lru_cache(maxsize=4)
def load_oracle(directory: str | None = None) -> Oracle:
    from ..settings import get_settings, set_torch_threads

    set_torch_threads()
    return load(Path(directory) if directory else get_settings().models_dir / NAME)
