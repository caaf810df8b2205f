"""Run from the repository root: python scripts/pilot_classifier_member.py 100 (about 11 min on 2 cores),
then scripts/pilot_classifier_head.py and scripts/pilot_classifier_stack.py (docs/models.md, 2026-12-04).

Pilot: one Roost member trained as a metal/non-metal classifier (BCE on gap > 0), full train split,
100 epochs, OneCycle as the members; saves per-epoch val log-loss/AUC and the best logits on val/test."""
import json, math, sys, time
import numpy as np, torch
from sklearn.metrics import roc_auc_score, log_loss
from wbg_core.data import load_bandgaps, split
from wbg_core.composition.featurize import featurise, embedding_table
from wbg_core.models.oracle import RoostGap, _bucket_batches, _trim
torch.set_num_threads(2)
import os
os.makedirs("runs/cls_pilot", exist_ok=True)
EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 100
out = "runs/cls_pilot"
df = load_bandgaps(); parts = split(df, seed=0)
F = {}
for k in ("train", "val", "test"):
    z, w, e = featurise(parts[k]["formula"]); F[k] = (z, w, (parts[k]["band_gap"].to_numpy() > 0).astype(np.float32))
emb = torch.from_numpy(embedding_table())
torch.manual_seed(7)
net = RoostGap(emb.clone(), emb_dim=emb.shape[1], fea_len=64, n_graph=3, heads=1, hidden=128, out_hidden=(512, 256, 128, 64, 32))
opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-6)
z, w, y = F["train"]; n_el = (z > 0).sum(1)
steps = math.ceil(len(z) / 256)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=EPOCHS * steps, pct_start=0.15)
bce = torch.nn.BCEWithLogitsLoss()

@torch.no_grad()
def logits(k):
    z, w, _ = F[k]; o = np.zeros(len(z), np.float32)
    for idx in _bucket_batches((z > 0).sum(1), 4096, None):
        zb, wb = _trim(z, w, idx); o[idx] = net(zb, wb)[:, 0].numpy()
    return o
best, hist = 1e9, []
for ep in range(EPOCHS):
    t = time.time(); net.train(); rng = np.random.default_rng([7, ep])
    for idx in _bucket_batches(n_el, 256, rng):
        zb, wb = _trim(z, w, idx); loss = bce(net(zb, wb)[:, 0], torch.from_numpy(y[idx]))
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    net.eval(); lv = logits("val"); p = 1 / (1 + np.exp(-lv))
    ll, auc = log_loss(F["val"][2], np.clip(p, 1e-6, 1 - 1e-6)), roc_auc_score(F["val"][2], lv)
    hist.append({"epoch": ep + 1, "val_logloss": ll, "val_auc": auc, "s": time.time() - t})
    print(hist[-1], flush=True)
    if ll < best:
        best = ll; np.savez(f"{out}/best_logits.npz", val=lv, test=logits("test"), epoch=ep + 1)
    json.dump(hist, open(f"{out}/history.json", "w"))
