"""Pre-training a member on formation energy, for the warm-start pilot (pilot_warm_start_nonmetal.py).

The formation energy per atom is known for the 81,727 roost2020 rows, metals included (correlation
with the gap -0.47), so a member can learn from about 49,000 train-split formulas before it sees the
27,817 non-metal gaps. Only the train split is used: no validation or test formula's energy.

python scripts/pilot_formation_pretrain.py EPOCHS OUT.safetensors  (2 threads)
"""
import math
import sys
import time

import numpy as np
import torch
from safetensors.torch import save_file

from wbg_core.composition.featurize import embedding_table, featurise
from wbg_core.data import load_bandgaps, split
from wbg_core.models.oracle import LOSSES, OracleConfig, RoostGap, _bucket_batches, _trim
from wbg_core.models.oracle_training import _member_predict

torch.set_num_threads(2)
epochs, out = int(sys.argv[1]), sys.argv[2]
cfg = OracleConfig(epochs=epochs)
parts = split(load_bandgaps(), seed=cfg.seed)
data = {}
for name in ("train", "val"):
    v = parts[name].dropna(subset=["formation_energy_per_atom"])
    z, w, _ = featurise(v["formula"])
    data[name] = (z, w, v["formation_energy_per_atom"].to_numpy(np.float32))
z_tr, w_tr, y_tr = data["train"]
print(f"{len(y_tr):,} train formulas with a formation energy", flush=True)
emb = torch.from_numpy(embedding_table())
torch.manual_seed(12345)
net = RoostGap(emb.clone(), emb_dim=int(emb.shape[1]), fea_len=cfg.fea_len, n_graph=cfg.n_graph, heads=cfg.heads,
               hidden=cfg.hidden, out_hidden=tuple(cfg.out_hidden))
opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=epochs * math.ceil(len(y_tr) / cfg.batch_size),
                                            pct_start=0.15)
rng, n_el, t0 = np.random.default_rng(0), (z_tr > 0).sum(axis=1), time.time()
for epoch in range(epochs):
    net.train()
    for idx in _bucket_batches(n_el, cfg.batch_size, rng):
        zb, wb = _trim(z_tr, w_tr, idx)
        loss = LOSSES[cfg.loss](net(zb, wb).float(), torch.from_numpy(y_tr[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    mae = float(np.abs(_member_predict(net, *data["val"][:2], torch.device("cpu")) - data["val"][2]).mean())
    print(f"epoch {epoch + 1}: validation formation-energy MAE {mae:.4f} eV/atom, {time.time() - t0:.0f} s", flush=True)
save_file({k: v.contiguous() for k, v in net.state_dict().items()}, out)
