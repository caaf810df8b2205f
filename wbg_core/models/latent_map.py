"""The explorer's 2-D map of composition space, and the way back from it to the latent space.

Why not PCA: the first two principal components of the 128-d latents hold 5% and 4% of
the variance, and the inverse PCA of a map point lands far from every code the data have,
so it decodes to nothing or to a single element. Here:

- forward: UMAP (umap-learn) of the latent codes of every encodable MP formula, fitted
  once when the map is built and stored beside the checkpoint (`latent_map.npz`), because
  a fitted UMAP object can only be kept by pickling it;
- back (a map point -> a latent code): a barycentric lift, the inverse-distance-squared
  weighted mean of the codes of the k data points nearest in 2-D. A point on a data
  formula lifts to exactly its code, a point between neighbours to a blend of theirs,
  which stays in the region of latent space the data occupy and so decodes;
- decoding that code: the most likely reading of the decoder output that is a compound,
  if one lies within MapSettings.compound_max_drop nats of the best reading, else the
  plain decode (wbg_core.models.compound_decoding);
- placing a new code on the map: the same weighting over its k nearest codes in 128-d
  (a data formula lands on itself).

The axes are UMAP's, in arbitrary units: nearby points have similar latent codes, and
distances between far-apart clusters mean little.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checkpoint import ModelError

FILE = "latent_map.npz"
MAP_KIND = "umap+barycentric"
LIFT_K = 8  # data points a map point is lifted from
PLACE_K = 8  # codes a new latent vector is placed from
_EPS = 1e-12


@dataclass(frozen=True)
class MapSettings:
    """How a map is built (stored in the map file, shown on the Models page)."""

    n_neighbors: int = 15  # UMAP: neighbourhood size (larger keeps more global structure)
    min_dist: float = 0.1  # UMAP: how tightly points may pack on the map
    seed: int = 0  # UMAP random_state (also makes it single-threaded, which 2 cores want anyway)
    lift_k: int = LIFT_K
    place_k: int = PLACE_K
    # decoding a map point: the most likely compound reading of the decoder output within this
    # many nats of its best reading (models.compound_decoding); 0 keeps the plain decode
    compound_max_drop: float = 8.0


@dataclass
class LatentMap:
    """Map coordinates of the data formulas, their latent codes, and the lift between the two."""

    formula: np.ndarray  # str, one per encodable MP formula
    band_gap: np.ndarray  # float32 eV (matbench_mp_gap_max rows: the largest gap over polymorphs)
    xy: np.ndarray  # (n, 2) float32 map coordinates
    z: np.ndarray  # (n, latent_dim) float32 latent codes (refined), stored as float16
    latent_lo: np.ndarray  # per-dimension box of the codes (LatentSampler, the BO search box)
    latent_hi: np.ndarray
    settings: MapSettings = field(default_factory=MapSettings)
    metrics: dict = field(default_factory=dict)  # engine.map_decoding.map_metrics of this map, when measured
    kind: str = MAP_KIND
    _tree: object = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------ geometry
    @property
    def extent(self) -> float:
        """The map's extent: the longer side of the data's bounding box (the unit of back-distances)."""
        span = self.xy.max(axis=0) - self.xy.min(axis=0)
        return float(span.max())

    def _kdtree(self):
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.xy.astype(np.float64))
        return self._tree

    def lift(self, xy, k: int | None = None) -> np.ndarray:
        """Latent codes of map points: inverse-distance-squared mean of the k nearest data codes."""
        xy = np.atleast_2d(np.asarray(xy, np.float64))
        if xy.shape[1] != 2 or not np.isfinite(xy).all():
            raise ValueError("map points need two finite coordinates each")
        k = min(k or self.settings.lift_k, len(self.xy))
        d, idx = self._kdtree().query(xy, k=k)
        d, idx = d.reshape(len(xy), k), idx.reshape(len(xy), k)
        return _blend(self.z, d, idx)

    def place_latents(self, z, k: int | None = None, batch: int = 512) -> np.ndarray:
        """Map coordinates of latent codes: the same weighting over their k nearest data codes in 128-d."""
        z = np.atleast_2d(np.asarray(z, np.float32))
        k = min(k or self.settings.place_k, len(self.xy))
        ref = self.z.astype(np.float32)
        sq = (ref ** 2).sum(axis=1)
        out = np.empty((len(z), 2), np.float32)
        for s in range(0, len(z), batch):
            q = z[s:s + batch]
            d2 = np.maximum((q ** 2).sum(axis=1)[:, None] + sq[None, :] - 2.0 * q @ ref.T, 0.0)
            idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
            dd = np.sqrt(np.take_along_axis(d2, idx, axis=1))
            out[s:s + batch] = _blend(self.xy, dd, idx)
        return out

    def sample_points(self, n: int, seed: int = 0) -> np.ndarray:
        """n uniform random points inside the convex hull of the data's map (rejection from its box)."""
        from scipy.spatial import ConvexHull, Delaunay

        if n < 1:
            raise ValueError("the number of points must be at least 1")
        hull = Delaunay(self.xy[ConvexHull(self.xy).vertices].astype(np.float64))
        rng = np.random.default_rng(seed)
        lo, hi = self.xy.min(axis=0), self.xy.max(axis=0)
        got: list[np.ndarray] = []
        have = 0
        while have < n:
            cand = rng.uniform(lo, hi, (max(2 * (n - have), 64), 2))
            inside = cand[hull.find_simplex(cand) >= 0]
            got.append(inside)
            have += len(inside)
        return np.concatenate(got)[:n].astype(np.float32)

    # ------------------------------------------------------------ files
    def save(self, directory: Path) -> Path:
        """Write latent_map.npz atomically (no pickle: strings, numbers and a JSON settings string)."""
        path = Path(directory) / FILE
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, formula=self.formula.astype(str), band_gap=self.band_gap.astype(np.float32),
                            xy=self.xy.astype(np.float32), z=self.z.astype(np.float16),
                            latent_lo=self.latent_lo.astype(np.float32), latent_hi=self.latent_hi.astype(np.float32),
                            kind=np.asarray(self.kind), settings=np.asarray(json.dumps(self.settings.__dict__)),
                            metrics=np.asarray(json.dumps(self.metrics)))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory: Path) -> "LatentMap":
        path = Path(directory) / FILE
        if not path.exists():
            raise ModelError(f"latent map {path} is missing: build it with `wbg map build --autoencoder {directory}`")
        from ..data.registry import read_npz

        try:
            arrays = read_npz(path)  # every member read whole: zip's CRC-32 catches a garbled byte
        except ValueError as exc:
            raise ModelError(f"latent map {path} is corrupt ({exc}): rebuild it with "
                             f"`wbg map build --autoencoder {directory}`") from exc
        if "z" not in arrays or str(arrays.get("kind", "")) != MAP_KIND:
            raise ModelError(f"latent map {path} is an earlier PCA map that does not decode: rebuild it with "
                             f"`wbg map build --autoencoder {directory}`")
        missing = {"formula", "band_gap", "xy", "latent_lo", "latent_hi"} - set(arrays)
        n = arrays["formula"].size if "formula" in arrays else -1
        if missing or arrays["xy"].shape != (n, 2) or arrays["z"].shape[:1] != (n,) or arrays["band_gap"].shape != (n,):
            raise ModelError(f"latent map {path} is inconsistent (missing {sorted(missing)} or arrays of "
                             f"different lengths): rebuild it with `wbg map build --autoencoder {directory}`")
        z = arrays["z"]
        d = z.shape[1] if z.ndim == 2 else -1
        if (d < 1 or arrays["latent_lo"].shape != (d,) or arrays["latent_hi"].shape != (d,)
                or arrays["formula"].dtype.kind != "U" or arrays["band_gap"].dtype.kind != "f"
                or not all(arrays[k].dtype.kind == "f" and np.isfinite(arrays[k]).all()
                           for k in ("xy", "z", "latent_lo", "latent_hi"))):
            raise ModelError(f"latent map {path} is inconsistent (arrays of the wrong type or shape, or "
                             f"non-finite codes or coordinates): rebuild it with `wbg map build --autoencoder {directory}`")
        try:
            settings = MapSettings(**json.loads(str(arrays["settings"])))
        except (KeyError, TypeError, ValueError):
            settings = MapSettings()
        try:
            metrics = dict(json.loads(str(arrays["metrics"])))
        except (KeyError, TypeError, ValueError):
            metrics = {}
        return cls(arrays["formula"], arrays["band_gap"], arrays["xy"], arrays["z"].astype(np.float32),
                   arrays["latent_lo"], arrays["latent_hi"], settings, metrics)


def _blend(values: np.ndarray, d: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Inverse-distance-squared weighted mean of values[idx] per row; an exact hit takes its value."""
    w = 1.0 / (d.astype(np.float64) ** 2 + _EPS)
    w /= w.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkd->nd", w, values[idx].astype(np.float64)).astype(np.float32)


def build_latent_map(model, df, settings: MapSettings | None = None, log=None) -> LatentMap:
    """Encode every encodable formula of df (refined codes) and fit the UMAP map on them."""
    import time

    from ..composition import encode_counts

    settings = settings or MapSettings()
    say = log or (lambda msg: None)
    enc = df["encodable"].to_numpy()
    formulas = df["formula"].to_numpy(dtype=object)[enc]
    t0 = time.perf_counter()
    z = model.encode_counts(encode_counts(formulas).counts)
    say(f"encoded {len(z):,} formulas in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    xy = fit_umap(z, settings)
    say(f"UMAP of {len(z):,} codes in {time.perf_counter() - t0:.0f} s")
    return LatentMap(formulas.astype(str), df["band_gap"].to_numpy()[enc].astype(np.float32), xy,
                     z.astype(np.float16).astype(np.float32), z.min(axis=0).astype(np.float32),
                     z.max(axis=0).astype(np.float32), settings)


def fit_umap(z: np.ndarray, settings: MapSettings) -> np.ndarray:
    import warnings

    import umap

    n_neighbors = min(settings.n_neighbors, max(2, len(z) - 1))
    with warnings.catch_warnings():  # "n_jobs overridden to 1 by setting random_state": wanted
        warnings.simplefilter("ignore", UserWarning)
        reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=settings.min_dist,
                            random_state=settings.seed, init="spectral" if len(z) > 50 else "random")
        return reducer.fit_transform(np.asarray(z, np.float32)).astype(np.float32)
