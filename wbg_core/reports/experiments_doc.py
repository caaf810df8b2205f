"""docs/experiments.md: its generated tables, from the results the experiments saved.

The engine (wbg_core.engine.experiments) runs an experiment and saves its result as JSON in
docs/experiments/; this module turns those files into the document's tables, keeping the
hand-written head of the document.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..engine.experiments import EXPERIMENTS, RESULTS_DIR, ROOT

DOC = ROOT / "docs" / "experiments.md"


def _pm(rows: list[dict], key: str, pct: bool = False, digits: int = 2) -> str:
    """mean +- std over the repeats where the metric is defined (a precision is undefined
    when the model's list is empty), saying how many those were."""
    vals = np.array([row[key] for row in rows if key in row], dtype=float)
    if not len(vals):
        return "-"
    ok = ~np.isnan(vals)
    if not ok.any():
        return "undefined: empty list in every repeat"
    m, sd = float(vals[ok].mean()), float(vals[ok].std(ddof=1)) if ok.sum() > 1 else 0.0
    text = f"{100 * m:.1f}% +- {100 * sd:.1f}" if pct else f"{m:.{digits}f} +- {sd:.{digits}f}"
    return text if ok.all() else f"{text} ({ok.sum()} of {len(vals)} repeats; the others: empty list)"


def results_markdown(directory: Path = RESULTS_DIR) -> str:
    """The generated part of docs/experiments.md: one table per experiment run so far."""
    out = []
    for name in EXPERIMENTS:
        path = directory / f"{name}.json"
        if not path.exists():
            out.append(f"### {name}\n\nNot run yet (`python -m wbg_core experiment {name}`).\n")
            continue
        r = json.loads(path.read_text())
        s, c, ref, paper = r["repeats"], r["config"], r["reference"], r["paper"]
        n = len(r["repeats"])
        out.append(f"### {name}\n")
        out.append(f"Run {r['date']}, {n} repeat(s), {r['wall_s']:.0f} s; fixed pool: {ref['pool_samples']:,} "
                   f"{'GAN' if c.get('generator', 'gan') == 'gan' else 'autoencoder latent-box'} "
                   f"samples -> {ref['pool_unique_small']:,} unique with < {c['max_atoms'] + 1} atoms and "
                   f"< {c['max_elements'] + 1} elements; reference list (oracle >= {c['wide_gap']} eV): "
                   f"{ref['list_size']} formulas (paper: 102); oracle > 5 eV and SMACT-valid: {ref['smact_gt5']} (paper: 74).\n")
        if name == "exp1":
            out.append(f"| metric | ours | paper |\n|---|---|---|\n| oracle test MAE (eV) | {_pm(s, 'oracle_mae', digits=3)} | - |\n"
                       f"| wide-gap list size | {ref['list_size']} | 102 |\n| > 5 eV and SMACT-valid | {ref['smact_gt5']} | 74 |\n")
            continue
        out.append(f"Seeds: {c['n_seeds']}" + (f" with gap < {c['max_seed_gap']} eV" if c["max_seed_gap"] else "")
                   + f"; AL budget {c['budget']} proposals, batch {c['batch_size']}, kappa {c['kappa']}, "
                   f"invalid decodes: {c['invalid']}.\n")
        rows = [("valid AL proposals", _pm(s, "valid_proposals", digits=1), str(paper.get("valid_proposals", "-"))),
                ("valid-decode rate of UCB-ranked candidates", _pm(s, "valid_decode_rate", pct=True), "74.1% / 85.3% (of proposals)"),
                ("AL labels > 5 eV", _pm(s, "al_gt5", digits=1), "-"),
                ("AL labels > 5 eV, SMACT-valid", _pm(s, "al_gt5_smact", digits=1), "-"),
                ("best AL gap (eV)", _pm(s, "al_best_gap"), "-"),
                ("best AL gap minus best seed gap (eV)", _pm(s, "al_max_gap_reached_over_seeds"), "-")]
        for kind, label in (("rf", "RF"), ("roost", "Roost")):
            if not any(f"{kind}_bs_mae" in row for row in s):
                continue
            rows += [
                (f"{label} BS test MAE (eV)", _pm(s, f"{kind}_bs_mae", digits=3), "-"),
                (f"{label} AL test MAE (eV)", _pm(s, f"{kind}_al_mae", digits=3), "-"),
                (f"{label} BS recovery of the Exp 1 list", _pm(s, f"{kind}_bs_recovery", pct=True),
                 f"{100 * paper['recovery_bs']:.1f}%" if "recovery_bs" in paper else "-"),
                (f"{label} AL recovery of the Exp 1 list", _pm(s, f"{kind}_al_recovery", pct=True),
                 f"{100 * paper['recovery_al']:.1f}%" if "recovery_al" in paper else "-"),
                (f"{label} BS precision (share of its list in the Exp 1 list)", _pm(s, f"{kind}_bs_precision", pct=True), "-"),
                (f"{label} AL precision", _pm(s, f"{kind}_al_precision", pct=True), "-"),
                (f"{label} BS recovery, its top-K of the pool (K = Exp 1 list size)", _pm(s, f"{kind}_bs_recovery_top_k", pct=True), "-"),
                (f"{label} AL recovery, its top-K of the pool", _pm(s, f"{kind}_al_recovery_top_k", pct=True), "-"),
            ]
        out.append("| metric (mean +- std over repeats) | ours | paper |\n|---|---|---|\n"
                   + "\n".join(f"| {a} | {b} | {p} |" for a, b, p in rows) + "\n")
    return "\n".join(out)


MARK = "<!-- generated results below: python -m wbg_core experiment ... rewrites this part -->"


def write_doc(doc: Path = DOC, directory: Path = RESULTS_DIR) -> Path:
    """Keep the hand-written head of docs/experiments.md; regenerate the tables below MARK."""
    head = doc.read_text().split(MARK)[0].rstrip() + "\n\n" if doc.exists() else "# Experiments\n\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(head + MARK + "\n\n" + results_markdown(directory))
    return doc
