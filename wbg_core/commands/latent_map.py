"""`wbg map build`, `wbg map sample`: the explorer's 2-D map of the latent space."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import fraction, int_in, output_file, seed, write_output


CHECK_POINTS = int_in(100, 100_000)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="the latent map: build it for a checkpoint, or decode random points of it")
    msub = p.add_subparsers(dest="map_command", metavar="ACTION", required=True)
    b = msub.add_parser("build", help="encode every encodable MP formula and fit the UMAP map (minutes)")
    b.add_argument("--autoencoder", type=Path, help="checkpoint directory (default: the shipped models/autoencoder)")
    b.add_argument("--n-neighbors", type=int_in(2), default=15, help="UMAP neighbourhood size")
    b.add_argument("--min-dist", type=fraction, default=0.1, help="UMAP minimum distance between map points")
    b.add_argument("--seed", type=seed, default=0)
    b.add_argument("--check-points", type=CHECK_POINTS, default=2000,
                   help="random map points decoded to measure the map (stored with it, shown on the Models page)")
    b.set_defaults(handler=_build)
    m = msub.add_parser("measure", help="measure an existing map (decode, compound and back-distance shares) "
                                        "and store the numbers in it")
    m.add_argument("--autoencoder", type=Path, help="checkpoint directory (default: the shipped one)")
    m.add_argument("--check-points", type=CHECK_POINTS, default=2000)
    m.add_argument("--seed", type=seed, default=0)
    m.set_defaults(handler=_measure)
    s = msub.add_parser("sample", help="decode N uniform random points inside the convex hull of the data's map")
    s.add_argument("-n", type=int_in(1, 1_000_000), default=1000)
    s.add_argument("--seed", type=seed, default=0)
    s.add_argument("--autoencoder", type=Path, help="checkpoint directory (default: the shipped one)")
    s.add_argument("--output", type=output_file, help="write CSV: x, y, formula, valid, compound_valid, x_back, y_back")
    s.set_defaults(handler=_sample)


def _models(directory: Path | None):
    from ..cli import UserError
    from ..models.autoencoder import load_autoencoder, load_latent_map

    if directory is not None and not directory.is_dir():
        raise UserError(f"autoencoder directory {directory} does not exist")
    key = str(directory) if directory else None
    return load_autoencoder(key), load_latent_map(key)


def _build(args) -> int:
    from ..cli import UserError
    from ..data import load_bandgaps
    from ..models.autoencoder import load_autoencoder
    from ..models.latent_map import MapSettings, build_latent_map
    from ..settings import get_settings, set_torch_threads

    directory = args.autoencoder or get_settings().models_dir / "autoencoder"
    if not directory.is_dir():
        raise UserError(f"autoencoder directory {directory} does not exist")
    set_torch_threads()
    ae = load_autoencoder(str(directory))
    settings = MapSettings(n_neighbors=args.n_neighbors, min_dist=args.min_dist, seed=args.seed)
    lmap = build_latent_map(ae, load_bandgaps(), settings, log=lambda m: print(m, file=sys.stderr))
    lmap.save(directory)  # first without metrics: a killed measurement leaves a usable map
    _store_metrics(ae, lmap, directory, args.check_points, args.seed)
    return 0


def _store_metrics(ae, lmap, directory: Path, n: int, seed: int) -> None:
    from ..engine.map_decoding import map_metrics

    lmap.metrics = map_metrics(ae, lmap, n=n, seed=seed)
    print(f"wrote {lmap.save(directory)} ({len(lmap.formula):,} formulas): "
          + ", ".join(f"{k} {v:.3f}" for k, v in lmap.metrics.items() if isinstance(v, float)), file=sys.stderr)


def _measure(args) -> int:
    from ..settings import get_settings, set_torch_threads

    set_torch_threads()
    ae, lmap = _models(args.autoencoder)
    _store_metrics(ae, lmap, args.autoencoder or get_settings().models_dir / "autoencoder", args.check_points,
                   args.seed)
    return 0


def _sample(args) -> int:
    from ..engine.map_decoding import sample_map
    from ..settings import set_torch_threads

    set_torch_threads()
    ae, lmap = _models(args.autoencoder)
    df = sample_map(ae, lmap, args.n, seed=args.seed)
    if args.output:  # checked by cli.output_file before the decoding
        write_output(args.output, lambda path: df.to_csv(path, index=False))
    else:
        df.to_csv(sys.stdout, index=False)
    print(f"{len(df):,} points: {df['valid'].mean():.1%} decode to a formula, "
          f"{df['compound_valid'].mean():.1%} to a compound (the validity rule)"
          + (f"; wrote {args.output}" if args.output else ""), file=sys.stderr)
    return 0
