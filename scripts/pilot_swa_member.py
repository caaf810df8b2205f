"""Do the non-metal members generalise better as a stochastic weight average (SWA, Izmailov et al. 2018)?

python scripts/pilot_swa_member.py MEMBER EPOCHS LR  (2 threads; about 5 s per epoch)
The members fit the non-metals they learnt to 0.22 eV and new ones to 0.40 eV. SWA is the usual cheap
cure for that gap: here the shipped non-metal member MEMBER continues on the train split's non-metals
at a constant rate LR (the product's loss, batch and bucketing) and torch.optim.swa_utils.AveragedModel
averages its weights once per epoch. Prints the validation MAE on the non-metals of the running member
and of the average.
"""
import copy, sys, time
from pathlib import Path
import numpy as np, torch
from torch.optim.swa_utils import AveragedModel
from wbg_core.data import load_bandgaps
from wbg_core.models.oracle import LOSSES, OracleConfig, load, _bucket_batches, _trim
from wbg_core.models.oracle_training import _member_predict, _split_features
torch.set_num_threads(2)
member, epochs, lr = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
cfg = OracleConfig(train_on="nonmetal")
feats = _split_features(load_bandgaps(), cfg, None)
o = load(Path("models/oracle"), with_head=False)
net = copy.deepcopy(o.nonmetal_members[member]).train()
for p in net.parameters(): p.requires_grad_(True)
vz, vw, vy = feats["val"]
def mae(m):
    m.eval(); return float(np.abs(np.clip(_member_predict(m, vz, vw, torch.device("cpu")), 0, None) - vy).mean())
print(f"start: {mae(net):.4f}", flush=True)
swa = AveragedModel(net)
opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=cfg.weight_decay)
z_tr, w_tr, y_tr = feats["train"]; n_el = (z_tr > 0).sum(axis=1); rng = np.random.default_rng(member)
t0 = time.time()
for epoch in range(epochs):
    net.train()
    for idx in _bucket_batches(n_el, cfg.batch_size, rng):
        zb, wb = _trim(z_tr, w_tr, idx)
        loss = LOSSES[cfg.loss](net(zb, wb).float(), torch.from_numpy(y_tr[idx]))
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    swa.update_parameters(net)
    print(f"epoch {epoch+1}: current {mae(net):.4f}, SWA of {epoch+1} {mae(swa.module):.4f}, {time.time()-t0:.0f} s", flush=True)
