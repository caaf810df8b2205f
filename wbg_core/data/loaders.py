"""Typed access to the bundled Materials Project data."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..composition.encoding import encode_counts
from ..composition.parse import reduced_formula
from .registry import DataError, data_path

BANDGAP_FILE = "mp_bandgap.csv"
STRUCTURES_FILE = "mp_structures.npz"
STRUCTURES_META_FILE = "mp_structures_meta.parquet"
EMBEDDING_FILE = "matscholar-embedding.json"
_BANDGAP_COLUMNS = ["formula", "band_gap", "formation_energy_per_atom", "material_id", "source"]


@lru_cache(maxsize=2)
def load_bandgaps(data_dir: Path | None = None) -> pd.DataFrame:
    """The 89,885 MP compositions with their band gaps.

    Columns: formula (canonical reduced formula, as decode() writes it), mp_formula (as MP
    writes it, e.g. with brackets), band_gap, formation_energy_per_atom, material_id,
    source, encodable (fits the 87 x 8 matrix), encode_error (why not). Read with
    keep_default_na=False so sodium nitride, `NaN`, stays a formula.
    """
    path = data_path(BANDGAP_FILE, data_dir)
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values={"band_gap": [""],
                         "formation_energy_per_atom": [""], "material_id": [""]},
                         dtype={"formula": str, "material_id": str, "source": str})
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path} could not be read as CSV: {exc}") from exc
    if list(df.columns) != _BANDGAP_COLUMNS:
        raise DataError(f"{path} has columns {list(df.columns)}, expected {_BANDGAP_COLUMNS}")
    df = df.rename(columns={"formula": "mp_formula"})
    formula, ok, errors, counts = parsed_formulas(path, df["mp_formula"].tolist())
    df.insert(0, "formula", formula)
    df["encodable"] = ok
    df["encode_error"] = pd.array(errors, dtype="string")
    df.attrs["counts"] = counts
    return df


def parsed_formulas(path: Path, mp_formulas: list[str], cache_dir: Path | str | None = None):
    """(canonical formulas, encodable, encode errors, counts (N, 87)) of a data file's formulas.

    Why a cache: parsing and encoding the 89,885 formulas takes ~5 s, paid by every process
    (each CLI command, the app's first page). The result is stored under the cache directory,
    keyed by the file's bytes and the parsing code's source, so an edit to either rebuilds
    it. The cache is derived data and never trusted: it carries a sha256 of its own content and
    key, and its arrays' shapes and row count are checked, so an empty, truncated, garbled or
    well-formed but wrong cache is rebuilt (never an error); an unwritable directory is skipped.
    """
    from ..settings import get_settings

    cache_dir = get_settings().cache_dir if cache_dir is None else cache_dir
    key = _parse_key(path) if str(cache_dir) else None
    cached = Path(cache_dir) / f"parsed-{path.stem}-{key}.npz" if key else None
    if cached is not None and cached.exists():
        hit = _read_parse_cache(cached, key, len(mp_formulas))
        if hit is not None:
            return hit
    formula = np.array([reduced_formula(f) for f in mp_formulas], dtype=object)
    enc = encode_counts(formula)
    if cached is not None:
        arrays = {"formula": formula.astype(str), "encodable": enc.ok,
                  "encode_error": np.array([e or "" for e in enc.errors], dtype=str), "counts": enc.counts}
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp.npz")  # processes racing to write never share a file
            np.savez_compressed(tmp, **arrays, digest=np.array(_cache_digest(arrays, key)))
            tmp.replace(cached)
            for old in cached.parent.glob(f"parsed-{path.stem}-*.npz"):  # caches of older data or code
                if old != cached and ".tmp." not in old.name:
                    old.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only install: parse each time
    return formula, enc.ok, list(enc.errors), enc.counts


_CACHE_KINDS = {"formula": "U", "encodable": "b", "encode_error": "U", "counts": "i"}


def _cache_digest(arrays: dict[str, np.ndarray], key: str) -> str:
    import hashlib

    h = hashlib.sha256(key.encode())
    for name in sorted(_CACHE_KINDS):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _read_parse_cache(cached: Path, key: str, n: int):
    """The cached parse, or None (then rebuilt) unless it is whole, of n rows, and its digest holds."""
    from .registry import read_npz

    try:
        z = read_npz(cached)
    except ValueError:
        return None
    if set(z) != {*_CACHE_KINDS, "digest"} or any(z[k].dtype.kind != kind for k, kind in _CACHE_KINDS.items()):
        return None
    if any(z[k].shape != (n,) for k in ("formula", "encodable", "encode_error")) or z["counts"].shape != (n, 87):
        return None
    if str(z["digest"]) != _cache_digest(z, key) or not np.array_equal(z["encodable"], z["encode_error"] == ""):
        return None
    errors = [str(e) or None for e in z["encode_error"]]
    return z["formula"].astype(object), z["encodable"], errors, z["counts"]


def _parse_key(path: Path) -> str:
    import hashlib

    from .. import composition

    h = hashlib.sha256(Path(path).read_bytes())
    for src in sorted(Path(composition.__file__).parent.glob("*.py")):
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def bandgap_counts(df: pd.DataFrame) -> np.ndarray:
    """Count matrix (N, 87) aligned with the rows of load_bandgaps() (zeros if not encodable)."""
    counts = df.attrs.get("counts")
    if counts is None or len(counts) != len(df):
        counts = encode_counts(df["formula"].to_numpy(dtype=object)).counts
    return counts


@dataclass(frozen=True)
class StructurePool:
    """The MP template structures as arrays; structure(i) builds a pymatgen Structure."""

    meta: pd.DataFrame  # material_id, formula, spacegroup, band_gap, formation_energy_per_atom
    cell: np.ndarray  # (M, 6) a, b, c, alpha, beta, gamma
    offsets: np.ndarray  # (M + 1,)
    numbers: np.ndarray  # (sites,) atomic numbers
    frac: np.ndarray  # (sites, 3)

    def __len__(self) -> int:
        return len(self.meta)

    def sites(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.numbers[a:b], self.frac[a:b]

    def structure(self, i: int):
        from pymatgen.core import Lattice, Structure

        numbers, frac = self.sites(i)
        lattice = Lattice.from_parameters(*self.cell[i])
        return Structure(lattice, [int(z) for z in numbers], frac.astype(np.float64))

    def index_of(self, material_id: str) -> int:
        hits = np.flatnonzero(self.meta["material_id"].to_numpy() == material_id)
        if len(hits) == 0:
            raise KeyError(f"no structure with material id {material_id!r} in the pool")
        return int(hits[0])


@lru_cache(maxsize=2)
def load_structures(data_dir: Path | None = None) -> StructurePool:
    npz_path = data_path(STRUCTURES_FILE, data_dir)
    meta_path = data_path(STRUCTURES_META_FILE, data_dir)
    from pyarrow import ArrowException

    from .registry import read_npz

    try:
        z = read_npz(npz_path)
        arrays = {k: z[k] for k in ("cell", "offsets", "numbers", "frac")}
    except (KeyError, ValueError) as exc:
        raise DataError(f"{npz_path} could not be read: {exc}") from exc
    try:
        meta = pd.read_parquet(meta_path)
    except (OSError, ValueError, ArrowException) as exc:  # a damaged file: ArrowInvalid, OSError, ...
        raise DataError(f"{meta_path} could not be read: {type(exc).__name__}: {exc}") from exc
    if len(meta) != len(arrays["cell"]) or arrays["offsets"][-1] != len(arrays["numbers"]):
        raise DataError(f"{npz_path} and {meta_path} disagree on the number of structures")
    return StructurePool(meta=meta, **arrays)


@lru_cache(maxsize=2)
def load_element_embedding(data_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Matscholar element embedding: symbol -> 200-d vector."""
    path = data_path(EMBEDDING_FILE, data_dir)
    try:
        emb = {el: np.asarray(v, dtype=np.float32) for el, v in json.loads(path.read_text()).items()}
        if len({v.shape for v in emb.values()}) != 1 or next(iter(emb.values())).ndim != 1:
            raise ValueError("the vectors are not all of one length")
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"{path} is not a valid element embedding: {type(exc).__name__}: {exc}") from exc
    return emb
