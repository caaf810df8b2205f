"""The registered ML formation-energy estimates (structures.estimated_phases builds them): read
here, in the data layer, so that the hull (structures.stability) reads them without importing
the code that computes them."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

ESTIMATES_FILE = "ml_formation_energies.csv"
COLUMNS = ["formula", "formation_energy_per_atom", "material_id", "polymorphs", "n_sites", "potential"]


@lru_cache(maxsize=2)
def load_estimates(data_dir: Path | None = None) -> pd.DataFrame:
    """The registered estimates (COLUMNS); an empty table where the file was never built."""
    from .registry import DataError, data_path, load_registry
    from ..settings import get_settings

    if ESTIMATES_FILE not in load_registry(Path(data_dir or get_settings().data_dir))["files"]:
        return pd.DataFrame(columns=COLUMNS)
    path = data_path(ESTIMATES_FILE, data_dir)
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values={"formation_energy_per_atom": [""]},
                         dtype={"formula": str, "material_id": str, "potential": str})
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path} could not be read as CSV: {exc}") from exc
    if list(df.columns) != COLUMNS:
        raise DataError(f"{path} has columns {list(df.columns)}, expected {COLUMNS}")
    return df


def estimate_validation(data_dir: Path | None = None) -> dict | None:
    """The control error stored with the estimates (None where they were never built)."""
    from .registry import load_registry
    from ..settings import get_settings

    entry = load_registry(Path(data_dir or get_settings().data_dir))["files"].get(ESTIMATES_FILE)
    return entry.get("validation") if entry else None


MP_SOURCE = "MP"  # the source of a phase priced by the bundled MP data


@lru_cache(maxsize=2)
def hull_phases(data_dir: Path | None = None) -> pd.DataFrame:
    """Every bundled formula the hull can price, one row each: formula, formation_energy_per_atom,
    material_id (for an estimate, the polymorph it was computed at) and source (MP_SOURCE, or the
    potential's name for an ML estimate). MP's value wins wherever there is one."""
    from .loaders import load_bandgaps

    df = load_bandgaps(data_dir)
    mp = df.loc[df["formation_energy_per_atom"].notna(), ["formula", "formation_energy_per_atom", "material_id"]]
    est = load_estimates(data_dir)
    est = est.loc[~est["formula"].isin(set(mp["formula"])), ["formula", "formation_energy_per_atom", "material_id",
                                                             "potential"]]
    out = pd.concat([mp.assign(source=MP_SOURCE), est.rename(columns={"potential": "source"})], ignore_index=True)
    return out.astype({"formula": str, "material_id": str, "source": str})


@lru_cache(maxsize=2)
def unpriced_formulas(data_dir: Path | None = None) -> tuple[str, ...]:
    """Bundled formulas with neither an MP formation energy (the matbench_mp_gap_max rows) nor an
    estimate (no pool structure): phases the hull lacks."""
    from .loaders import load_bandgaps

    df = load_bandgaps(data_dir)
    priced = set(hull_phases(data_dir)["formula"])
    return tuple(f for f in df["formula"].astype(str) if f not in priced)
