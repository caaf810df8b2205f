"""A campaign's files on disk: layout, checks against the schema, the lock, atomic writes.

Layout (JSON, CSV and .npy only; no pickles): config.json, seeds.csv and seeds_z.npy (the
seeds and their latents), rounds/NNNN/ (proposals.csv, z.npy, gp.json), state.json.
state.json is the commit point: a round is written to a hidden directory renamed into place,
then state.json is replaced, so a kill loses at most the round in flight (an external
campaign's imported DFT labels live in state.json too: an import is one atomic write). The one
round directory past `rounds_done` that such a kill can leave is debris the next round replaces;
anything else that disagrees with state.json is damage, refused on load before anything is
written. One process at a time steps a campaign: `campaign_lock` holds an flock on
<dir>/.lock for the whole step or run.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from pydantic import TypeAdapter, ValidationError

from ..files import atomic_write_text
from ..validation_text import describe_errors
from .campaign_schema import CampaignBusy, CampaignConfig, CampaignDamaged, CampaignError, StateFile

LOCK_NAME = ".lock"
TOP_FILES = ("config.json", "seeds.csv", "seeds_z.npy", "state.json")
APP_FILES = ("app.json", "export.csv")  # the app's label and export, kept beside the campaign
ROUND_FILES = ("proposals.csv", "z.npy", "gp.json")
ROUND_COLUMNS = ("formula", "valid", "band_gap", "band_gap_mean", "band_gap_std", "gp_mean", "gp_std", "ucb",
                 "in_window", "novel")
_ROUND_BOOL = ("valid", "in_window", "novel")
EXTERNAL_COLUMNS = ("provisional_gap", "provisional_std")  # an external campaign's rounds: the oracle's guess
VIEW_COLUMNS = ("label_source",)  # derived from state.json's labels on load, never written to a round
_ROUND_DIR = re.compile(r"\d{4}")
_NAMES = "|".join(re.escape(n) for n in TOP_FILES + APP_FILES)
# what a campaign directory may hold: (pattern, is a directory), the hidden ones only while writing
_SHIPPED = [(re.compile(rf"(?:{_NAMES})"), False), (re.compile(r"rounds"), True), (re.compile(r"rounds/\d{4}"), True),
            (re.compile(r"rounds/\d{4}/(?:proposals\.csv|z\.npy|gp\.json)"), False)]
_INTERNAL = [(re.compile(re.escape(LOCK_NAME)), False), (re.compile(rf"\.(?:{_NAMES})\.[^/]+"), False),
             (re.compile(r"rounds/\.\d{4}\.[^/]+"), True),
             (re.compile(r"rounds/\.\d{4}\.[^/]+/(?:proposals\.csv|z\.npy|gp\.json)"), False)]


_CONFIG = TypeAdapter(CampaignConfig)


# ---- atomic writes --------------------------------------------------------------------------
def atomic_npy(path: Path, arr: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npy")
    with os.fdopen(fd, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
    os.replace(tmp, path)


def state_text(state: dict) -> str:
    return json.dumps(state, indent=2, default=float)


def write_state(directory: Path, state: dict) -> str:
    """Replace state.json (the commit point); returns the text written."""
    text = state_text(state)
    atomic_write_text(Path(directory) / "state.json", text)
    return text


def write_round(directory: Path, r: int, df: pd.DataFrame, z: np.ndarray, gp: dict) -> None:
    """rounds/NNNN/ appears whole or not at all; state.json is written after it."""
    rounds_dir = Path(directory) / "rounds"
    rounds_dir.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=rounds_dir, prefix=f".{r:04d}."))
    try:
        df.drop(columns=list(VIEW_COLUMNS), errors="ignore").to_csv(tmp / "proposals.csv", index=False)
        np.save(tmp / "z.npy", z, allow_pickle=False)
        (tmp / "gp.json").write_text(json.dumps(gp, indent=2))
        final = rounds_dir / f"{r:04d}"
        if final.exists():  # debris of a round killed after its rename, before state.json
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_new(directory: Path, config: CampaignConfig, seeds: pd.DataFrame, seeds_z: np.ndarray, state: dict) -> str:
    d = Path(directory)
    atomic_write_text(d / "config.json", json.dumps(asdict(config), indent=2))
    atomic_write_text(d / "seeds.csv", seeds.to_csv(index=False))
    atomic_npy(d / "seeds_z.npy", seeds_z)
    return write_state(d, state)


# ---- the lock -------------------------------------------------------------------------------
@contextmanager
def campaign_lock(directory: Path) -> Iterator[None]:
    """Exclusive, non-blocking: CampaignBusy at once when another process or session holds it."""
    d = Path(directory)
    try:
        fd = os.open(d / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CampaignError(f"cannot lock campaign {d}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise CampaignError(f"cannot lock campaign {d}: {exc.strerror}") from exc
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            raise CampaignBusy(d, holder or "unknown") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


# ---- what a campaign directory holds --------------------------------------------------------
def name_kind(rel: str, is_dir: bool) -> str | None:
    """'shipped' (a campaign's own file), 'internal' (lock, half-written temp) or None (foreign)."""
    for kind, pats in (("shipped", _SHIPPED), ("internal", _INTERNAL)):
        if any(p.fullmatch(rel) and d == is_dir for p, d in pats):
            return kind
    return None


def foreign_entries(directory: Path) -> list[str]:
    """Paths under `directory` a campaign never writes (symlinks included), relative, sorted."""
    d = Path(directory)
    out = []
    for root, dirs, files in os.walk(d):
        for name in sorted(dirs) + sorted(files):
            p = Path(root) / name
            rel = p.relative_to(d).as_posix()
            if p.is_symlink() or name_kind(rel, p.is_dir()) is None:
                out.append(rel + ("/" if p.is_dir() and not p.is_symlink() else ""))
        dirs[:] = [n for n in dirs if not (Path(root) / n).is_symlink() and name_kind(
            (Path(root) / n).relative_to(d).as_posix(), True)]
    return sorted(out)


def check_replaceable(directory: Path, overwrite: bool) -> bool:
    """Whether `directory` holds something to clear; CampaignError unless that is a campaign and overwrite."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise CampaignError(f"{d} is a file, not a directory")
    if not d.exists() or not any(p.name != LOCK_NAME for p in d.iterdir()):
        return False
    if not overwrite:
        raise CampaignError(f"{d} already holds a campaign or other files; pick a new directory")
    if not (d / "state.json").is_file():
        raise CampaignError(f"{d} is not a campaign (no state.json); overwrite replaces only a campaign: "
                            "empty the directory or pick another one")
    extra = foreign_entries(d)
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise CampaignError(f"{d} holds files a campaign never writes ({shown}); overwrite replaces only a "
                            "campaign: move them away or pick another directory")
    return True


def clear_campaign(directory: Path) -> None:
    """Remove a campaign's files (checked by check_replaceable), keeping the lock file that is held."""
    for p in Path(directory).iterdir():
        if p.name == LOCK_NAME:
            continue
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


# ---- reading, validated ---------------------------------------------------------------------
@dataclass
class Snapshot:
    config: CampaignConfig
    seeds: pd.DataFrame
    seeds_z: np.ndarray
    rounds: list[pd.DataFrame]
    rounds_z: list[np.ndarray]
    state: dict
    state_text: str


def read_state_text(directory: Path) -> str | None:
    try:
        return (Path(directory) / "state.json").read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignDamaged(directory, f"state.json cannot be read ({exc.__class__.__name__})") from exc


def read_campaign(directory: Path, attempts: int = 3) -> Snapshot:
    """Every file checked against the schema and against state.json; a runner writing meanwhile
    (state.json changed during the read) makes it read again rather than report damage."""
    d = Path(directory)
    for i in range(attempts):
        text = read_state_text(d)
        if text is None:
            raise CampaignError(f"{d} is not a campaign directory (no state.json); create one with 'campaign new'")
        try:
            return _read_all(d, text)
        except CampaignDamaged:
            if i + 1 < attempts and read_state_text(d) != text:
                continue
            raise
    raise AssertionError("unreachable")


def _read_all(d: Path, text: str) -> Snapshot:
    try:
        model = StateFile.model_validate_json(text)
    except ValidationError as exc:
        raise CampaignDamaged(d, describe_errors(exc, "state.json")) from None
    state = json.loads(text)
    n = model.rounds_done
    if len(model.history) != n or [h.round for h in model.history] != list(range(1, n + 1)):
        raise CampaignDamaged(d, f"state.json: rounds_done is {n} but its history lists rounds "
                                 f"{[h.round for h in model.history][:10]}")
    config = _read_config(d)
    seeds, seeds_z = _read_seeds(d)
    on_disk = sorted(int(p.name) for p in (d / "rounds").iterdir() if p.is_dir() and _ROUND_DIR.fullmatch(p.name)) \
        if (d / "rounds").is_dir() else []
    missing = sorted(set(range(1, n + 1)) - set(on_disk))
    if missing:
        raise CampaignDamaged(d, f"state.json says {n} rounds are done but rounds/{missing[0]:04d} is missing"
                                 + (f" ({len(missing)} rounds missing)" if len(missing) > 1 else ""))
    beyond = [r for r in on_disk if r > n]
    if beyond and beyond != [n + 1]:  # one is the debris of a kill before the commit; more is damage
        raise CampaignDamaged(d, f"state.json says {n} rounds are done but rounds/ holds rounds up to "
                                 f"{max(beyond):04d}; state.json is older than the rounds on disk")
    rounds, rounds_z = [], []
    for r, h in zip(range(1, n + 1), model.history):
        df, z = _read_round(d, r, seeds_z.shape[1], config.labeller == "external")
        if len(df) != h.proposals:
            raise CampaignDamaged(d, f"rounds/{r:04d}/proposals.csv has {len(df)} rows but state.json's history "
                                     f"records {h.proposals} proposals")
        rounds.append(df)
        rounds_z.append(z)
    _check_labels(d, model, config, rounds)
    return Snapshot(config, seeds, seeds_z, rounds, rounds_z, state, text)


def _read_json(d: Path, name: str) -> str:
    try:
        return (d / name).read_text()
    except FileNotFoundError:
        raise CampaignDamaged(d, f"{name} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignDamaged(d, f"{name} cannot be read ({exc.__class__.__name__})") from None


def _read_config(d: Path) -> CampaignConfig:
    try:
        raw = json.loads(_read_json(d, "config.json"))
    except json.JSONDecodeError as exc:
        raise CampaignDamaged(d, f"config.json is not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(raw, dict):
        raise CampaignDamaged(d, "config.json is not a JSON object")
    raw.setdefault("proposal_rule", "any")  # saved before the rule: keep its behaviour
    try:
        return _CONFIG.validate_json(json.dumps(raw), strict=True).validate()
    except ValidationError as exc:
        raise CampaignDamaged(d, describe_errors(exc, "config.json")) from None
    except CampaignError as exc:
        raise CampaignDamaged(d, f"config.json: {exc}") from None


def _read_npy(d: Path, rel: str, rows: int, dim: int | None) -> np.ndarray:
    try:
        z = np.load(d / rel, allow_pickle=False)
    except FileNotFoundError:
        raise CampaignDamaged(d, f"{rel} is missing") from None
    except (OSError, ValueError, EOFError) as exc:
        raise CampaignDamaged(d, f"{rel} is not a readable .npy array ({exc.__class__.__name__})") from None
    if z.ndim != 2 or z.shape[0] != rows or (dim is not None and z.shape[1] != dim) or z.dtype.kind != "f":
        want = f"({rows}, {dim if dim is not None else 'latent size'}) floats"
        raise CampaignDamaged(d, f"{rel} holds a {z.dtype} array of shape {z.shape}, not {want}")
    if not np.isfinite(z).all():
        raise CampaignDamaged(d, f"{rel} holds non-finite latents")
    return z


def _read_csv(d: Path, rel: str, columns: tuple[str, ...], **kw) -> pd.DataFrame:
    try:
        df = pd.read_csv(d / rel, keep_default_na=False, dtype={"formula": str}, **kw)
    except FileNotFoundError:
        raise CampaignDamaged(d, f"{rel} is missing") from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise CampaignDamaged(d, f"{rel} is not a readable CSV ({exc.__class__.__name__})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise CampaignDamaged(d, f"{rel} has no column {', '.join(missing)}")
    return df


def _numeric(d: Path, rel: str, df: pd.DataFrame, col: str, nan_ok: bool = False) -> None:
    v = df[col]
    if not pd.api.types.is_numeric_dtype(v) or pd.api.types.is_bool_dtype(v):
        raise CampaignDamaged(d, f"{rel}: column {col} is not numeric")
    bad = ~np.isfinite(v.to_numpy(np.float64))
    if nan_ok:
        bad &= ~v.isna().to_numpy()
    if bad.any():
        raise CampaignDamaged(d, f"{rel}: column {col} has a non-finite value in row {int(np.argmax(bad)) + 1}")


def _read_seeds(d: Path) -> tuple[pd.DataFrame, np.ndarray]:
    seeds = _read_csv(d, "seeds.csv", ("formula", "band_gap"))
    _numeric(d, "seeds.csv", seeds, "band_gap")
    if len(seeds) < 2 or (seeds["formula"] == "").any() or (seeds["band_gap"] < 0).any():
        raise CampaignDamaged(d, "seeds.csv needs at least 2 rows, each a formula with a gap >= 0")
    return seeds, _read_npy(d, "seeds_z.npy", len(seeds), None)


def _read_round(d: Path, r: int, dim: int, external: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """external: band_gap is empty (pending) for valid rows until an import, which state.json holds."""
    rel = f"rounds/{r:04d}/proposals.csv"
    empty = ("band_gap_mean", "band_gap_std") + (("band_gap",) + EXTERNAL_COLUMNS if external else ())
    nan_cols = ("band_gap_mean", "band_gap_std", "gp_mean", "gp_std", "ucb") + (EXTERNAL_COLUMNS if external else ())
    df = _read_csv(d, rel, ROUND_COLUMNS + (EXTERNAL_COLUMNS if external else ()),
                   na_values={c: [""] for c in empty})
    for c in _ROUND_BOOL:
        if not pd.api.types.is_bool_dtype(df[c]):
            raise CampaignDamaged(d, f"{rel}: column {c} is not True/False")
    _numeric(d, rel, df, "band_gap", nan_ok=external)
    for c in nan_cols:
        _numeric(d, rel, df, c, nan_ok=True)
    if (df.loc[df["valid"], "formula"] == "").any() or (df["band_gap"] < 0).any():
        raise CampaignDamaged(d, f"{rel}: a valid row has no formula or a negative band_gap")
    if external and (df["band_gap"].isna() & ~df["valid"]).any():
        raise CampaignDamaged(d, f"{rel}: an invalid decode has no band_gap (its 0 eV penalty)")
    return df, _read_npy(d, f"rounds/{r:04d}/z.npy", len(df), dim)


def _check_labels(d: Path, model: StateFile, config: CampaignConfig, rounds: list[pd.DataFrame]) -> None:
    """Every imported label names a valid proposal of a committed round, once."""
    if model.labels and config.labeller != "external":
        raise CampaignDamaged(d, "state.json holds imported labels but config.json's labeller is "
                                 f"{config.labeller!r}, not 'external'")
    seen = set()
    for i, lab in enumerate(model.labels, 1):
        where = f"state.json: labels.{i - 1} ({lab.formula}, round {lab.round})"
        if lab.round > len(rounds):
            raise CampaignDamaged(d, f"{where}: the campaign has {len(rounds)} rounds")
        df = rounds[lab.round - 1]
        if not (df["valid"] & (df["formula"] == lab.formula)).any():
            raise CampaignDamaged(d, f"{where}: round {lab.round} proposed no such formula")
        if (lab.round, lab.formula) in seen:
            raise CampaignDamaged(d, f"{where}: imported twice")
        seen.add((lab.round, lab.formula))
