"""Known data: the bundled Materials Project band gaps keyed by reduced formula, their nearest
neighbours by Element Mover's Distance, and the oracle table that sets predictions beside them."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..composition import FormulaError, reduce_each, reduced_formula
from .inputs import MAX_FORMULAS


class KnownData:
    """The bundled MP band gaps keyed by canonical reduced formula; EMD index built on first use."""

    def __init__(self, df: pd.DataFrame):
        from ..data import bandgap_counts

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
        from ..data.provenance import label_source

        i = self.index.get(formula)
        if i is None:
            return None, None, None
        row = self.table.iloc[i]
        mid = row["material_id"]  # some bundled rows have no MP id
        mid = str(mid) if isinstance(mid, str) and mid else None
        return float(row["band_gap"]), mid, label_source(row["source"], mid)

    @property
    def cdfs(self) -> np.ndarray:
        """(N, 103) cumulative Pettifor vectors; rows off the scale are +inf (never nearest).

        Encodable rows are mapped from their count vectors in one product; the rest (counts
        above 8) go through structures.emd.composition_vector, the same vector EMD queries use."""
        if self._cdfs is None:
            from ..composition import VOCAB
            from ..structures.emd import MOD_PETTI, SCALE_LENGTH, composition_vector, cumulative

            onto = np.zeros((len(VOCAB), SCALE_LENGTH))
            for i, el in enumerate(VOCAB):
                if el in MOD_PETTI:
                    onto[i, MOD_PETTI[el]] = 1.0
            c = self._counts.astype(np.float64)
            tot = c.sum(axis=1, keepdims=True)
            vec = (c @ onto) / np.where(tot > 0, tot, 1)
            names = self.table["formula"].tolist()
            for i in np.flatnonzero(~self._encodable).tolist():  # counts above 8: parse those formulas
                try:
                    vec[i] = composition_vector(names[i])
                except FormulaError:  # unparsable, or an element off the Pettifor scale
                    vec[i] = np.nan
            cd = cumulative(vec)
            cd[~np.isfinite(cd).all(axis=1)] = np.inf
            self._cdfs = cd
        return self._cdfs

    def nearest(self, formula: str, k: int = 5) -> pd.DataFrame:
        """k nearest known formulas by Element Mover's Distance (the formula itself excluded)."""
        from ..structures.emd import emd_to_many

        d = emd_to_many(formula, self.cdfs)
        own = self.index.get(reduced_formula(formula))
        if own is not None:
            d[own] = np.inf
        order = np.argsort(d, kind="stable")[:k]
        from ..data.provenance import label_source

        out = self.table.iloc[order][["formula", "band_gap", "material_id"]].copy()
        out.insert(1, "emd", np.round(d[order], 4))
        out["mp_label_source"] = [label_source(src, mid) for src, mid in
                                  zip(self.table["source"].iloc[order], out["material_id"])]
        return out.reset_index(drop=True)


def build_known_data(df: pd.DataFrame | None = None) -> KnownData:
    from ..data import load_bandgaps

    return KnownData(load_bandgaps() if df is None else df)


def oracle_report(oracle, formulas: list[str], known: KnownData | None = None) -> pd.DataFrame:
    """One row per input: formula (reduced), predicted gap and std, MP value if in the data, error.

    Invalid rows keep their input and get the reason in `error`; valid rows are answered.
    """
    if len(formulas) > MAX_FORMULAS:
        raise ValueError(f"{len(formulas)} formulas: at most {MAX_FORMULAS} per request")
    reduced, errors = reduce_each(formulas)
    ok = [r for r in reduced if r is not None]
    pred = oracle.predict(ok).frame()
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
