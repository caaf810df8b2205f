"""The latent map decodes: issue #13's targets for the explorer's 2-D map.

Targets, on uniform random points inside the convex hull of the data's map:
  - >= 95% decode to a formula, >= 60% to a compound (the validity rule);
  - the median distance from a point to where its decoded formula re-encodes is below 5% of
    the map's extent (the longer side of the data's bounding box);
  - straight latent lines between random pairs of data formulas decode at >= 90% of their steps.
Baseline, measured in the same run on the same codes: the map the app had before, the first
two principal components of the latents with the inverse PCA as the way back.
Each repeat draws new points (seed = repeat); medians over the repeats are reported.
"""
from __future__ import annotations

import statistics
import time

N_POINTS = 2000


def _pca_baseline(ae, lmap, n: int, seed: int) -> dict:
    """The old map: PCA on the same codes; points uniform in its hull, lifted by the inverse PCA."""
    import numpy as np
    from scipy.spatial import ConvexHull, Delaunay

    from wbg_core.composition import compound_valid

    z = lmap.z
    mean = z.mean(axis=0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    comps = vt[:2]
    xy = (z - mean) @ comps.T
    hull = Delaunay(xy[ConvexHull(xy).vertices])
    rng = np.random.default_rng(seed)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    pts = np.zeros((0, 2))
    while len(pts) < n:
        c = rng.uniform(lo, hi, (2 * n, 2))
        pts = np.concatenate([pts, c[hull.find_simplex(c) >= 0]])
    pts = pts[:n]
    formulas = ae.decode((mean + pts @ comps).astype(np.float32))
    ok = np.array([f is not None for f in formulas])
    back = np.full((n, 2), np.nan)
    if ok.any():
        zb, enc, _ = ae.encode_formulas(np.asarray(formulas[ok], dtype=object))
        b = (zb - mean) @ comps.T
        b[~enc] = np.nan
        back[ok] = b
    d = np.hypot(*(pts - back).T)
    ext = float((hi - lo).max())
    return {"decode_fraction": float(ok.mean()),
            "compound_fraction": float(compound_valid(np.where(ok, formulas, None)).mean()),
            "median_back_distance_fraction": float(np.nanmedian(d) / ext) if np.isfinite(d).any() else None}


def run(repeats: int = 3) -> dict:
    from wbg_core.engine.map_decoding import map_metrics
    from wbg_core.models.autoencoder import load_autoencoder, load_latent_map

    ae, lmap = load_autoencoder(), load_latent_map()
    runs, base, secs = [], [], []
    for rep in range(repeats):
        t = time.perf_counter()
        runs.append(map_metrics(ae, lmap, n=N_POINTS, seed=rep))
        secs.append(time.perf_counter() - t)
        base.append(_pca_baseline(ae, lmap, N_POINTS, seed=rep))

    def med(rows, k):
        vals = [r[k] for r in rows if r.get(k) is not None]
        return statistics.median(vals) if vals else None

    keys = ("decode_fraction", "compound_fraction", "median_back_distance_fraction", "interpolation_valid_fraction",
            "interpolation_compound_fraction", "novel_fraction_of_decoded", "p90_back_distance_fraction")
    res = {k: med(runs, k) for k in keys}
    bl = {k: med(base, k) for k in ("decode_fraction", "compound_fraction", "median_back_distance_fraction")}
    passed = (res["decode_fraction"] >= 0.95 and res["compound_fraction"] >= 0.60
              and res["median_back_distance_fraction"] < 0.05 and res["interpolation_valid_fraction"] >= 0.90)

    def pct(v):
        return "–" if v is None else f"{100 * v:.1f}%"

    lines = ["| measure | UMAP map + barycentric lift | PCA map + inverse PCA (before) | target |",
             "|---|---|---|---|",
             f"| map points that decode to a formula | {pct(res['decode_fraction'])} | {pct(bl['decode_fraction'])} | ≥ 95% |",
             f"| ... to a compound (validity rule) | {pct(res['compound_fraction'])} | {pct(bl['compound_fraction'])} | ≥ 60% |",
             f"| median back-distance, of the map's extent | {pct(res['median_back_distance_fraction'])} | "
             f"{pct(bl['median_back_distance_fraction'])} | < 5% |",
             f"| 90th percentile back-distance | {pct(res['p90_back_distance_fraction'])} | | |",
             f"| interpolation steps that decode (latent lines, random data pairs) | "
             f"{pct(res['interpolation_valid_fraction'])} | (same latent lines) | ≥ 90% |",
             f"| ... that are compounds | {pct(res['interpolation_compound_fraction'])} | | |",
             f"| decoded map points that are new formulas | {pct(res['novel_fraction_of_decoded'])} | | |"]
    md = "\n".join(lines) + (
        f"\n\n{N_POINTS:,} uniform points of the convex hull per repeat, medians of {repeats} repeats "
        f"(seeds 0-{repeats - 1}); {runs[0]['interpolation_pairs']} random pairs × "
        f"{runs[0]['interpolation_steps']} interior steps for interpolation. One repeat (map side) takes "
        f"{statistics.median(secs):.0f} s. Map: {len(lmap.formula):,} formulas, UMAP n_neighbors "
        f"{lmap.settings.n_neighbors}, min_dist {lmap.settings.min_dist}, lift from the {lmap.settings.lift_k} "
        "nearest formulas. Per-point table: `wbg map sample -n 1000 --seed 0 --output map.csv`.\n")
    return {"title": "Latent map: uniform map points decode to compounds",
            "target": ">= 95% decode, >= 60% compounds, median back-distance < 5% of the extent, "
                      ">= 90% of interpolation steps decode",
            "passed": bool(passed), "results": res, "baseline_pca": bl, "runs": runs, "baseline_runs": base,
            "markdown": md}
