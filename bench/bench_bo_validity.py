"""Bayesian-optimisation proposals that decode to a formula: the paper decoded 741 (Exp 2)
and 853 (Exp 3) valid formulas out of 1,000 BO proposals; the issue asks for better.

Each repeat is the experiments' campaign (docs/experiments.md): UCB with kappa 10, batches of
20, 1,000 proposals, invalid decodes skipped (the campaign decodes the UCB-ranked candidates
until 20 are new valid formulas, so the valid-decode rate is valid decodes / decode
attempts), seeds drawn as Exp 2 (1,000) and Exp 3 (300). The paper's strict decoding rule
is the baseline, measured in the same run on the same seed sets as the argmax rule.
"""
from __future__ import annotations

import statistics
import time

SETTINGS = {"exp2": 1000, "exp3": 300}
PAPER = {"exp2": 0.741, "exp3": 0.853}
RULES = ("strict", "argmax")
BUDGET = 1000


def _campaign(n_seeds: int, rule: str, seed: int) -> dict:
    from wbg_core.composition import smact_valid
    from wbg_core.engine.campaign import Campaign, CampaignConfig, pick_seeds

    seeds = pick_seeds(n_seeds, seed=seed)
    cfg = CampaignConfig(objective="max", window_min=5.0, kappa=10.0, batch_size=20, budget=BUDGET,
                         invalid="skip", decode_rule=rule, seed=seed)
    camp = Campaign.new(None, cfg, seeds["formula"], seeds["band_gap"])
    t = time.perf_counter()
    for _ in range(3 * BUDGET // cfg.batch_size):  # rounds that add nothing still count
        if camp.done():
            break
        camp.step()
    hist = camp.history()
    al = camp.labelled()
    al = al[al["source"] == "al"]
    f = al["formula"].to_numpy(object)
    return {
        "valid_decode_rate": float(hist["valid_decodes"].sum() / max(1, hist["decode_attempts"].sum())),
        "valid_proposals": int(len(al)),
        "smact_valid_share": float(smact_valid(f).mean()) if len(f) else float("nan"),
        "gt5": int((al["band_gap"] > 5).sum()),
        "best_gap": float(al["band_gap"].max()) if len(al) else float("nan"),
        "seconds": round(time.perf_counter() - t, 1),
    }


def run(repeats: int = 3) -> dict:
    rows = {(s, r): [_campaign(n, r, seed) for seed in range(repeats)] for s, n in SETTINGS.items() for r in RULES}
    med = {k: {m: statistics.median(x[m] for x in v) for m in v[0]} for k, v in rows.items()}
    passed = all(med[(s, "argmax")]["valid_decode_rate"] > PAPER[s] for s in SETTINGS) or \
        all(med[(s, "strict")]["valid_decode_rate"] > PAPER[s] for s in SETTINGS)
    md = (f"Median of {repeats} campaigns per cell (seed sets 0..{repeats - 1}, the same for both rules), "
          f"{BUDGET:,} proposals each:\n\n"
          "| setting | decoding rule | valid decodes / attempts | paper | SMACT-valid share of the valid | > 5 eV found | best gap (eV) | campaign time |\n"
          "|---|---|---|---|---|---|---|---|\n")
    for s, n in SETTINGS.items():
        for r in RULES:
            m = med[(s, r)]
            md += (f"| {s} ({n:,} seeds) | {r}{' (paper)' if r == 'strict' else ''} | {m['valid_decode_rate']:.1%} | "
                   f"{PAPER[s]:.1%} | {m['smact_valid_share']:.1%} | {m['gt5']:.0f} | {m['best_gap']:.2f} | {m['seconds']:.0f} s |\n")
    md += ("\nThe argmax rule reads each element's most likely count instead of rejecting a row with two cells "
           "at >= 0.5 (`wbg campaign new --decode-rule argmax`, the Active-learning page's \"Decoding rule\"); "
           "the experiments keep the paper's strict rule.\n")
    return {
        "title": "Active learning: BO proposals that decode to a formula (paper: 741 and 853 of 1,000)",
        "target": "valid-decode rate above the paper's 74.1% (Exp 2) and 85.3% (Exp 3)",
        "passed": bool(passed),
        "median": {f"{s}/{r}": m for (s, r), m in med.items()},
        "runs": {f"{s}/{r}": v for (s, r), v in rows.items()},
        "markdown": md,
    }


if __name__ == "__main__":  # quick look: python bench/bench_bo_validity.py
    import json

    print(json.dumps({k: v for k, v in run(1).items() if k != "markdown"}, indent=2, default=float))
