"""`wbg screen`: screen generated candidates for a band-gap window, in this process or on Ray."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import (add_engine_flags, band_gap, check_engine_flags, fraction, nonneg_float, nonneg_int, output_file,
                   positive_int, seed, write_output)
from .engine import READ_ONLY, _campaign_dir, _elements, _engine_errors, _progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("screen", help="screen generated candidates for a band-gap window")
    p.add_argument("--min-gap", type=band_gap, default=None, help="window lower end (eV)")
    p.add_argument("--max-gap", type=band_gap, default=None, help="window upper end (eV)")
    p.add_argument("--pool", type=positive_int, default=100_000, help="generator samples (the paper: 1,180,000)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--p-threshold", type=fraction, default=0.5, help="minimum probability of lying in the window")
    p.add_argument("--max-atoms", type=nonneg_int, default=7, help="0 for no limit (default 7: the paper's < 8)")
    p.add_argument("--max-elements", type=nonneg_int, default=3, help="0 for no limit (default 3: the paper's < 4)")
    p.add_argument("--require", default="", help="comma-separated elements every candidate must hold")
    p.add_argument("--exclude", default="", help="comma-separated elements no candidate may hold")
    p.add_argument("--novel-only", action="store_true", help="drop formulas in the bundled MP data")
    p.add_argument("--keep-invalid", action="store_true",
                   help="keep candidates that fail the compound rule (ICSD-24 charge neutrality + Pauling); "
                        "the compound_valid column says which")
    p.add_argument("--allow-elements-and-alloys", action="store_true",
                   help="let single elements and all-metal compositions through (off: not wide-gap candidates)")
    p.add_argument("--model", choices=["oracle", "forest"], default="oracle",
                   help="screening model: the oracle, or a random forest trained on the train split or --campaign")
    p.add_argument("--campaign", type=Path, help="with --model forest: train it on this campaign's seeds + AL labels")
    p.add_argument("--generator", choices=["gan", "ae"], default="gan",
                   help="candidate source: the GAN (the paper's route, default) or decoded points of the autoencoder's latent box")
    p.add_argument("--compound-max-drop", type=nonneg_float, default=None,
                   help="nats: read a sample that is not a compound as its most likely compound reading within "
                        "this drop (default: the generator's setting, 4 for the shipped GAN; 0: plain decode, faster)")
    p.add_argument("--top", type=positive_int, default=None, help="keep the N best candidates")
    add_engine_flags(p, "shards as Ray tasks, resumable in --run-dir")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="ray: where shards, partitions and top.csv go; the same command resumes a killed run "
                        "(default runs/screen_<seed>_<pool>)")
    p.add_argument("--shard", type=positive_int, default=None,
                   help="samples per shard / chunk (default 65,536); the result depends on it, not on the workers")
    p.add_argument("--output", type=output_file, help="write the ranked candidates as CSV")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_screen)


def _screen(args) -> int:
    from ..cli import UserError, print_json
    from ..engine.screening import ScreenConfig, screen
    from ..models.registry import CheckpointSet
    from ..settings import set_torch_threads

    set_torch_threads()
    cfg = ScreenConfig(min_gap=args.min_gap, max_gap=args.max_gap, pool=args.pool, seed=args.seed,
                       p_threshold=args.p_threshold, max_atoms=args.max_atoms or None,
                       max_elements=args.max_elements or None, require_elements=_elements(args.require),
                       exclude_elements=_elements(args.exclude), novel_only=args.novel_only,
                       valid_only=not args.keep_invalid,
                       allow_elements_and_alloys=args.allow_elements_and_alloys, top=args.top, generator=args.generator,
                       compound_max_drop=args.compound_max_drop, **({"chunk": args.shard} if args.shard else {}))
    try:
        cfg.validate()
        if args.campaign and args.model != "forest":
            raise UserError("--campaign needs --model forest (the oracle is not retrained)")
        check_engine_flags(args, ("--address", "--run-dir"))
        models = CheckpointSet.shipped()
        if args.engine == "ray":
            if args.model != "oracle":
                raise UserError("--engine ray screens with the oracle; the forest is fitted in this process (--engine local)")
            from ..engine.ray_screening import screen_ray
            from ..settings import get_settings

            run_dir = args.run_dir or get_settings().runs_dir / f"screen_{cfg.seed}_{cfg.pool}"
            res = screen_ray(cfg, models.directory, run_dir, address=args.address,
                             progress_callback=_progress(args.json))
            print(f"shards, partitions and top.csv in {run_dir}", file=sys.stderr)
        else:
            model = _forest(args.campaign) if args.model == "forest" else models.oracle()
            res = screen(cfg, model, models.generator(cfg.generator), progress_callback=_progress(args.json))
    except _engine_errors() as exc:
        raise UserError(str(exc)) from exc
    from ..engine.screening import written

    df = written(res.candidates)
    if args.output:  # checked by cli.output_file before the screening
        write_output(args.output, lambda path: df.to_csv(path, index=False))
        print(f"wrote {len(df)} candidates to {args.output}", file=sys.stderr)
    if len(df) == 0:
        print(res.describe_empty(), file=sys.stderr)
    if args.json:
        print_json({"candidates": df.to_dict(orient="records"), "stage_s": res.stage_s,
                    "funnel": res.funnel, "model": res.model})
    else:
        if len(df) and not args.output:
            print(df.head(50).to_string(index=False))
        print("funnel: " + ", ".join(f"{k} {v:,}" for k, v in res.funnel.items()), file=sys.stderr)
        print("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in res.stage_s.items()), file=sys.stderr)
    return 0


def _forest(campaign: Path | None):
    from ..data import load_bandgaps, split
    from ..engine.campaign import Campaign
    from ..engine.experiments import train_forest
    from ..settings import get_settings

    if campaign is not None:
        data = Campaign.load(_campaign_dir(campaign), **READ_ONLY).labelled()
    else:
        data = split(load_bandgaps(), seed=get_settings().split_seed)["train"]
    return train_forest(data["formula"].tolist(), data["band_gap"].to_numpy(), seed=0)
