"""Your own DFT labels in a campaign (issue #17): an external labeller.

An external campaign proposes rounds as an oracle one does, but the oracle's value is kept
only as `provisional_gap`: band_gap stays empty (pending) until the scientist imports the gap
they computed. The GP trains on seeds + imported DFT labels; pending rows enter a fit with
their provisional value only when the user asks (`use_provisional`), and are then marked so.

Imported labels live in state.json (`labels`), not in the round files: an import is one
atomic write of the commit point, so it applies whole or not at all, and a round's files stay
as the round wrote them. `overlay` puts the labels onto the rounds when they are loaded.
"""
from __future__ import annotations

import datetime as dt
import io
import math
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..composition import FormulaError, compound_valid, reduced_formula
from ..files import atomic_write_text
from .campaign_schema import CampaignError

PENDING = "pending"
PROVISIONAL = "oracle (provisional, used on request)"
PENALTY = "invalid decode (0 eV penalty)"
SEED = "seed"
SAME_GAP_EV = 1e-6  # a re-imported gap within this of the stored one is the same label


def dft_source(imported: str) -> str:
    return f"dft (imported {imported[:10]})"


# ---- views ------------------------------------------------------------------------------------
def overlay(config, r: int, df: pd.DataFrame, labels: list[dict]) -> pd.DataFrame:
    """Round r of an external campaign as it stands: imported gaps in band_gap, label_source per
    row, hits recomputed from the real labels. Oracle rounds are returned unchanged."""
    if config.labeller != "external":
        return df
    out = df.copy()
    valid = out["valid"].to_numpy(bool)
    formulas = out["formula"].to_numpy(dtype=object)
    gap = out["band_gap"].to_numpy(np.float64).copy()
    gap[valid] = np.nan  # idempotent: only the labels decide what a valid row's gap is
    src = np.where(valid, PENDING, PENALTY).astype(object)
    got = {lab["formula"]: lab for lab in labels if lab["round"] == r}
    for i in np.flatnonzero(valid):
        lab = got.get(formulas[i])
        if lab is not None:
            gap[i], src[i] = lab["band_gap"], dft_source(lab["imported"])
    out["band_gap"] = gap
    out["label_source"] = src
    lo, hi = config.window
    with np.errstate(invalid="ignore"):
        inside = np.isfinite(gap) & (gap >= lo) & (gap <= hi)
    out["in_window"] = valid & inside & compound_valid(np.where(valid, formulas, None))
    return out


def hold_for_dft(config, df: pd.DataFrame) -> pd.DataFrame:
    """A new external round: the labeller's (oracle's) value becomes provisional_gap and the gap is pending."""
    if config.labeller != "external":
        return df
    valid = df["valid"].to_numpy(bool)
    return df.assign(band_gap=np.where(valid, np.nan, df["band_gap"]), band_gap_mean=np.nan, band_gap_std=np.nan,
                     in_window=False, provisional_gap=df["band_gap_mean"], provisional_std=df["band_gap_std"])


def fit_record(report, df: pd.DataFrame, table: pd.DataFrame):
    """The round's report, with what the GP was fitted on and what is left pending."""
    report.trained_on = len(table)
    if "label_source" in table:
        report.provisional_used = int((table["label_source"] == PROVISIONAL).sum())
    if "provisional_gap" in df:
        report.pending = int(df["band_gap"].isna().sum())
        report.labelled -= report.pending
    return report


def training_set(z: np.ndarray, table: pd.DataFrame, use_provisional: bool) -> tuple[np.ndarray, pd.DataFrame]:
    """The rows a fit sees: pending ones are left out, or (use_provisional) enter with the oracle's value."""
    if "label_source" not in table:
        return z, table
    pending = (table["label_source"] == PENDING).to_numpy()
    keep = ~pending
    if use_provisional:
        prov = pending & np.isfinite(table["provisional_gap"].to_numpy(np.float64))
        table = table.copy()
        table.loc[prov, "band_gap"] = table.loc[prov, "provisional_gap"]
        table.loc[prov, "label_source"] = PROVISIONAL
        keep = keep | prov
    return z[keep], table[keep].reset_index(drop=True)


def pending_rows(camp) -> pd.DataFrame:
    """round, formula, provisional gap and sigma of every proposal still waiting for a DFT label."""
    _, table = camp.points()
    cols = ["round", "formula", "provisional_gap", "provisional_std"]
    if "label_source" not in table:
        return pd.DataFrame(columns=cols)
    return table.loc[table["label_source"] == PENDING, cols].reset_index(drop=True)


def status(camp) -> dict:
    """Rounds, proposals, budget, best gap and hits; for an external campaign also the pending
    and DFT-labelled counts, with best and hits from the labels as they stand now."""
    from dataclasses import asdict

    _, _, table = camp.data()
    hist, seeds, budget = camp.state["history"], camp.seeds, camp.config.budget
    out = {
        "directory": str(camp.directory) if camp.directory else None,
        "config": asdict(camp.config),
        "seeds": len(seeds),
        "rounds_done": camp.state["rounds_done"],
        "total_proposals": camp.total_proposals,
        "labelled_al": int(((table["source"] == "al") & table["valid"].astype(bool)).sum()),
        "budget_left": None if budget is None else max(0, budget - camp.total_proposals),
        "best_gap": hist[-1]["best_gap"] if hist else float(seeds["band_gap"].max()),
        "best_formula": hist[-1]["best_formula"] if hist else str(seeds.loc[seeds["band_gap"].idxmax(), "formula"]),
        "hits_total": hist[-1]["hits_total"] if hist else 0,
        "gp": camp.state.get("gp"),
        "labeller": camp.config.labeller, "pending": 0, "dft_labelled": 0,
    }
    if camp.config.labeller == "external" and camp.rounds:
        _, every = camp.points()
        al = every[every["source"] == "al"]
        lab = table[table["valid"].astype(bool)]
        best = lab["band_gap"].idxmax()
        out.update(pending=int((al["label_source"] == PENDING).sum()),
                   dft_labelled=int(al["label_source"].str.startswith("dft").sum()),
                   best_gap=float(lab.loc[best, "band_gap"]), best_formula=str(lab.loc[best, "formula"]),
                   hits_total=int(al["in_window"].astype(bool).sum()))
    return out


def export_points(camp, path: str | Path, known: frozenset) -> Path:
    """CSV of every point: seeds and proposals (pending ones too), with labels, windows and novelty."""
    _, table = camp.points()
    lo_w, hi_w = camp.config.window
    table = table.copy()
    table["novel"] = [bool(f) and f not in known for f in table["formula"]]
    table["compound_valid"] = compound_valid(np.where(table["formula"] != "", table["formula"], None))
    table["in_window"] = (table["valid"].astype(bool) & (table["band_gap"] >= lo_w) & (table["band_gap"] <= hi_w)
                          & table["compound_valid"])
    cols = ["round", "source", "formula", "valid", "band_gap", "label_source", "provisional_gap", "provisional_std",
            "band_gap_mean", "band_gap_std", "gp_mean", "gp_std", "ucb", "in_window", "novel", "compound_valid"]
    out = table[[c for c in cols if c in table]]
    path = Path(path)
    atomic_write_text(path, out.to_csv(index=False))
    return path


# ---- import -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelFile:
    """A checked labels CSV: its rows and the name that messages and state.json quote."""

    name: str  # the path or the upload's name
    rows: pd.DataFrame  # line, formula, reduced, band_gap

    def __len__(self) -> int:
        return len(self.rows)


def read_labels(source, name: str | None = None) -> LabelFile:
    """A CSV of formula, band_gap (eV) -> its LabelFile (line, formula, reduced, band_gap);
    CampaignError names the first bad row (and how many more there are)."""
    if isinstance(source, (bytes, bytearray)):
        name, data = name or "the upload", io.BytesIO(bytes(source))
    else:
        path = Path(source)
        name, data = name or str(path), path
        if not path.is_file():
            raise CampaignError(f"the labels file {path} {'is a folder' if path.is_dir() else 'does not exist'}")
    try:
        df = pd.read_csv(data, keep_default_na=False, dtype=str, encoding="utf-8-sig")  # a spreadsheet's BOM
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise CampaignError(f"{name} is not a readable CSV ({exc.__class__.__name__})") from None
    cols = {str(c).strip().lower(): c for c in df.columns}
    if "formula" not in cols or "band_gap" not in cols:
        raise CampaignError(f"{name} needs columns formula and band_gap (eV), has {[str(c) for c in df.columns]}")
    if not len(df):
        raise CampaignError(f"{name} has a header but no rows")
    rows, problems, first = [], [], {}
    for i, (f, g) in enumerate(zip(df[cols["formula"]], df[cols["band_gap"]])):
        line, f, g = i + 2, f.strip(), g.strip()
        try:
            red = reduced_formula(f) if f else None
        except FormulaError as exc:
            problems.append(f"line {line}: {exc}")
            continue
        if red is None:
            problems.append(f"line {line}: the formula is empty")
            continue
        try:
            v = float(g)
        except ValueError:
            problems.append(f"line {line} ({f}): band_gap {g!r} is not a number (eV)" if g else
                            f"line {line} ({f}): band_gap is empty; leave out the formulas you have not computed")
            continue
        if not math.isfinite(v) or v < 0:
            problems.append(f"line {line} ({f}): band_gap {g} is not a finite number >= 0 (eV); a band gap is "
                            "never negative")
            continue
        if red in first:
            problems.append(f"lines {first[red]} and {line}: {f} is listed twice (as {red}); give one gap per formula")
            continue
        first[red] = line
        rows.append((line, f, red, v))
    if problems:
        more = f" ({len(problems) - 1} more rows have problems)" if len(problems) > 1 else ""
        raise CampaignError(f"{name}: {problems[0]}{more}; nothing was imported")
    return LabelFile(name, pd.DataFrame(rows, columns=["line", "formula", "reduced", "band_gap"]))


def _reduced(formula: str) -> str | None:
    try:
        return reduced_formula(formula)
    except FormulaError:
        return None


def plan_import(camp, labels: LabelFile, replace: bool = False) -> tuple[list[dict], dict]:
    """(state.json's new label list, a report) for `labels` (read_labels' result), matched by
    reduced formula to the campaign's proposals. CampaignError when any row cannot apply: a
    formula the campaign did not propose, one already imported with the same gap, or (without
    replace) with another gap. Nothing is written here."""
    name = labels.name
    if camp.config.labeller != "external":
        raise CampaignError("this campaign is labelled by the oracle; only a campaign started with the external "
                            "labeller (`campaign new --labeller external`) takes imported DFT labels")
    if not camp.rounds:
        raise CampaignError("this campaign has no rounds yet: there is nothing to label")
    targets: dict[str, list[tuple[int, str]]] = {}
    for r, df in enumerate(camp.rounds, 1):
        for f in df.loc[df["valid"].astype(bool), "formula"]:
            targets.setdefault(_reduced(f), []).append((r, f))
    seeds = {_reduced(f) for f in camp.seeds["formula"]}
    current = {(lab["round"], lab["formula"]): lab for lab in camp.state.get("labels", [])}
    new = dict(current)
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    file = Path(name).name
    problems, n_new, n_rep = [], 0, 0
    for row in labels.rows.itertuples(index=False):
        keys = targets.get(row.reduced)
        if not keys:
            why = "is a seed of this campaign, not a proposal" if row.reduced in seeds else \
                "was not proposed by this campaign"
            problems.append(f"line {row.line}: {row.formula} {why}")
            continue
        done = [k for k in keys if k in current]
        same = [k for k in done if abs(current[k]["band_gap"] - row.band_gap) <= SAME_GAP_EV]
        other = [k for k in done if k not in same]
        todo = [k for k in keys if k not in current]
        if other and not replace:
            old = current[other[0]]
            problems.append(f"line {row.line}: {row.formula} already has the DFT gap {old['band_gap']:g} eV (imported "
                            f"{old['imported'][:10]}); import with replace to change it to {row.band_gap:g} eV")
            continue
        if not todo and not other:
            old = current[same[0]]
            problems.append(f"line {row.line}: {row.formula} was already imported ({old['band_gap']:g} eV, "
                            f"{old['imported'][:10]}); importing the same labels again changes nothing")
            continue
        for k in todo + other:
            new[k] = {"round": k[0], "formula": k[1], "band_gap": float(row.band_gap), "imported": stamp, "file": file}
        n_new, n_rep = n_new + len(todo), n_rep + len(other)
    if problems:
        more = f" ({len(problems) - 1} more rows have problems)" if len(problems) > 1 else ""
        raise CampaignError(f"{name}: {problems[0]}{more}; nothing was imported")
    n_pending = sum(len(df.loc[df["valid"].astype(bool)]) for df in camp.rounds) - len(new)
    return list(new.values()), {"file": file, "rows": len(labels), "labelled": n_new, "replaced": n_rep,
                                "pending": int(n_pending)}


# ---- export of a round for DFT ---------------------------------------------------------------
README = """# Round {r} of an active-learning campaign: inputs for your own DFT

{n} proposed formulas, one folder each:

- `<formula>/<formula>.cif`: a predicted structure (the nearest Materials Project template with
  the formula's elements substituted; not relaxed: relax it in DFT before the band structure).
- `<formula>/dft/`: DFT input files for that structure (VASP MPRelaxSet files and a Quantum
  ESPRESSO pw.x input, k-point density {kd:g} per reciprocal atom), with their own README.
{dft_note}
`index.csv` lists each formula with the oracle's provisional gap and its sigma (eV), the
template's Materials Project id, and whether the formula already has a DFT label.

## Bringing the gaps back

Write a CSV with the columns `formula,band_gap` (eV, >= 0), one row per formula you computed:

    formula,band_gap
    {example},3.1

and import it: `wbg campaign import-labels CAMPAIGN_DIR --input gaps.csv`, or the "Import DFT
labels" box of the Active learning page. Rows you leave out stay pending; the GP trains on
the seeds and your DFT gaps (the oracle's provisional values only when you ask for them).
A file with any bad row (a formula this campaign did not propose, a negative or non-numeric
gap, a label already imported) is refused whole, and the campaign is left unchanged.
"""


def round_zip(camp, r: int | None = None, kpoint_density: float = 1000.0) -> tuple[bytes, str]:
    """(zip bytes, file name) with round r's valid proposals (default: the newest round): per
    formula a predicted structure's CIF and its DFT input folder, plus index.csv and a README."""
    from ..structures.dft import write_dft_inputs
    from ..structures.export import cif_string, safe_filename
    from ..structures.pipeline import predict_structures

    n = len(camp.rounds)
    if n == 0:
        raise CampaignError("this campaign has no rounds yet: step one before exporting it")
    r = n if r is None else int(r)
    if not 1 <= r <= n:
        raise CampaignError(f"there is no round {r}: this campaign has {n} round{'s' if n > 1 else ''} (1 to {n})")
    df = camp.rounds[r - 1]
    df = df[df["valid"].astype(bool)]
    if not len(df):
        raise CampaignError(f"round {r} proposed no valid formula: there is nothing to compute")
    external = camp.config.labeller == "external"
    prov = df["provisional_gap"] if external else df["band_gap"]
    sig = df["provisional_std"] if external else df["band_gap_std"]
    status = df["label_source"] if external else pd.Series("oracle", index=df.index)
    root = f"round-{r:04d}"
    used: set[str] = set()
    rows = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, tempfile.TemporaryDirectory() as tmp:
        for f, g, s, st in zip(df["formula"], prov, sig, status):
            stem = base = safe_filename(f, suffix="")
            k = 1
            while stem in used:  # formulas are distinct; their safe names need not be
                k += 1
                stem = f"{base}-{k}"
            used.add(stem)
            row = {"formula": f, "provisional_gap": g, "sigma": s, "template": "", "label": st, "cif": "",
                   "dft_folder": "", "note": ""}
            try:
                cand = predict_structures(f, top_k=1)[0]
            except (FormulaError, ValueError) as exc:  # NoTemplateError is a FormulaError
                row["note"] = f"no structure: {exc}"
                rows.append(row)
                continue
            prov_d = {**cand.provenance, "campaign_round": r, "oracle_provisional_gap": g, "oracle_sigma": s}
            row["template"] = cand.provenance.get("template_id", "")
            row["cif"] = f"{stem}/{stem}.cif"
            zf.writestr(f"{root}/{row['cif']}", cif_string(cand.structure, prov_d))
            folder = Path(tmp) / stem
            try:
                write_dft_inputs(cand.structure, folder, provenance=prov_d, kpoint_density=kpoint_density)
            except ValueError as exc:  # DFTInputError: overlapping atoms, no pseudopotential, ...
                row["note"] = f"no DFT inputs: {exc}"
                rows.append(row)
                continue
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    zf.write(p, f"{root}/{stem}/dft/{p.relative_to(folder).as_posix()}")
            row["dft_folder"] = f"{stem}/dft"
            rows.append(row)
        zf.writestr(f"{root}/index.csv", pd.DataFrame(rows).to_csv(index=False))
        missing = [x["formula"] for x in rows if not x["dft_folder"]]
        note = f"\nNo inputs for {', '.join(missing)}: index.csv's note column says why.\n" if missing else ""
        zf.writestr(f"{root}/README.md", README.format(r=r, n=len(rows), kd=kpoint_density, dft_note=note,
                                                        example=rows[0]["formula"]))
    return buf.getvalue(), f"{root}.zip"
