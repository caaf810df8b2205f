"""Does a non-metal member gain from starting at a full member's weights? The full members learned
from every train row (metals too: twice the formulas), so their chemistry may transfer to the
gap > 0 rows that limit the head (learning curve, docs/models.md).

python scripts/pilot_warm_start_nonmetal.py MEMBER EPOCHS LR [START.safetensors]  (2 threads; about 4 s per epoch)
WEIGHT_DECAY=X in the environment: AdamW's weight decay instead of the members' 1e-6.
START: a member pre-trained elsewhere (pilot_formation_pretrain.py) instead of the shipped full member MEMBER.
Prints the validation MAE on the non-metals per epoch: the start as it is, then fine-tuned on the
gap > 0 train rows with a one-cycle rate peaking at LR (same loss, batch, bucketing as the members).
"""
import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from pilot_loop import one_cycle_epochs
from wbg_core.data import load_bandgaps
from wbg_core.models.oracle import OracleConfig, load
from wbg_core.models.oracle_training import _member_predict, _split_features

torch.set_num_threads(2)
member, epochs, lr = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
# WEIGHT_DECAY=... overrides the members' AdamW weight decay (1e-6)
cfg = OracleConfig(epochs=epochs, train_on="nonmetal", lr=lr,
                   weight_decay=float(os.environ.get("WEIGHT_DECAY", OracleConfig().weight_decay)))
feats = _split_features(load_bandgaps(), cfg, None)
net = copy.deepcopy(load(Path("models/oracle"), with_head=False).members[member]).train()
if len(sys.argv) > 4:
    net.load_state_dict(load_file(sys.argv[4]))
for p in net.parameters():
    p.requires_grad_(True)
vz, vw, vy = feats["val"]


def val_mae() -> float:
    net.eval()
    return float(np.abs(np.clip(_member_predict(net, vz, vw, torch.device("cpu")), 0, None) - vy).mean())


print(f"start ({sys.argv[4] if len(sys.argv) > 4 else f'full member {member}'}): validation MAE on non-metals {val_mae():.4f}", flush=True)
best, t0 = 9.0, time.time()
for epoch in one_cycle_epochs(net, cfg, lr, feats["train"], epochs, np.random.default_rng(member)):
    mae = val_mae()
    best = min(best, mae)
    print(f"epoch {epoch + 1}: validation MAE {mae:.4f} (best {best:.4f}), {time.time() - t0:.0f} s", flush=True)
print(f"member {member}, {epochs} epochs, lr {lr}: best {best:.4f}")
