"""Training the oracle: the ensemble's members (resumable per epoch), then its head.

Lives apart from the model (oracle.py) so that loading a checkpoint never pulls in
LightGBM fitting, MAPIE or the random-forest baseline.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .checkpoint import ModelError, _jsonable, save_checkpoint
from ..composition.featurize import embedding_table, featurise
from .oracle import LOSSES, NAME, NONMETAL_PREFIX, Oracle, OracleConfig, RoostGap, _bucket_batches, _trim, load
from .oracle_head import head_features
from .oracle_head_fit import HeadConfig, fit_head


WIDTH_KEYS = ("heads", "hidden")  # what the non-metal members may change against full members taken --init-from


def _without_width(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if k not in WIDTH_KEYS}


def _fit_std_scale(err: np.ndarray, std: np.ndarray) -> float:
    """Scale s so that s * std covers 68.3% of validation errors (Gaussian 1-sigma)."""
    ratio = np.abs(err) / np.maximum(std, 1e-6)
    return float(np.quantile(ratio, 0.6827))



def train(out: Path, cfg: OracleConfig, device: torch.device, command: str | None = None, limit: int | None = None,
          only_member: int | None = None, nonmetal_members: int = 0, init_from: Path | None = None,
          with_head: bool = True, nonmetal_from: Path | None = None) -> dict:
    """Train each member on the full train split (all gaps), then `nonmetal_members` members on its
    gap > 0 rows only (the head's regressor reads them); resumable per member and epoch.

    `only_member` trains that member's resume state and stops (members 0..members-1 are the full
    ones, the next ones the non-metal ones), so members can train in parallel processes (one core
    each); a later run without it finds them finished and assembles the ensemble.
    `init_from`: take the full members from that checkpoint and train only the non-metal ones, whose
    width (heads, hidden) may differ from theirs (config.json's nonmetal_kwargs).
    `nonmetal_from`: the other way round: take the non-metal members from that checkpoint and train
    only the full ones (so a new recipe for one half does not retrain the other).
    `with_head=False`: save the ensemble (its card without metrics) and stop; `calibrate` fits the head later.
    """
    if init_from is not None and nonmetal_from is not None:
        raise ModelError("--init-from and --nonmetal-from: give one (both would leave no member to train)")
    n_all = cfg.members + (0 if nonmetal_from is not None else nonmetal_members)
    if only_member is not None and not 0 <= only_member < n_all:
        raise ModelError(f"member {only_member} is out of range: " + (
            f"this run trains the full members 0-{n_all - 1} (the non-metal ones come from --nonmetal-from)"
            if nonmetal_from is not None else f"the ensemble has members 0-{n_all - 1}"))
    from ..data import load_bandgaps
    from .training import card_base, data_checksum

    out = Path(out)
    df = load_bandgaps()
    sha = data_checksum()
    emb = torch.from_numpy(embedding_table())
    kwargs = {"emb_dim": int(emb.shape[1]), "fea_len": cfg.fea_len, "n_graph": cfg.n_graph, "heads": cfg.heads,
              "hidden": cfg.hidden, "out_hidden": list(cfg.out_hidden)}
    base, full_kwargs = None, kwargs
    if init_from is not None:
        base = load(Path(init_from), with_head=False)
        full_kwargs = base.config["kwargs"]
        if _without_width(full_kwargs) != _without_width(kwargs) or len(base.members) != cfg.members:
            raise ModelError(f"--init-from {init_from}: its members ({len(base.members)} of {full_kwargs}) "
                             f"are not the {cfg.members} of {kwargs} asked for (only --heads and --hidden may differ: "
                             "they set the non-metal members' width)")
    nm_base, nm_kwargs = None, kwargs
    if nonmetal_from is not None:
        nm_base = load(Path(nonmetal_from), with_head=False)
        if len(nm_base.nonmetal_members) != nonmetal_members or not nonmetal_members:
            raise ModelError(f"--nonmetal-from {nonmetal_from}: it holds {len(nm_base.nonmetal_members)} non-metal "
                             f"members, this run asks for {nonmetal_members}")
        nm_kwargs = nm_base.config.get("nonmetal_kwargs") or nm_base.config["kwargs"]
    if cfg.nonmetal_from_full and nonmetal_members and (nm_base is not None or full_kwargs != kwargs):
        raise ModelError("--nonmetal-from-full starts each non-metal member from a full member of the same width: "
                         + ("not with --nonmetal-from" if nm_base is not None else
                            f"--init-from {init_from}'s members are {full_kwargs}, not {kwargs}"))
    jobs = [("member", k, replace(cfg, train_on="full")) for k in range(cfg.members) if base is None]
    jobs += [(NONMETAL_PREFIX.rstrip("_"), k, replace(cfg, train_on="nonmetal"))
             for k in range(nonmetal_members) if nm_base is None]
    offset = 0 if base is None else cfg.members  # --member K counts the full members first
    trained: dict[str, list] = {"member": [], "nonmetal_member": []}
    histories, wall = [], 0.0
    feats: dict[str, dict] = {}
    for n, (kind, k, member_cfg) in enumerate(jobs):
        if only_member is not None and n + offset != only_member:
            continue
        from_full = kind != "member" and cfg.nonmetal_from_full  # starts from a full member: no pre-training
        _add_features(feats, df, member_cfg, limit, pretrain=bool(member_cfg.pretrain_epochs) and not from_full)
        start = _full_member(k, base, trained["member"], out, cfg, df, feats, emb, kwargs, device, sha, limit) \
            if from_full else None
        net, state = _train_member(out / f"{kind}_{k}", k, member_cfg, feats[member_cfg.train_on], emb, kwargs,
                                   device, sha, limit, f"oracle {kind.replace('_', ' ')} {k + 1}",
                                   pretrain=None if from_full or not member_cfg.pretrain_epochs else feats["formation"],
                                   start=start)
        if only_member is not None:
            return {"member": only_member, "kind": kind, "epochs": state.epoch, "best_val_mae": state.best,
                    "elapsed_s": round(state.elapsed_s, 1)}
        trained[kind].append(net)
        wall += state.elapsed_s
        histories.append(state.history)
    members = base.members if base is not None else trained["member"]
    nonmetal_nets = nm_base.nonmetal_members if nm_base is not None else trained["nonmetal_member"]
    config = {"class": "RoostGapEnsemble", "members": cfg.members, "nonmetal_members": nonmetal_members,
              "kwargs": full_kwargs, "train": asdict(cfg)}
    if full_kwargs != nm_kwargs and nonmetal_members:
        config["nonmetal_kwargs"] = nm_kwargs
    oracle = Oracle(members, config, {}, nonmetal_members=nonmetal_nets)
    # The fallback σ scale (a checkpoint without its head), fitted on the validation split.
    full = feats.get("full") or _split_features(df, replace(cfg, train_on="full"), limit)  # featurised once
    vz, vw, vy = full["val"]
    vmean, vstd = oracle.predict_arrays(vz, vw)
    oracle.std_scale = _fit_std_scale(vmean - vy, vstd)
    config["std_scale"] = oracle.std_scale
    card = card_base(NAME, device, cfg.seed, cfg.epochs, {**asdict(cfg), "nonmetal_members": nonmetal_members}, sha, command)
    card["wall_time_s"] = round(wall, 1)
    card["history"] = histories
    for key, source, ckpt in (("full_members_from", init_from, base), ("nonmetal_members_from", nonmetal_from, nm_base)):
        if ckpt is not None:
            card[key] = {"directory": str(source), "created": ckpt.card.get("created"),
                         "command": ckpt.card.get("command"), "wall_time_s": ckpt.card.get("wall_time_s"),
                         "history": ckpt.card.get("history")}
    tensors = {"embedding": emb}
    for prefix, nets in (("member_", members), (NONMETAL_PREFIX, nonmetal_nets)):
        for k, m in enumerate(nets):
            tensors.update({f"{prefix}{k}.{kk}": v for kk, v in m.state_dict().items() if kk != "embedding"})
    save_checkpoint(out, tensors, config, card)
    if not with_head:
        return card
    return calibrate(out, HeadConfig(seed=cfg.seed), command=command, limit=limit)


def _split_features(df: pd.DataFrame, cfg: OracleConfig, limit: int | None) -> dict:
    """split -> (element indices, weights, gap) of the rows a member learns from (cfg.train_on)."""
    from ..data import split

    parts = split(df, seed=cfg.seed, subset=cfg.train_on)
    if limit:
        parts = {k: v.iloc[:limit] for k, v in parts.items()}
    return {k: _featurised(k, v, "band_gap") for k, v in parts.items()}


def _featurised(name: str, rows: pd.DataFrame, target: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(element indices, weights, target as float32) of a split's rows; a formula that cannot be
    featurised is an error naming the split, never a silently dropped row."""
    z, w, errs = featurise(rows["formula"])
    if any(errs):
        raise ModelError(f"cannot featurise {name} formulas: {[e for e in errs if e][:3]}")
    return z, w, rows[target].to_numpy(np.float32)


def _formation_features(df: pd.DataFrame, cfg: OracleConfig, limit: int | None) -> dict:
    """split -> (element indices, weights, formation energy per atom) of every row that has one
    (metals included; train and val only, so no test formula's energy is ever seen)."""
    from ..data import split

    feats = {}
    for k, v in split(df, seed=cfg.seed, subset="full").items():
        if k == "test":
            continue
        v = v.dropna(subset=["formation_energy_per_atom"])
        feats[k] = _featurised(k, v.iloc[:limit] if limit else v, "formation_energy_per_atom")
    return feats


def _fit_epochs(trainer, cfg: OracleConfig, feats: dict, epochs: int, device: torch.device, clip_at_zero: bool) -> None:
    """The members' loop: robust loss, one-cycle rate, batches bucketed by element count; the best
    validation MAE is kept (clip_at_zero: the target is a gap, never below 0)."""
    from .training import autocast

    z_tr, w_tr, y_tr = feats["train"]
    n_el = (z_tr > 0).sum(axis=1)
    net, opt, sched = trainer.net, trainer.optimizers["opt"], trainer.scheduler
    for epoch, rng in trainer.epochs(epochs):
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
        vm = np.clip(vm, 0, None) if clip_at_zero else vm
        trainer.log(train_loss=tot / n, val_mae=float(np.abs(vm - feats["val"][2]).mean()))


def _trainer(mdir: Path, signature: dict, net: RoostGap, cfg: OracleConfig, n_rows: int, epochs: int,
             label: str, seed: int):
    from .trainer import Trainer

    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=epochs * math.ceil(n_rows / cfg.batch_size),
                                                pct_start=0.15)
    return Trainer(mdir, signature, {"net": net}, {"opt": opt}, label=label, seed=seed, scheduler=sched,
                   best_key="val_mae")


def _full_member(k: int, base, trained: list, out: Path, cfg: OracleConfig, df, feats: dict, emb, kwargs: dict,
                 device, sha: str, limit: int | None) -> RoostGap:
    """Full member k, the start of non-metal member k (cfg.nonmetal_from_full): from --init-from's
    checkpoint, from this run, or from its finished resume state under `out`."""
    if base is not None:
        if k >= len(base.members):
            raise ModelError(f"non-metal member {k} starts from full member {k}, but the checkpoint has {len(base.members)}")
        return base.members[k]
    if k < len(trained):
        return trained[k]
    if k >= cfg.members:
        raise ModelError(f"non-metal member {k} starts from full member {k}, but the ensemble has {cfg.members}")
    full_cfg = replace(cfg, train_on="full")
    mdir = out / f"member_{k}"
    if not (mdir / "train_state" / "state.json").exists():
        raise ModelError(f"non-metal member {k} starts from full member {k}: train it first ({mdir} has no state)")
    _add_features(feats, df, full_cfg, limit, pretrain=False)
    # finished only: this process must not train a member that another one may be writing
    return _train_member(mdir, k, full_cfg, feats["full"], emb, kwargs, device, sha, limit,
                         f"oracle member {k + 1}", finished_only=True)[0]


def _add_features(feats: dict, df: pd.DataFrame, cfg: OracleConfig, limit: int | None, pretrain: bool) -> None:
    """Featurise, once per run, the rows a member of this config learns (and the formation energies
    when it is pre-trained on them)."""
    if cfg.train_on not in feats:
        feats[cfg.train_on] = _split_features(df, cfg, limit)
    if pretrain and "formation" not in feats:
        feats["formation"] = _formation_features(df, cfg, limit)


def _train_member(mdir: Path, k: int, cfg: OracleConfig, feats: dict, emb: torch.Tensor, kwargs: dict,
                  device: torch.device, sha: str, limit: int | None, label: str, pretrain: dict | None = None,
                  start: RoostGap | None = None, finished_only: bool = False):
    """One member, resumable per epoch; returns (the best-validation network on the CPU, its state).

    pretrain (cfg.pretrain_epochs > 0): the formation-energy features; the member first learns them
    (its own resumable state in mdir/pretrain), then the gaps from that stage's best weights.
    start: a trained member whose weights begin the gap stage instead (no pre-training); a digest of
    them joins the resume signature, so another start trains anew.
    finished_only: read the finished member from its resume state, or raise ModelError; never train.
    """
    seed = cfg.seed * 1000 + k
    torch.manual_seed(seed)
    net = RoostGap(emb.clone(), **{**kwargs, "out_hidden": tuple(cfg.out_hidden)}).to(device)
    signature = {"model": NAME, "member": k, **asdict(cfg), "data": sha, "limit": limit}
    signature["out_hidden"] = list(cfg.out_hidden)
    if not cfg.nonmetal_from_full or cfg.train_on == "full":
        del signature["nonmetal_from_full"]  # the full members do not depend on it; older states lack it
    if start is not None:
        state_dict = start.state_dict()
        digest = hashlib.sha256()
        for name in sorted(state_dict):
            digest.update(name.encode() + state_dict[name].detach().cpu().contiguous().numpy().tobytes())
        signature["start"] = digest.hexdigest()
        net.load_state_dict(state_dict)
    elif cfg.pretrain_epochs and not finished_only:  # a finished member's gap stage holds its weights
        if pretrain is None:
            raise ModelError(f"{label}: pretrain_epochs={cfg.pretrain_epochs} needs the formation-energy features")
        pre = _trainer(mdir / "pretrain", {**signature, "stage": "formation energy"}, net, cfg, len(pretrain["train"][2]),
                       cfg.pretrain_epochs, f"{label}, pre-training on formation energy", seed)
        _fit_epochs(pre, cfg, pretrain, cfg.pretrain_epochs, device, clip_at_zero=False)
        net.load_state_dict(pre.best_state())
    trainer = _trainer(mdir, signature, net, cfg, len(feats["train"][2]), cfg.epochs, label, seed)
    if finished_only and trainer.state.epoch < cfg.epochs:
        raise ModelError(f"{label} is not finished: {mdir} holds {trainer.state.epoch} of its {cfg.epochs} epochs under "
                         "this configuration (it may be training in another process, have stopped, or have been "
                         "trained with other settings); finish it first with the same command and --member "
                         f"{k}, or start from a finished checkpoint with --init-from")
    _fit_epochs(trainer, cfg, feats, cfg.epochs, device, clip_at_zero=True)
    net.load_state_dict(trainer.best_state())
    return net.cpu().eval(), trainer.state


def ensemble_feats(oracle: Oracle, parts: dict[str, pd.DataFrame]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """split -> (head features, ensemble σ, gap): what the head learns from."""
    from .forest import statistics_with_ionic

    out = {}
    for k, v in parts.items():
        z, w, y = _featurised(k, v, "band_gap")
        e = oracle.ensemble_outputs(z, w)
        out[k] = (head_features(e, statistics_with_ionic(z, w)), e.regressor_std(), y)
    return out


def calibrate(directory: Path, cfg: HeadConfig | None = None, command: str | None = None,
              threads: int | None = None, limit: int | None = None) -> dict:
    """Fit the head of a trained ensemble (boosters on train, σ on val), save it, re-measure the card.

    The ensemble's weights are not touched; the card keeps the metrics it had under `earlier_metrics`.
    limit: the first rows of each split only, and a random test sample of that size (smoke runs).
    """
    from ..data import load_bandgaps, split
    from .checkpoint import CONFIG, CARD, atomic_write_text, git_commit, read_json
    from .training import Timer

    directory = Path(directory)
    cfg = cfg or HeadConfig()
    base = load(directory, with_head=False)
    card = dict(base.card)
    seed = int(card.get("seed", cfg.seed))
    df = load_bandgaps()
    parts = split(df, seed=seed, subset="full")
    if limit:
        parts = {k: v.iloc[:limit] for k, v in parts.items()}
    timer = Timer()
    # head_features: member means and σ (non-metal members' too), then the descriptor
    n_roost = 2 * (len(base.members) + len(base.nonmetal_members)) + base.descriptor_len
    first_nm = 2 * len(base.members)  # the non-metal members' means follow every full member's mean and σ
    head = fit_head(ensemble_feats(base, parts), cfg, magpie_first_column=n_roost, threads=threads or torch.get_num_threads(),
                    nonmetal_mean_columns=(first_nm, first_nm + len(base.nonmetal_members)))
    fit_s = timer()
    config = read_json(directory / CONFIG)
    sha256 = head.save(directory)
    config["head"] = {"files": list(sha256), "config": asdict(cfg), "sha256": sha256}
    atomic_write_text(directory / CONFIG, json.dumps(config, indent=2) + "\n")
    for stale in set(directory.glob("head_*.lgb.txt*")) - {directory / name for name in sha256}:
        stale.unlink()  # boosters of the head this one replaces (another fold count or layout)
    oracle = load(directory)
    if card.get("metrics") and "earlier_metrics" not in card:
        card["earlier_metrics"] = card["metrics"]
    card["head"] = {"method": "hurdle: LightGBM P(non-metal) x LightGBM gap of a non-metal, stacked on the ensemble; "
                              "σ by per-bin split-conformal calibration (MAPIE) on the validation split",
                    "fit_s": round(fit_s, 1), "calibration": head.calibration, "command": command,
                    "git_commit": git_commit()}
    card["metrics"] = measure(oracle, df, seed, with_forest=not limit, n=limit)
    base_metrics = measure(base, df, seed, with_forest=False, n=limit)
    card["ensemble_alone"] = {k: base_metrics[k] for k in ("test_full", "test_nonmetal", "window_mean_f1",
                                                           "roc_auc_gap_ge_3eV", "by_predicted_gap")}
    atomic_write_text(directory / CARD, json.dumps(card, indent=2, default=_jsonable) + "\n")
    return card


def measure(oracle, df: pd.DataFrame, seed: int, with_forest: bool = True, n: int | None = None) -> dict:
    """Card metrics: every figure of oracle_eval on the whole test split, the classic compounds and
    (with_forest) the random forest trained on the same split, judged by the same function."""
    from .oracle_eval import card_metrics, model_predictor

    metrics = card_metrics(model_predictor(oracle), df, split_seed=seed, n=n)
    if with_forest:
        rf = forest_baseline(df, seed)
        metrics["random_forest"] = rf
        metrics["mae_reduction_vs_random_forest"] = 1 - metrics["test_full"]["mae"] / rf["test_full"]["mae"]
    metrics["published_composition_only_mae"] = {
        "CrabNet (matbench_mp_gap, 106,113 MP structures)": 0.2655,
        "Roost (103,644 MP compositions, own split)": 0.283,
        "note": "both trained on about twice our 53,931 training formulas",
    }
    return metrics


def forest_baseline(df: pd.DataFrame, seed: int) -> dict:
    """The random forest on Magpie-style features, trained on the same split in the same run and
    judged by the same evaluation (its σ is the spread over trees, uncalibrated)."""
    from ..data import split
    from .forest import ForestConfig, ForestRegressor
    from .oracle_eval import card_metrics, model_predictor
    from .training import Timer

    train_part = split(df, seed=seed)["train"]
    timer = Timer()
    rf = ForestRegressor(ForestConfig(seed=seed, n_jobs=torch.get_num_threads())).fit(train_part["formula"], train_part["band_gap"])
    fit_s = timer()
    metrics = card_metrics(model_predictor(rf), df, split_seed=seed)
    return {"model": "RandomForestRegressor(100 trees, max_features 0.33) on Magpie-style features",
            "fit_s": round(fit_s, 1), **metrics}


@torch.no_grad()
def _member_predict(net: RoostGap, z: np.ndarray, w: np.ndarray, device: torch.device) -> np.ndarray:
    out = np.zeros(len(z), np.float32)
    for idx in _bucket_batches((z > 0).sum(axis=1), 4096, None):
        zb, wb = _trim(z, w, idx)
        out[idx] = net(zb.to(device), wb.to(device))[:, 0].float().cpu().numpy()
    return out
