"""Pre-training a member on formation energy, for the warm-start pilot (pilot_warm_start_nonmetal.py).

The formation energy per atom is known for the 81,727 roost2020 rows, metals included (correlation
with the gap -0.47), so a member can learn from about 49,000 train-split formulas before it sees the
27,817 non-metal gaps. It trains on the train split; the validation energies only measure it; no
test formula's energy is read.

python scripts/pilot_formation_pretrain.py EPOCHS OUT.safetensors  (2 threads)
"""
import sys
import time

import numpy as np
import torch
from safetensors.torch import save_file

from pilot_loop import one_cycle_epochs
from wbg_core.composition.featurize import embedding_table
from wbg_core.data import load_bandgaps
from wbg_core.models.oracle import OracleConfig, RoostGap
from wbg_core.models.oracle_training import _formation_features, _member_predict

torch.set_num_threads(2)
epochs, out = int(sys.argv[1]), sys.argv[2]
cfg = OracleConfig(epochs=epochs)
data = _formation_features(load_bandgaps(), cfg, None)  # train and val rows with an energy, as the product's stage
print(f"{len(data['train'][2]):,} train formulas with a formation energy", flush=True)
emb = torch.from_numpy(embedding_table())
torch.manual_seed(12345)
net = RoostGap(emb.clone(), emb_dim=int(emb.shape[1]), fea_len=cfg.fea_len, n_graph=cfg.n_graph, heads=cfg.heads,
               hidden=cfg.hidden, out_hidden=tuple(cfg.out_hidden))
t0 = time.time()
for epoch in one_cycle_epochs(net, cfg, cfg.lr, data["train"], epochs, np.random.default_rng(0)):
    mae = float(np.abs(_member_predict(net, *data["val"][:2], torch.device("cpu")) - data["val"][2]).mean())
    print(f"epoch {epoch + 1}: validation formation-energy MAE {mae:.4f} eV/atom, {time.time() - t0:.0f} s", flush=True)
save_file({k: v.contiguous() for k, v in net.state_dict().items()}, out)
