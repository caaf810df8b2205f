"""Does a non-metal member gain from starting at a full member's weights? The full members learned
from every train row (metals too: twice the formulas), so their chemistry may transfer to the
gap > 0 rows that limit the head (learning curve, docs/models.md).

python scripts/pilot_warm_start_nonmetal.py MEMBER EPOCHS LR [START.safetensors]  (2 threads; about 4 s per epoch)
START: a member pre-trained elsewhere (pilot_formation_pretrain.py) instead of the shipped full member MEMBER.
Prints the validation MAE on the non-metals per epoch: the start as it is, then fine-tuned on the
gap > 0 train rows with a one-cycle rate peaking at LR (same loss, batch, bucketing as the members).
"""
import copy
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from wbg_core.data import load_bandgaps
from wbg_core.models.oracle import LOSSES, OracleConfig, _bucket_batches, _trim, load
from wbg_core.models.oracle_training import _member_predict, _split_features

torch.set_num_threads(2)
member, epochs, lr = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
cfg = OracleConfig(epochs=epochs, train_on="nonmetal", lr=lr)
feats = _split_features(load_bandgaps(), cfg, None)
net = copy.deepcopy(load(Path("models/oracle"), with_head=False).members[member]).train()
if len(sys.argv) > 4:
    net.load_state_dict(load_file(sys.argv[4]))
for p in net.parameters():
    p.requires_grad_(True)
(z_tr, w_tr, y_tr), (vz, vw, vy) = feats["train"], feats["val"]


def val_mae() -> float:
    net.eval()
    return float(np.abs(np.clip(_member_predict(net, vz, vw, torch.device("cpu")), 0, None) - vy).mean())


print(f"start ({sys.argv[4] if len(sys.argv) > 4 else f'full member {member}'}): validation MAE on non-metals {val_mae():.4f}", flush=True)
opt = torch.optim.AdamW([p for n, p in net.named_parameters() if n != "embedding"], lr=lr, weight_decay=cfg.weight_decay)
steps = math.ceil(len(z_tr) / cfg.batch_size)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.15)
rng = np.random.default_rng(member)
n_el = (z_tr > 0).sum(axis=1)
best, t0 = 9.0, time.time()
for epoch in range(epochs):
    net.train()
    for idx in _bucket_batches(n_el, cfg.batch_size, rng):
        zb, wb = _trim(z_tr, w_tr, idx)
        loss = LOSSES[cfg.loss](net(zb, wb).float(), torch.from_numpy(y_tr[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    mae = val_mae()
    best = min(best, mae)
    print(f"epoch {epoch + 1}: validation MAE {mae:.4f} (best {best:.4f}), {time.time() - t0:.0f} s", flush=True)
print(f"member {member}, {epochs} epochs, lr {lr}: best {best:.4f}")
