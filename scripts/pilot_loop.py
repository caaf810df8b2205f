"""The members' training loop for the pilot scripts (pilot_formation_pretrain.py,
pilot_warm_start_nonmetal.py, pilot_swa_member.py): the product's loss, rate and bucketed batches, without
the Trainer's resume state, so a pilot sets its own start weights, rate and seed."""
import math

import numpy as np
import torch

from wbg_core.models.oracle import LOSSES, OracleConfig, RoostGap, _bucket_batches, _trim


def one_cycle_epochs(net: RoostGap, cfg: OracleConfig, lr: float, train: tuple, epochs: int, rng: np.random.Generator):
    """Trains `net` on train = (element indices, weights, target) with the members' one-cycle rate
    peaking at lr; yields each finished epoch (0-based), with the network in eval mode, so the caller
    measures it."""
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * math.ceil(len(train[2]) / cfg.batch_size),
                                                pct_start=0.15)
    yield from epochs_of(net, cfg, opt, train, epochs, rng, sched)


def epochs_of(net: RoostGap, cfg: OracleConfig, opt, train: tuple, epochs: int, rng: np.random.Generator, sched=None):
    """The loop itself, with the caller's optimiser (and scheduler, stepped per batch, if any)."""
    z_tr, w_tr, y_tr = train
    n_el = (z_tr > 0).sum(axis=1)
    for epoch in range(epochs):
        net.train()
        for idx in _bucket_batches(n_el, cfg.batch_size, rng):
            zb, wb = _trim(z_tr, w_tr, idx)
            loss = LOSSES[cfg.loss](net(zb, wb).float(), torch.from_numpy(y_tr[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
        net.eval()
        yield epoch
