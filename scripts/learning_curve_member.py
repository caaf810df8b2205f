"""How much a non-metal member gains from more data: member 0's training (the product's own loop,
oracle_training._train_member, same seed) on a random fraction of the gap > 0 train rows.

Run from the repository root: python scripts/learning_curve_member.py 0.25 0.5 1.0 (about 14 min on 2
cores). Measured 2026-12-04: 25% 0.637, 50% 0.532, all 0.469 eV (docs/models.md).
"""
import sys
from pathlib import Path

import numpy as np
import torch

from wbg_core.composition.featurize import embedding_table
from wbg_core.data import load_bandgaps
from wbg_core.models.oracle import OracleConfig
from wbg_core.models.oracle_training import _split_features, _train_member
from wbg_core.models.training import data_checksum, pick_device

torch.set_num_threads(2)
cfg = OracleConfig(epochs=100, train_on="nonmetal")
feats = _split_features(load_bandgaps(), cfg, None)
emb = torch.from_numpy(embedding_table())
kwargs = {"emb_dim": int(emb.shape[1]), "fea_len": cfg.fea_len, "n_graph": cfg.n_graph, "heads": cfg.heads,
          "hidden": cfg.hidden, "out_hidden": list(cfg.out_hidden)}
for frac in map(float, sys.argv[1:]):
    z, w, y = feats["train"]
    idx = np.sort(np.random.default_rng(0).permutation(len(y))[: int(frac * len(y))])
    part = {**feats, "train": (z[idx], w[idx], y[idx])}
    _, state = _train_member(Path(f"runs/learning_curve/nonmetal_{frac}"), 0, cfg, part, emb, kwargs,
                             pick_device("cpu"), data_checksum(), f"random {frac}", f"non-metal member, {frac:.0%} of rows")
    print(f"{frac:.0%} of the rows ({len(idx):,}): best validation MAE {state.best:.4f} eV, {state.elapsed_s:.0f} s", flush=True)
