"""What the head's trees add over the non-metal members they start from, on the true non-metals.

python scripts/measure_head_gain.py CHECKPOINT_DIR [...]  (2 threads; about 1 min each)
Prints, per split, the MAE on gap > 0 rows of: the non-metal members' mean, the full members' mean,
the head's gap of a non-metal, and the shown prediction (P(non-metal) x gap).
"""
import sys
from pathlib import Path

import numpy as np

from pilot_head_inputs import head_inputs
from wbg_core.data import load_bandgaps, split
from wbg_core.models.oracle import load
from wbg_core.settings import set_torch_threads

set_torch_threads(2)
parts = split(load_bandgaps(), seed=0)
for directory in sys.argv[1:]:
    oracle = load(Path(directory))
    for name in ("val", "test"):
        d = head_inputs(oracle, parts[name].query("band_gap > 0"))
        mae = {"non-metal members' mean": np.clip(d["out"].nonmetal_means.mean(0), 0, None),
               "full members' mean": np.clip(d["out"].means.mean(0), 0, None),
               "head, gap of a non-metal": d["detail"]["gap_if_nonmetal"], "shown": d["detail"]["mean"]}
        print(directory, name, ", ".join(f"{k} {np.abs(v - d['y']).mean():.4f}" for k, v in mae.items()), flush=True)
