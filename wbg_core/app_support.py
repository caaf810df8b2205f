"""Pure-Python helpers the Streamlit pages share (no streamlit import here).

The pages lay out widgets; everything they compute, parse or format lives here or in the
rest of wbg_core: reading pasted or uploaded formulas, the oracle table with the Materials
Project value and EMD neighbours, decoding points of the latent map, model status for the
home page, the figures of the model cards, and which checkpoint sets the app may use
(the background training jobs are in wbg_core.jobs).
"""
from __future__ import annotations

import datetime as dt
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .composition import FormulaError, compound_valid, reduced_formula
from .jobs import (  # noqa: F401 - the job runner moved to wbg_core.jobs; these names stay importable here
    JobError, PublicModeError, TrainJob, job_running, job_status, offered, read_log, refuse_in_public,
    start_training, train_command,
)
from .models import MODEL_NAMES

MAX_FORMULAS = 2000  # rows one oracle request may hold


# ---------------------------------------------------------------- formula input

_SEPARATORS = r"[,;\t]"


def split_formula_text(text: str) -> list[str]:
    """Formulas from pasted text: one per line, or separated by commas, semicolons or tabs."""
    return read_formula_text(text).formulas


@dataclass
class FormulaInput:
    """Formulas read from pasted text or a CSV, and what was skipped on the way (said on the page)."""

    formulas: list[str]
    blank_lines: int = 0  # whitespace-only lines (inside the text; trailing ones do not count)
    empty_entries: int = 0  # empty fields between separators, or CSV rows with an empty formula cell
    notes: list[str] | None = None
    empty_word: tuple[str, str] = ("empty entry", "empty entries")

    def skipped_message(self) -> str | None:
        """One sentence on what was skipped ("2 blank lines skipped"), or None."""
        parts = []
        if self.blank_lines:
            parts.append(plural(self.blank_lines, "blank line"))
        if self.empty_entries:
            parts.append(plural(self.empty_entries, *self.empty_word))
        return " and ".join(parts) + " skipped" if parts else None


def read_formula_text(text: str) -> FormulaInput:
    """Formulas from pasted text (one per line, or separated by commas, semicolons or tabs),
    counting the blank lines and empty entries skipped so the page can say so."""
    lines = (text or "").rstrip().split("\n") if (text or "").strip() else []
    out, blank, empty = [], 0, 0
    for line in lines:
        if not line.strip():
            blank += 1
            continue
        fields = [f.strip() for f in re.split(_SEPARATORS, line)]
        if fields and not fields[-1]:  # a trailing separator ("NaCl,") is not an entry
            fields = fields[:-1]
        empty += sum(1 for f in fields if not f)
        out += [f for f in fields if f]
    return FormulaInput(out, blank, empty)


def _decode_csv(data: bytes) -> str:
    """Text of an uploaded CSV: UTF-8 (with or without BOM) or UTF-16 with a BOM; ValueError otherwise."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ValueError(f"it starts like UTF-16 text but is not ({exc.reason})") from exc
    if b"\x00" in data[:4096]:
        raise ValueError("it is a binary file, not a text CSV")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"it is not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start}); "
                         "save it as CSV UTF-8") from exc


def read_formula_csv(data: bytes) -> FormulaInput:
    """Formulas from an uploaded CSV: a 'formula' column, else the only column (comma, semicolon
    or tab separated). ValueError says why a file cannot be read; blank lines and rows with an
    empty formula are counted, not silently dropped; a header that is itself a formula (a file
    of bare formulas) is kept as the first formula, with a note."""
    text = _decode_csv(data)
    if not text.strip():
        raise ValueError("the file is empty")
    first = text.lstrip("\n").split("\n", 1)[0]
    sep = max((",", ";", "\t"), key=first.count) if any(s in first for s in ",;\t") else ","
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, keep_default_na=False, dtype=str, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        msg = str(exc).strip().replace("Error tokenizing data. C error: ", "")
        raise ValueError(f"it is not a readable CSV: {msg}") from exc
    cols = {str(c).strip().lower(): c for c in df.columns}
    notes: list[str] = []
    if "formula" in cols:
        col = cols["formula"]
    elif len(df.columns) == 1:
        col = df.columns[0]
    else:
        raise ValueError(f"it has columns {[str(c) for c in df.columns]}; it needs a 'formula' column")
    values = [str(s).strip() for s in df[col].tolist()]
    header = str(col).strip()
    if col is not cols.get("formula") and any(ch.isupper() for ch in header):
        try:
            reduced_formula(header)
            values.insert(0, header)
            notes.append(f"the first line ({header}) is a formula, not a column name: read as one")
        except FormulaError:
            pass
    whole_blank = df.apply(lambda r: all(not str(v).strip() for v in r), axis=1).tolist()
    if len(values) > len(whole_blank):
        whole_blank.insert(0, False)
    while values and not values[-1] and whole_blank and whole_blank[-1]:  # trailing blank lines
        values.pop()
        whole_blank.pop()
    blank = sum(1 for v, b in zip(values, whole_blank) if not v and b)
    empty = sum(1 for v, b in zip(values, whole_blank) if not v and not b)
    return FormulaInput([v for v in values if v], blank, empty, notes,
                        ("row without a formula", "rows without a formula"))


def read_formula_csv_bytes(data: bytes) -> list[str]:
    """Formulas from an uploaded CSV (read_formula_csv without the counts); ValueError says why."""
    return read_formula_csv(data).formulas


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 candidate', '2 candidates', '1,200 formulas' (many: an irregular plural)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


# ---------------------------------------------------------------- known data

class KnownData:
    """The bundled MP band gaps keyed by canonical reduced formula; EMD index built on first use."""

    def __init__(self, df: pd.DataFrame):
        from .data import bandgap_counts

        counts = bandgap_counts(df)
        t = df[["formula", "band_gap", "material_id", "source"]].copy()
        t.attrs = {}
        t["_row"] = np.arange(len(df))
        t = t.dropna(subset=["band_gap"]).drop_duplicates("formula").reset_index(drop=True)
        self._counts = counts[t["_row"].to_numpy()]
        self._encodable = df["encodable"].to_numpy()[t["_row"].to_numpy()]
        self.table = t.drop(columns="_row")
        self.index = {f: i for i, f in enumerate(self.table["formula"])}
        self._cdfs: np.ndarray | None = None

    def lookup(self, formula: str) -> tuple[float | None, str | None, str | None]:
        """(gap, mp-id, where the value comes from: data.provenance.label_source) or Nones."""
        from .data.provenance import label_source

        i = self.index.get(formula)
        if i is None:
            return None, None, None
        row = self.table.iloc[i]
        mid = row["material_id"]  # some bundled rows have no MP id
        mid = str(mid) if isinstance(mid, str) and mid else None
        return float(row["band_gap"]), mid, label_source(row["source"], mid)

    @property
    def cdfs(self) -> np.ndarray:
        """(N, 103) cumulative Pettifor vectors; rows off the scale are +inf (never nearest)."""
        if self._cdfs is None:
            from .composition import VOCAB
            from .structures.emd import MOD_PETTI, SCALE_LENGTH, cumulative

            onto = np.zeros((len(VOCAB), SCALE_LENGTH))
            for i, el in enumerate(VOCAB):
                if el in MOD_PETTI:
                    onto[i, MOD_PETTI[el]] = 1.0
            c = self._counts.astype(np.float64)
            tot = c.sum(axis=1, keepdims=True)
            vec = (c @ onto) / np.where(tot > 0, tot, 1)
            names = self.table["formula"].tolist()
            for i in np.flatnonzero(~self._encodable).tolist():  # counts above 8: parse those formulas
                vec[i] = 0
                try:
                    comp = _fast_comp(names[i])
                    total = float(sum(comp.values()))
                    for el, n in comp.items():
                        vec[i, MOD_PETTI[el]] += n / total
                except (FormulaError, KeyError):
                    vec[i] = np.nan
            cd = cumulative(vec)
            cd[~np.isfinite(cd).all(axis=1)] = np.inf
            self._cdfs = cd
        return self._cdfs

    def nearest(self, formula: str, k: int = 5) -> pd.DataFrame:
        """k nearest known formulas by Element Mover's Distance (the formula itself excluded)."""
        from .structures.emd import emd_to_many

        d = emd_to_many(formula, self.cdfs)
        own = self.index.get(reduced_formula(formula))
        if own is not None:
            d[own] = np.inf
        order = np.argsort(d, kind="stable")[:k]
        from .data.provenance import label_source

        out = self.table.iloc[order][["formula", "band_gap", "material_id"]].copy()
        out.insert(1, "emd", np.round(d[order], 4))
        out["mp_label_source"] = [label_source(src, mid) for src, mid in
                                  zip(self.table["source"].iloc[order], out["material_id"])]
        return out.reset_index(drop=True)


_SIMPLE = re.compile(r"([A-Z][a-z]?)(\d*(?:\.\d+)?)")


def _fast_comp(formula: str) -> dict[str, float]:
    """Composition of a canonical formula (element symbols and numbers only); parser fallback."""
    from .composition import parse_formula

    parts = _SIMPLE.findall(formula)
    if "".join(a + b for a, b in parts) != formula:
        return parse_formula(formula)
    comp: dict[str, float] = {}
    for el, n in parts:
        comp[el] = comp.get(el, 0.0) + (float(n) if n else 1.0)
    return comp


def build_known_data(df: pd.DataFrame | None = None) -> KnownData:
    from .data import load_bandgaps

    return KnownData(load_bandgaps() if df is None else df)


def oracle_report(oracle, formulas: list[str], known: KnownData | None = None) -> pd.DataFrame:
    """One row per input: formula (reduced), predicted gap and std, MP value if in the data, error.

    Invalid rows keep their input and get the reason in `error`; valid rows are answered.
    """
    if len(formulas) > MAX_FORMULAS:
        raise ValueError(f"{len(formulas)} formulas: at most {MAX_FORMULAS} per request")
    reduced: list[str | None] = []
    errors: list[str | None] = []
    for f in formulas:
        try:
            reduced.append(reduced_formula(f))
            errors.append(None)
        except FormulaError as exc:
            reduced.append(None)
            errors.append(str(exc))
    ok = [r for r in reduced if r is not None]
    pred = oracle.predict(ok) if ok else pd.DataFrame(columns=["formula", "band_gap_mean", "band_gap_std", "error"])
    rows = []
    j = 0
    for f, r, e in zip(formulas, reduced, errors):
        row = {"input": f, "formula": r, "band_gap_mean": np.nan, "band_gap_std": np.nan,
               "p_nonmetal": np.nan, "in_data": False, "mp_band_gap": np.nan, "mp_id": None,
               "mp_label_source": None, "error": e}
        if r is not None:
            p = pred.iloc[j]
            j += 1
            if isinstance(p["error"], str) and p["error"]:
                row["error"] = p["error"]
            else:
                row["band_gap_mean"] = round(float(p["band_gap_mean"]), 3)
                row["band_gap_std"] = round(float(p["band_gap_std"]), 3)
                if "p_nonmetal" in p and p["p_nonmetal"] == p["p_nonmetal"]:
                    row["p_nonmetal"] = round(float(p["p_nonmetal"]), 3)
            if known is not None:
                gap, mid, where = known.lookup(r)
                if gap is not None:
                    row.update(in_data=True, mp_band_gap=gap, mp_id=mid, mp_label_source=where)
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- latent map

def gap_bins(gaps, n_bins: int = 24, vmax: float | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Indices of the points in each of n_bins equal band-gap bins on [0, vmax] (values above
    vmax go to the last bin, below 0 or NaN to the first) and the bin edges.

    The explorer draws one single-coloured WebGL trace per bin instead of one trace with a
    colour per point: the browser then skips converting ~60k colours on every page view."""
    g = np.nan_to_num(np.asarray(gaps, np.float64), nan=0.0)
    top = float(vmax) if vmax is not None else float(np.percentile(g, 99.5)) if len(g) else 1.0
    top = top if top > 0 else 1.0
    b = np.clip(np.floor(g / top * n_bins).astype(np.int64), 0, n_bins - 1)
    order = np.argsort(b, kind="stable")
    counts = np.bincount(b, minlength=n_bins)
    return list(np.split(order, np.cumsum(counts)[:-1])), np.linspace(0.0, top, n_bins + 1)


# ---------------------------------------------------------------- status of data and models

def data_status(data_dir: Path | None = None) -> list[dict]:
    from .settings import get_settings

    root = Path(data_dir or get_settings().data_dir)
    try:
        reg = json.loads((root / "registry.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [{"file": "registry.json", "present": False, "error": str(exc)}]
    out = []
    for name, info in reg.get("files", {}).items():
        p = root / name
        out.append({"file": name, "present": p.exists(), "rows": info.get("rows"),
                    "MB": round(info.get("bytes", 0) / 1e6, 1), "licence": info.get("licence"),
                    "modified": _mtime(p)})
    return out


def _mtime(p: Path) -> str | None:
    try:
        return dt.datetime.fromtimestamp(p.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d")
    except OSError:
        return None


def headline_metrics(name: str, card: dict) -> dict[str, str]:
    """A few numbers per model card for the home page and the models page."""
    m = card.get("metrics") or {}
    out: dict[str, str] = {}
    if name == "autoencoder":
        for key, label in (("reconstruction_rate_strict", "test reconstruction"),
                           ("reconstruction_rate_strict_amortised", "encoder network alone"),
                           ("random_box_valid_strict", "random-point valid decodes")):
            if key in m:
                out[label] = f"{100 * m[key]:.1f}%"
    elif name == "oracle":
        t = m.get("test_full") or {}
        if "mae" in t:
            out["test MAE"] = f"{t['mae']:.3f} eV"
        if "r2" in t:
            out["test R²"] = f"{t['r2']:.3f}"
    elif name == "gan":
        for key, val in m.items():
            if isinstance(val, float) and any(s in key for s in ("valid", "novel", "unique")):
                out[key.replace("_", " ")] = f"{100 * val:.1f}%" if val <= 1 else f"{val:.3g}"
            if len(out) >= 3:
                break
    return out


def read_card(directory: Path) -> dict:
    """A model's card.json, or {"error": ...} naming it by set and model only (the app shows it)."""
    path = Path(directory) / "card.json"
    shown = f"{path.parent.parent.name}/{path.parent.name}/card.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {"error": f"{shown} is missing"}
    except OSError as exc:
        return {"error": f"{shown} is unreadable: {exc.strerror}"}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {"error": f"{shown} is unreadable: {exc}"}


def model_status(dirs: dict[str, Path] | Path | None = None) -> list[dict]:
    """Per model: ok, error, created date, epochs, headline metrics, training command.

    dirs: one models directory (holding autoencoder/, oracle/, gan/) or {model: its directory}.
    """
    from .settings import get_settings

    if not isinstance(dirs, dict):
        root = Path(dirs or get_settings().models_dir)
        dirs = {m: root / m for m in MODEL_NAMES}
    cards = {m: read_card(dirs[m]) for m in MODEL_NAMES}
    out = []
    for name in MODEL_NAMES:
        card = cards[name]
        out.append({"model": name, "ok": "error" not in card, "error": card.get("error"),
                    "created": (card.get("created") or "")[:10] or None,
                    "device": card.get("device"), "epochs": card.get("epochs"),
                    "metrics": headline_metrics(name, card) if "error" not in card else {},
                    "command": card.get("command")})
    return out


# ---------------------------------------------------------------- model-card figures

def oracle_test_predictions(oracle, limit: int | None = 3000, seed: int | None = None,
                            data: pd.DataFrame | None = None, sample_seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """(metrics, predictions) of the oracle on a *random* sample of `limit` test formulas (None: all),
    by the same function as the card and the benchmark; metrics["sample"] says n and of how many."""
    from .data import load_bandgaps
    from .models.oracle_eval import evaluate_model, oracle_predictor
    from .settings import get_settings

    return evaluate_model(oracle_predictor(oracle), load_bandgaps() if data is None else data,
                          split_seed=get_settings().split_seed if seed is None else seed, n=limit,
                          sample_seed=sample_seed)


def calibration_curve(y: np.ndarray, mean: np.ndarray, std: np.ndarray, n: int = 19) -> pd.DataFrame:
    """Expected vs observed coverage of central Gaussian intervals (a calibrated model sits on y = x)."""
    from scipy.stats import norm

    ok = np.isfinite(mean) & np.isfinite(std) & (std > 0)
    z = np.abs(y[ok] - mean[ok]) / std[ok]
    expected = np.linspace(0.05, 0.95, n)
    observed = [(z <= norm.ppf(0.5 + p / 2)).mean() if ok.any() else np.nan for p in expected]
    return pd.DataFrame({"expected": expected, "observed": observed})


def element_frequencies(formulas) -> pd.Series:
    """Share of formulas containing each element (index: element symbol)."""
    from .composition import parse_formula

    counts: dict[str, int] = {}
    n = 0
    for f in formulas:
        if not f:
            continue
        try:
            comp = parse_formula(f)
        except FormulaError:
            continue
        n += 1
        for el in comp:
            counts[el] = counts.get(el, 0) + 1
    s = pd.Series(counts, dtype=float) / max(n, 1)
    return s.sort_values(ascending=False)


def generator_vs_data(gan, n: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Element frequency in generated formulas vs in the data (element, data, generated)."""
    from .data import load_bandgaps

    df = load_bandgaps()
    data = element_frequencies(df.loc[df["encodable"], "formula"].to_numpy())
    s = gan.sample(n, seed=seed)
    gen = element_frequencies(s.loc[s["valid"], "formula"].to_numpy())
    out = pd.DataFrame({"data": data, "generated": gen}).fillna(0.0)
    out.index.name = "element"
    return out.sort_values("data", ascending=False).reset_index()


# ---------------------------------------------------------------- checkpoint sets

def checkpoint_sets(shipped: Path, runs_dir: Path) -> dict[str, Path]:
    """Label -> models directory every visitor may switch to: the shipped set first, then the
    app-trained sets their starter confirmed (newest first; never a running, failed or
    cancelled job's folder). Public mode offers the shipped set only."""
    from .settings import get_settings

    out = {"shipped": Path(shipped)}
    if get_settings().public:
        return out
    if Path(runs_dir).exists():
        for d in sorted(Path(runs_dir).iterdir(), reverse=True):
            if d.is_dir() and offered(d):
                out[d.name] = d
    return out


def choose_set(label: str, shipped: Path, runs_dir: Path) -> Path:
    """The directory of a set the whole app may switch to; PublicModeError in public mode,
    JobError for a label that is not offered (a crafted one, or a job not confirmed)."""
    refuse_in_public("switching checkpoints")
    sets = checkpoint_sets(shipped, runs_dir)
    if label not in sets:
        raise JobError(f"{label!r} is not a checkpoint set this server offers")
    return sets[label]


def complete_set(directory: Path, fallback: Path) -> dict[str, Path]:
    """Directory of each model: from `directory` when it holds that model, else from `fallback`."""
    return {m: (Path(directory) / m if (Path(directory) / m / "card.json").exists() else Path(fallback) / m)
            for m in MODEL_NAMES}


# ---------------------------------------------------------------- band-gap window screening

def screen_window(gan, model, *, min_gap: float | None, max_gap: float | None, pool: int = 20_000, seed: int = 0,
                  p_threshold: float = 0.5, max_atoms: int | None = 7, max_elements: int | None = 3,
                  require: tuple[str, ...] = (), exclude: tuple[str, ...] = (), novel_only: bool = False,
                  valid_only: bool = True, allow_elements_and_alloys: bool = False,
                  progress=None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(candidates, whole labelled pool, funnel) for a window, sampling the given generator.

    The engine's screen() ranks; here it runs with threshold 0 so the whole labelled pool is
    kept for the histogram, and the threshold and the compound rule are applied afterwards.
    """
    from .engine.screening import ScreenConfig, ScreenError, p_in_window, reading_search, screen

    cb = progress or (lambda f, m: None)
    for el in (*require, *exclude):
        from .composition import VOCAB

        if el not in VOCAB:
            raise ScreenError(f"{el!r} is not an element of the 87-element vocabulary")
    if set(require) & set(exclude):
        raise ScreenError(f"{sorted(set(require) & set(exclude))} both required and excluded")
    if not 0 <= p_threshold <= 1:
        raise ScreenError("the probability threshold must be between 0 and 1")
    kw = dict(pool=pool, seed=seed, max_atoms=max_atoms, max_elements=max_elements, require_elements=tuple(require),
              exclude_elements=tuple(exclude), novel_only=novel_only, valid_only=False,
              allow_elements_and_alloys=allow_elements_and_alloys)
    target = ScreenConfig(min_gap=min_gap, max_gap=max_gap, p_threshold=max(p_threshold, 1e-12), **kw).validate()
    # label the whole pool (window [0, inf), every gap passes) so its histogram can be drawn
    cfg = ScreenConfig(min_gap=0.0, max_gap=None, p_threshold=1e-300, **kw).validate()
    cb(0.0, f"sampling {pool:,} compositions from the generator")
    counts, valid = gan.sample_counts(pool, seed=seed, search=reading_search(cfg))
    rows = counts[valid]  # screen() reduces them (S2O4 is SO2, known to MP)
    cb(0.3, f"{int(valid.sum()):,} decoded; screening")
    allp = screen(cfg, progress_callback=lambda f, m: cb(0.3 + 0.7 * f, m), model=model, pool_counts=rows)
    funnel = dict(allp.attrs.get("funnel", {}))
    funnel.pop("in_window", None)
    funnel.pop("passed", None)
    funnel["generated"] = pool
    funnel["decoded_valid"] = int(valid.sum())
    allp = allp.copy()
    allp.attrs = {}
    allp["p_in_window"] = p_in_window(allp["band_gap_mean"].to_numpy(), allp["band_gap_std"].to_numpy(),
                                      target.window).round(4)
    cand = allp[allp["p_in_window"] >= p_threshold]
    funnel["in_window"] = len(cand)
    if valid_only:
        cand = cand[cand["compound_valid"]]
    funnel["passed"] = len(cand)
    a, b = target.window
    if np.isfinite(b):
        centre = (a + b) / 2 if np.isfinite(a) else b / 2
        cand = cand.assign(_d=(cand["band_gap_mean"] - centre).abs()).sort_values(
            ["p_in_window", "_d"], ascending=[False, True]).drop(columns="_d")
    else:
        cand = cand.sort_values(["p_in_window", "band_gap_mean"], ascending=[False, False])
    pool_df = allp[["formula", "band_gap_mean", "band_gap_std"]].reset_index(drop=True)
    return cand.reset_index(drop=True), pool_df, funnel


def forest_on(formulas, gaps, seed: int = 0):
    """A random forest screening model fitted on labelled formulas (the paper's RF route)."""
    from .models.forest import ForestConfig, ForestRegressor

    if len(formulas) < 10:
        raise ValueError(f"{len(formulas)} labelled formulas: a screening forest needs at least 10")
    return ForestRegressor(ForestConfig(seed=seed, n_jobs=2)).fit(list(formulas), np.asarray(gaps, np.float64))


# ---------------------------------------------------------------- structures page

_STABILITY_NOTES = ("not relaxed", "no formation energy", "relaxation stopped", "no CHGNet energy")


def relaxed_provenance(provenance: dict, structure, stability) -> dict:
    """The provenance of a template candidate after a CHGNet relaxation (wbg_core.structures.stability
    .assess): its energies, hull distance, the compound rule's verdict, the step count and
    convergence, the relaxed cell's space group; the template's notes kept, the old energy notes
    replaced by the relaxation's."""
    stab = stability.to_dict()
    new = {**provenance, **{k: stab[k] for k in ("energy_per_atom", "formation_energy_per_atom", "e_above_hull",
                                                 "decomposition", "passes_paper_rule", "charge_neutral",
                                                 "compound_valid") if k in stab}}
    new.update(relaxed=True, relax_steps=stability.relax_steps, relax_converged=stability.relax_converged,
               relax_seconds=stability.relax_seconds, n_sites=len(structure))
    try:
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        sga = SpacegroupAnalyzer(structure, symprec=0.1)
        new.update(spacegroup=sga.get_space_group_number(), spacegroup_symbol=sga.get_space_group_symbol())
    except Exception:  # spglib finds nothing: the template's symmetry no longer holds
        new.update(spacegroup=None, spacegroup_symbol=None)
    old = [w for w in provenance.get("warnings", [])
           if not w.startswith(_STABILITY_NOTES) and "is not charge-balanced" not in w]
    new["warnings"] = list(dict.fromkeys(old + list(stability.warnings)))
    return new


def relax_summary(provenance: dict) -> str:
    """'relaxed with CHGNet: 57 steps, converged, 12.3 s' or 'template geometry, not relaxed'."""
    if not provenance.get("relaxed"):
        return "template geometry, not relaxed"
    steps, conv, secs = (provenance.get(k) for k in ("relax_steps", "relax_converged", "relax_seconds"))
    parts = [plural(int(steps), "step") if steps is not None else None,
             None if conv is None else ("converged" if conv else "not converged"),
             f"{secs:.1f} s" if secs is not None else None]
    return "relaxed with CHGNet: " + ", ".join(p for p in parts if p)
