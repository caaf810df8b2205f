"""Formation energies the bundled data lacks, estimated with a potential at MP's own structures.

Why: 8,158 bundled formulas (source `matbench_mp_gap_max`: NaF, KF, LiF, MgO, NaCl, ...) carry
no MP formation energy, so the hull was built without them, and a candidate such as KNaF2 came
out 1.3 eV/atom "below the hull" only because NaF and KF were absent. 2,715 of those formulas
have MP structures in the template pool (5,246 polymorphs). Their estimate here is the
potential's static energy at the MP (DFT-relaxed) geometry, put on MP's scale by the same
fitted elemental references as the candidates (stability.element_references), and the lowest
over the formula's polymorphs, as MP's ground state is the lowest of its entries.

The same procedure is scored on formulas whose MP formation energy *is* bundled (a control
sample kept out of the reference fit), and that error is stored with the file. The table is
built once (`wbg structure --estimate-hull-energies`, minutes on 2 cores) and registered with its
checksum like every data file; the hull marks each such phase as an ML estimate.
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.estimates import COLUMNS, ESTIMATES_FILE, load_estimates

CONTROL_SIZE = 300  # priced formulas scored by the same procedure, for the stored error


def _pool_rows_by_formula(formulas) -> dict[str, np.ndarray]:
    """{formula: pool indices of its polymorphs} for the formulas the pool holds."""
    from .templates import template_index

    ix = template_index()
    row = {str(f): k for k, f in enumerate(ix.formulas)}
    return {f: ix.members[row[f]] for f in formulas if f in row}


def unpriced_formulas() -> list[str]:
    """Bundled formulas without an MP formation energy (the matbench_mp_gap_max rows)."""
    from ..data import load_bandgaps

    df = load_bandgaps()
    return sorted(df.loc[df["formation_energy_per_atom"].isna(), "formula"].astype(str))


def _control_formulas(refs: dict, n: int, seed: int) -> list[str]:
    """Priced formulas whose polymorphs were all kept out of the reference fit."""
    from ..data import load_bandgaps
    from .templates import template_index

    df = load_bandgaps()
    priced = df.loc[df["formation_energy_per_atom"].notna(), "formula"].astype(str).tolist()
    ix = template_index()
    fitted = set(refs.get("material_ids", []))
    by_formula = _pool_rows_by_formula(priced)
    ok = sorted(f for f, rows in by_formula.items()
                if not any(str(ix.material_ids[i]) in fitted for i in rows))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(ok, size=min(n, len(ok)), replace=False).tolist())


def estimate(potential, refs: dict, formulas: list[str], *, batch: int = 32, progress=None) -> pd.DataFrame:
    """The lowest potential E_f per atom over each formula's pool polymorphs (COLUMNS).

    Formulas the pool lacks, or whose every polymorph the potential refuses (an element it
    has no parameters for, an isolated atom), are left out."""
    from ..composition.parse import FormulaError
    from ..data import load_structures
    from .potentials import UnsupportedElementError
    from .stability import formation_energy_per_atom
    from .templates import template_index

    pool, ix = load_structures(), template_index()
    by_formula = _pool_rows_by_formula(formulas)
    jobs = [(f, int(i)) for f, rows in by_formula.items() for i in rows]
    sites = np.diff(pool.offsets)
    best: dict[str, tuple[float, int]] = {}
    done = 0
    for start in range(0, len(jobs), batch):
        part = jobs[start:start + batch]
        structures, keep = [], []
        for f, i in part:
            s = pool.structure(i)
            try:
                potential.check_elements(s)
            except UnsupportedElementError:
                continue
            structures.append(s)
            keep.append((f, i, s))
        energies = potential.energies(structures) if structures else []
        for (f, i, s), e in zip(keep, energies):
            if not np.isfinite(e):
                continue
            try:
                ef = formation_energy_per_atom(s.composition, float(e), refs)
            except FormulaError:  # an element without a fitted reference
                continue
            if f not in best or ef < best[f][0]:
                best[f] = (ef, i)
        done += len(part)
        if progress:
            progress(done, len(jobs))
    rows = [{"formula": f, "formation_energy_per_atom": round(ef, 6), "material_id": str(ix.material_ids[i]),
             "polymorphs": int(len(by_formula[f])), "n_sites": int(sites[i]),
             "potential": potential.name} for f, (ef, i) in sorted(best.items())]
    return pd.DataFrame(rows, columns=COLUMNS)


def build(potential, *, control: int = CONTROL_SIZE, seed: int = 0, batch: int = 32,
          data_dir: Path | None = None, progress=None) -> dict:
    """Estimate every unpriced pool formula, score the procedure on a priced control sample,
    write data/ml_formation_energies.csv and register it (bytes, sha256, the control error)."""
    from ..data import load_bandgaps
    from .stability import element_references

    refs = element_references(potential.name)
    t0 = time.perf_counter()
    targets = unpriced_formulas()
    est = estimate(potential, refs, targets, batch=batch,
                   progress=(lambda d, n: progress("unpriced", d, n)) if progress else None)
    seconds = time.perf_counter() - t0
    ctrl_formulas = _control_formulas(refs, control, seed)
    ctrl = estimate(potential, refs, ctrl_formulas, batch=batch,
                    progress=(lambda d, n: progress("control", d, n)) if progress else None)
    mp = load_bandgaps().set_index("formula")["formation_energy_per_atom"]
    err = ctrl["formation_energy_per_atom"].to_numpy() - mp.loc[ctrl["formula"]].to_numpy()
    validation = {
        "control_formulas": int(len(ctrl)),
        "control_seed": seed,
        "mae_eV_per_atom": round(float(np.abs(err).mean()), 4),
        "median_abs_error_eV_per_atom": round(float(np.median(np.abs(err))), 4),
        "mean_error_eV_per_atom": round(float(err.mean()), 4),
        "within_0.1_eV_per_atom": round(float((np.abs(err) <= 0.1).mean()), 3),
    }
    write(est, potential, validation, data_dir)
    return {"formulas": len(targets), "estimated": int(len(est)), "seconds": round(seconds, 1), **validation}


def write(est: pd.DataFrame, potential, validation: dict, data_dir: Path | None = None) -> Path:
    """The CSV, then its registry entry (so the registry never names bytes that are not there)."""
    from ..data.registry import REGISTRY_FILE, load_registry, sha256_of
    from ..files import atomic_write_bytes, atomic_write_text
    from ..settings import get_settings

    data_dir = Path(data_dir or get_settings().data_dir)
    path = data_dir / ESTIMATES_FILE
    buf = io.StringIO()
    est.to_csv(buf, index=False)
    atomic_write_bytes(path, buf.getvalue().encode())
    registry = load_registry(data_dir)
    registry["files"][ESTIMATES_FILE] = {
        "description": (f"{potential.label} formation energies (eV/atom) of the bundled formulas that have no MP "
                        "formation energy (source matbench_mp_gap_max) but MP structures in the template pool: "
                        "static energy at the MP geometry, fitted elemental references, lowest over the formula's "
                        "polymorphs. ML estimates, not DFT: used to complete the convex hull, and marked there"),
        "rows": int(len(est)),
        "source": (f"computed by `wbg structure --estimate-hull-energies --potential {potential.name}` from "
                   f"mp_structures.npz and models/{potential.name}_element_refs.json"),
        "licence": "CC-BY 4.0 (derived from Materials Project structures)",
        "validation": validation,
        "bytes": path.stat().st_size,
        "sha256": sha256_of(path),
    }
    atomic_write_text(data_dir / REGISTRY_FILE, json.dumps(registry, indent=2) + "\n")
    load_estimates.cache_clear()
    return path
