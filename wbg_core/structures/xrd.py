"""Simulated powder X-ray diffraction of a structure: pymatgen's XRDCalculator, a peak table, a stick plot.

A measured pattern is the quickest check of a predicted structure. The pattern is computed on the
conventional cell refined by spglib at the given symprec (XRDCalculator's own refinement), so
the hkl are the familiar conventional indices (NaCl's strongest line is (2 0 0), not the
primitive cell's (1 1 0)); when spglib finds no symmetry the cell is used as it is and the
pattern says so. Intensities are scaled to 100 for the strongest peak.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

DEFAULT_WAVELENGTH = "CuKa"
TWO_THETA_RANGE = (5.0, 90.0)
COLUMNS = ["two_theta", "intensity", "hkl", "d_spacing", "multiplicity"]


def wavelengths() -> dict[str, float]:
    """pymatgen's named X-ray sources (label -> wavelength in A)."""
    from pymatgen.analysis.diffraction.xrd import WAVELENGTHS

    return dict(WAVELENGTHS)


@dataclass
class XRDPattern:
    peaks: object  # pandas DataFrame with COLUMNS, one row per peak, by 2theta
    wavelength: str  # pymatgen's label, e.g. "CuKa"
    wavelength_A: float
    symprec: float | None  # the refinement used, None when the cell was used as it is
    two_theta_range: tuple[float, float] = TWO_THETA_RANGE
    notes: list[str] = field(default_factory=list)

    def csv(self) -> str:
        return self.peaks.to_csv(index=False, float_format="%.4f", lineterminator="\n")


def _hkl_text(families) -> tuple[str, str]:
    hkls = "; ".join("(" + " ".join(str(int(i)) for i in f["hkl"]) + ")" for f in families)
    mults = "; ".join(str(int(f["multiplicity"])) for f in families)
    return hkls, mults


def xrd_pattern(structure, wavelength: str = DEFAULT_WAVELENGTH, symprec: float | None = 0.1,
                two_theta_range: tuple[float, float] = TWO_THETA_RANGE) -> XRDPattern:
    """The powder pattern of `structure` for a named source; ValueError naming a bad wavelength, range or element."""
    import pandas as pd
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    names = wavelengths()
    if wavelength not in names:
        raise ValueError(f"unknown X-ray wavelength {wavelength!r}; choose one of {', '.join(names)}")
    lo, hi = two_theta_range
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi <= 180):
        raise ValueError(f"the 2theta range must satisfy 0 <= min < max <= 180, not {two_theta_range}")
    if not structure.is_ordered:
        notes = ["partially occupied sites: intensities use the occupancies"]
    else:
        notes = []
    cell, used = structure, None
    if symprec:
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        try:
            cell, used = SpacegroupAnalyzer(structure, symprec=symprec).get_refined_structure(), symprec
        except Exception as exc:  # noqa: BLE001 - spglib gives up on some cells: use the cell as it is
            notes.append(f"no symmetry found at symprec {symprec} ({type(exc).__name__}); hkl are of the given cell")
    # an element without scattering factors (Es and heavier) is pymatgen's ValueError, naming it
    pattern = XRDCalculator(wavelength=wavelength).get_pattern(cell, two_theta_range=(lo, hi))
    rows = []
    for x, y, fam, d in zip(pattern.x, pattern.y, pattern.hkls, pattern.d_hkls):
        hkl, mult = _hkl_text(fam)
        rows.append({"two_theta": float(x), "intensity": float(y), "hkl": hkl, "d_spacing": float(d),
                     "multiplicity": mult})
    peaks = pd.DataFrame(rows, columns=COLUMNS)
    return XRDPattern(peaks=peaks, wavelength=wavelength, wavelength_A=float(names[wavelength]), symprec=used,
                      two_theta_range=(float(lo), float(hi)), notes=notes)


def xrd_figure(pattern: XRDPattern, title: str | None = None, label_top: int = 8, min_gap: float = 1.5):
    """Stick plot (2theta vs intensity) with hkl, d and multiplicity on hover; the strongest peaks at least
    min_gap degrees apart labelled with their hkl, written upright as on a diffractogram (closer labels overprint)."""
    import plotly.graph_objects as go

    df = pattern.peaks
    fig = go.Figure(go.Bar(
        x=df["two_theta"], y=df["intensity"], width=0.25, marker_color="#1f77b4", name="peaks",
        customdata=df[["hkl", "d_spacing", "multiplicity"]].values,
        hovertemplate="2θ %{x:.2f}°<br>I %{y:.1f}<br>hkl %{customdata[0]}<br>d %{customdata[1]:.4f} Å"
                      "<br>multiplicity %{customdata[2]}<extra></extra>"))
    labelled: list[float] = []
    for _, row in df.sort_values("intensity", ascending=False).iterrows():  # strongest first, labels kept apart
        if len(labelled) == label_top:
            break
        if all(abs(row["two_theta"] - x) > min_gap for x in labelled):
            labelled.append(row["two_theta"])
            fig.add_annotation(x=row["two_theta"], y=row["intensity"], text=row["hkl"].split(";")[0],
                               showarrow=False, textangle=-90, yanchor="bottom", yshift=3, font=dict(size=10))
    fig.update_layout(
        title=title or f"Simulated powder XRD, {pattern.wavelength} ({pattern.wavelength_A:.4f} Å)",
        xaxis_title="2θ (degrees)", yaxis_title="intensity (strongest = 100)", bargap=0, showlegend=False,
        yaxis_range=[0, 135], xaxis_range=list(pattern.two_theta_range),
        margin=dict(l=60, r=20, t=50, b=50), height=380)
    return fig
