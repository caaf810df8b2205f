"""Do the non-metal members generalise better as a stochastic weight average (SWA, Izmailov et al. 2018)?

python scripts/pilot_swa_member.py MEMBER EPOCHS LR  (2 threads; about 5 s per epoch)
The members fit the non-metals they learnt to 0.22 eV and new ones to 0.40 eV. SWA is the usual cheap
cure for that gap: here the shipped non-metal member MEMBER continues on the train split's non-metals
at a constant rate LR (the product's loss, batch and bucketing) and torch.optim.swa_utils.AveragedModel
averages its weights once per epoch. Prints the validation MAE on the non-metals of the running member
and of the average.
"""
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from pilot_loop import epochs_of
from wbg_core.data import load_bandgaps
from wbg_core.models.oracle import OracleConfig, load
from wbg_core.models.oracle_training import _member_predict, _split_features

torch.set_num_threads(2)
member, epochs, lr = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
cfg = OracleConfig(train_on="nonmetal")
feats = _split_features(load_bandgaps(), cfg, None)
net = copy.deepcopy(load(Path("models/oracle"), with_head=False).nonmetal_members[member]).train()
for p in net.parameters():
    p.requires_grad_(True)
vz, vw, vy = feats["val"]


def val_mae(m) -> float:
    m.eval()
    return float(np.abs(np.clip(_member_predict(m, vz, vw, torch.device("cpu")), 0, None) - vy).mean())


print(f"start: {val_mae(net):.4f}", flush=True)
swa = AveragedModel(net)
opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=cfg.weight_decay)  # a constant rate: no scheduler
t0 = time.time()
for epoch in epochs_of(net, cfg, opt, feats["train"], epochs, np.random.default_rng(member)):
    swa.update_parameters(net)
    print(f"epoch {epoch + 1}: current {val_mae(net):.4f}, SWA of {epoch + 1} {val_mae(swa.module):.4f}, "
          f"{time.time() - t0:.0f} s", flush=True)
