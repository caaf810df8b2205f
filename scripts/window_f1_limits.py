"""What holds the window F1 of issue #12 below 0.70: the classifier, the window rule or the gap of a non-metal?

python scripts/window_f1_limits.py [CHECKPOINT_DIR]  (2 threads; about 1 min)
On the test split, with the checkpoint's own head, the mean F1 over the five windows of #12 at
P(in window) >= 0.5 (oracle_eval.window_selection) for:
- the shipped rule, P(non-metal) x the non-metal gap's calibrated distribution;
- the same distribution with a perfect P(non-metal) (1 for every true non-metal, 0 for a metal);
- no distribution at all: P(non-metal) >= 0.5 and the non-metal gap (its median) inside the window;
- the non-metal gap's errors and σ shrunk by one factor on every true non-metal, P unchanged, until
  its MAE is 0.39 ... 0.26 eV: the accuracy the target needs.
Then the classic compounds: the label, the split they are in, the full and the non-metal members'
means and the head's gap of a non-metal, to tell under-fitting (a training formula predicted low)
from a failure to generalise.
"""
import sys
from pathlib import Path

import numpy as np

from pilot_head_inputs import head_inputs
from wbg_core.composition.featurize import featurise
from wbg_core.data import load_bandgaps, split
from wbg_core.models.oracle import load
from wbg_core.models.oracle_eval import CLASSIC_COMPOUNDS, window_selection
from wbg_core.models.oracle_head import hurdle_window_probability
from wbg_core.settings import set_torch_threads

set_torch_threads(2)
oracle = load(Path(sys.argv[1] if len(sys.argv) > 1 else "models/oracle"))
cal = oracle.head.calibration
data = load_bandgaps()
parts = split(data, seed=0)
d = head_inputs(oracle, parts["test"])
y, det = d["y"], d["detail"]
p, r, s = (det[c].astype(np.float64) for c in ("p_nonmetal", "gap_if_nonmetal", "std_if_nonmetal"))
nm = y > 0


def f1(p_, r_, s_, rule="distribution"):
    if rule == "point":
        rows = window_selection(y, np.where(p_ >= 0.5, r_, 0.0), None)
    else:
        rows = window_selection(y, None, None, p_window=lambda win: hurdle_window_probability(p_, r_, s_, win, cal))
    return np.mean([w["f1"] for w in rows]), " / ".join(f"{w['f1']:.3f}" for w in rows)


print(f"test split: {len(y):,} formulas, {int(nm.sum()):,} non-metals; the gap of a non-metal has MAE "
      f"{np.abs(r - y)[nm].mean():.4f} eV on them")
for label, args in (("shipped rule", (p, r, s)), ("perfect P(non-metal)", (nm.astype(np.float64), r, s))):
    m, per = f1(*args)
    print(f"{label:45s} mean F1 {m:.4f}  ({per})")
m, per = f1(p, r, s, rule="point")
print(f"{'P >= 0.5 and the median gap inside the window':45s} mean F1 {m:.4f}  ({per})")
base = np.abs(r - y)[nm].mean()
for target in (0.39, 0.36, 0.34, 0.32, 0.30, 0.26):
    k = target / base  # errors and σ of every true non-metal scaled by k; metals and P untouched
    r_k, s_k = np.where(nm, y + k * (r - y), r), np.where(nm, k * s, s)
    m, per = f1(p, np.clip(r_k, 0, None), s_k)
    print(f"non-metal gap MAE {target:.2f} eV (x{k:.2f}){'':22s} mean F1 {m:.4f}  ({per})")

where = {f: name for name, part in parts.items() for f in part["formula"]}
label, source = dict(zip(data["formula"], data["band_gap"])), dict(zip(data["formula"], data["source"]))
z, w, _ = featurise(list(CLASSIC_COMPOUNDS))
out, cd = oracle.ensemble_outputs(z, w), oracle.predict_detail(z, w)
print("\nclassic   split  label  full members  non-metal members  gap if non-metal  shown")
for i, f in enumerate(CLASSIC_COMPOUNDS):
    print(f"{f:8s} {where.get(f, '-'):5s} {label.get(f, np.nan):6.2f} {out.means[:, i].mean():12.2f} "
          f"{out.nonmetal_means[:, i].mean():18.2f} {cd['gap_if_nonmetal'][i]:8.2f} ± {cd['std_if_nonmetal'][i]:.2f}"
          f" {cd['mean'][i]:6.2f} ± {cd['std'][i]:.2f}  {source.get(f, '')}")
