"""Decoding the latent map: map points to formulas, formulas to map points, and the map's
own health check (`wbg map sample`, the latent_map benchmark, the Models page).

Every function takes the autoencoder, the map (wbg_core.models.latent_map.LatentMap) and,
where gaps are shown, the oracle as arguments, so the pages, the CLI and the benchmark use
the same code on whatever checkpoints are in use.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..composition import FormulaError, compound_valid, reduce_each
from ..models.compound_decoding import decode_preferring_compounds


def place_formulas(ae, lmap, formulas: list[str]) -> pd.DataFrame:
    """Map coordinates of formulas: formula, x, y, error (formulas the 87 x 8 matrix cannot hold fail)."""
    reduced, errs = reduce_each(formulas)
    canon = [r if r is not None else f for r, f in zip(reduced, formulas)]  # a bad row keeps its input
    z, ok, enc_err = ae.encode_formulas(np.asarray(canon, dtype=object))
    xy = lmap.place_latents(z) if len(z) else np.zeros((0, 2), np.float32)
    out = pd.DataFrame({"formula": canon, "x": xy[:, 0], "y": xy[:, 1]})
    out["error"] = [e or (None if o else (ee or "cannot be encoded")) for e, o, ee in zip(errs, ok, enc_err)]
    out.loc[out["error"].notna(), ["x", "y"]] = np.nan
    return out


def decode_latents(ae, oracle, z: np.ndarray) -> pd.DataFrame:
    """formula (None where the decode is invalid), predicted gap and std, the compound rule."""
    formulas = ae.decode(z)
    out = pd.DataFrame({"formula": formulas})
    ok = np.array([f is not None for f in formulas])
    out["band_gap_mean"] = np.nan
    out["band_gap_std"] = np.nan
    if ok.any() and oracle is not None:
        p = oracle.predict(list(formulas[ok]))
        out.loc[ok, "band_gap_mean"] = p.mean.round(3)
        out.loc[ok, "band_gap_std"] = p.std.round(3)
    out["compound_valid"] = compound_valid(np.where(ok, formulas, None))
    return out


def decode_points(ae, lmap, xy) -> tuple[np.ndarray, np.ndarray]:
    """(formulas, plain decodes) of map points: lifted, then decoded preferring a compound
    reading (the map's compound_max_drop; models.compound_decoding)."""
    z = lmap.lift(xy)
    if lmap.settings.compound_max_drop <= 0:
        plain = ae.decode(z)
        return plain, plain
    return decode_preferring_compounds(ae, z, max_drop=lmap.settings.compound_max_drop)


def decode_map_points(ae, oracle, lmap, xy) -> pd.DataFrame:
    """x, y, formula, predicted gap, compound rule of map points, and plain_decode: what the
    decoder's rounded output reads as (differs where a compound reading was preferred)."""
    xy = np.atleast_2d(np.asarray(xy, np.float32))
    formulas, plain = decode_points(ae, lmap, xy)
    out = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "formula": formulas, "band_gap_mean": np.nan,
                        "band_gap_std": np.nan})
    ok = np.array([f is not None for f in formulas])
    if ok.any() and oracle is not None:
        p = oracle.predict(list(formulas[ok]))
        out.loc[ok, "band_gap_mean"] = p.mean.round(3)
        out.loc[ok, "band_gap_std"] = p.std.round(3)
    out["compound_valid"] = compound_valid(np.where(ok, formulas, None))
    out["plain_decode"] = plain
    return out


def interpolate(ae, oracle, lmap, start: str, end: str, steps: int = 10) -> pd.DataFrame:
    """Decode points on the straight line between two formulas' latent vectors (t, x, y, formula, ...)."""
    if steps < 2:
        raise ValueError("steps must be at least 2")
    placed = place_formulas(ae, lmap, [start, end])
    bad = placed[placed["error"].notna()]
    if len(bad):
        raise FormulaError("; ".join(f"{r.formula}: {r.error}" for r in bad.itertuples()))
    z, _, _ = ae.encode_formulas(np.asarray(placed["formula"], dtype=object))
    t = np.linspace(0, 1, steps, dtype=np.float32)[:, None]
    zs = (1 - t) * z[0] + t * z[1]
    out = decode_latents(ae, oracle, zs)
    xy = lmap.place_latents(zs)
    out.insert(0, "t", t[:, 0].round(3))
    out.insert(1, "x", xy[:, 0])
    out.insert(2, "y", xy[:, 1])
    return out


def sample_map(ae, lmap, n: int, seed: int = 0) -> pd.DataFrame:
    """n uniform points of the map's convex hull, decoded, and where each decoded formula
    re-encodes to: x, y, formula, valid, compound_valid, x_back, y_back (NaN where nothing
    decodes), plain_decode (the decoder's rounded output, where a compound reading was preferred)."""
    xy = lmap.sample_points(n, seed=seed)
    formulas, plain = decode_points(ae, lmap, xy)
    ok = np.array([f is not None for f in formulas])
    back = np.full((n, 2), np.nan, np.float32)
    if ok.any():
        z, enc_ok, _ = ae.encode_formulas(np.asarray(formulas[ok], dtype=object))
        xy_back = lmap.place_latents(z)
        xy_back[~enc_ok] = np.nan
        back[ok] = xy_back
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "formula": np.where(ok, formulas, None),
                         "valid": ok, "compound_valid": compound_valid(np.where(ok, formulas, None)),
                         "x_back": back[:, 0], "y_back": back[:, 1], "plain_decode": plain})


def interpolation_validity(ae, lmap, n_pairs: int = 200, steps: int = 10, seed: int = 0) -> dict:
    """Straight lines in latent space between random pairs of data formulas: the share of their
    interior steps (end points excluded) that decode to a formula, and to a compound."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(len(lmap.formula), (n_pairs, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    t = np.linspace(0, 1, steps + 2, dtype=np.float32)[1:-1]
    za, zb = lmap.z[pairs[:, 0]], lmap.z[pairs[:, 1]]
    zs = (za[:, None, :] * (1 - t)[None, :, None] + zb[:, None, :] * t[None, :, None]).reshape(-1, za.shape[1])
    formulas = ae.decode(zs)
    ok = np.array([f is not None for f in formulas])
    return {"pairs": int(len(pairs)), "steps_per_pair": int(steps),
            "valid_fraction": float(ok.mean()),
            "compound_fraction": float(compound_valid(np.where(ok, formulas, None)).mean())}


def map_metrics(ae, lmap, n: int = 2000, seed: int = 0, n_pairs: int = 200, steps: int = 10) -> dict:
    """The issue-13 targets of a map: decode and compound shares of uniform hull points, the
    median back-distance as a share of the map's extent, and interpolation validity."""
    df = sample_map(ae, lmap, n, seed=seed)
    dist = np.hypot(df["x"] - df["x_back"], df["y"] - df["y_back"]).to_numpy()
    extent = lmap.extent
    fin = np.isfinite(dist)
    interp = interpolation_validity(ae, lmap, n_pairs=n_pairs, steps=steps, seed=seed)
    return {
        "points": int(n), "seed": int(seed), "map_extent": round(extent, 4),
        "decode_fraction": float(df["valid"].mean()),
        "compound_fraction": float(df["compound_valid"].mean()),
        "plain_decode_fraction": float(df["plain_decode"].notna().mean()),
        "plain_compound_fraction": float(compound_valid(df["plain_decode"].to_numpy(dtype=object)).mean()),
        "compound_reading_fraction": float((df["formula"].notna() & (df["formula"] != df["plain_decode"])).mean()),
        "median_back_distance_fraction": float(np.median(dist[fin]) / extent) if fin.any() else None,
        "p90_back_distance_fraction": float(np.percentile(dist[fin], 90) / extent) if fin.any() else None,
        "distinct_formulas": int(df["formula"].dropna().nunique()),
        "novel_fraction_of_decoded": float((~df.loc[df["valid"], "formula"].isin(set(lmap.formula))).mean())
        if df["valid"].any() else 0.0,
        "interpolation_valid_fraction": interp["valid_fraction"],
        "interpolation_compound_fraction": interp["compound_fraction"],
        "interpolation_pairs": interp["pairs"], "interpolation_steps": interp["steps_per_pair"],
    }
