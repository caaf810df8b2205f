"""`wbg campaign`, `wbg screen`, `wbg experiment`: the discovery engine from the command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import (add_engine_flags, band_gap, check_engine_flags, output_file, positive_float, positive_int,
                   seed, write_output)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("campaign", help="active-learning campaign in the latent space (new, step, run, status, export, "
                                       "export-round, import-labels)")
    csub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    n = csub.add_parser("new", help="create a campaign directory from a seed set")
    n.add_argument("directory", type=Path, help="campaign directory (a bare name goes under the campaigns dir)")
    g = n.add_mutually_exclusive_group()
    g.add_argument("--seeds-file", type=Path, help="CSV with columns formula, band_gap (eV)")
    g.add_argument("--random-seeds", type=positive_int, default=300, help="N random training-split formulas (default 300)")
    n.add_argument("--below", type=band_gap, help="draw the random seeds from gaps below this (Exp 4: 3.0)")
    n.add_argument("--objective", choices=["max", "window"], default="max")
    n.add_argument("--min-gap", type=band_gap, default=None, help="window lower end (hits for 'max'; default 5 eV there)")
    n.add_argument("--max-gap", type=band_gap, default=None, help="window upper end")
    n.add_argument("--kappa", type=positive_float, default=10.0)
    n.add_argument("--batch", type=positive_int, default=20)
    n.add_argument("--budget", type=positive_int, default=None, help="total proposals (default: unlimited)")
    n.add_argument("--invalid", choices=["skip", "penalty"], default="skip",
                   help="skip: decode before labelling (default); penalty: the paper's 0 eV for invalid decodes")
    n.add_argument("--proposal-rule", choices=["compound", "any"], default="compound",
                   help="compound: label only decodes that pass the validity rule (default); any: every decoded "
                        "formula, the paper's campaign")
    n.add_argument("--decode-rule", choices=["strict", "argmax"], default="strict",
                   help="strict: the paper's (a row with two cells >= 0.5 is invalid); argmax: each element's most "
                        "likely count (bench/results/bo_validity.json compares them)")
    n.add_argument("--labeller", choices=["oracle", "external"], default="oracle",
                   help="oracle: the ML model labels each round (default); external: your own DFT does "
                        "(export-round, then import-labels; the oracle's value is kept only as a provisional label)")
    n.add_argument("--seed", type=seed, default=0)
    n.add_argument("--overwrite", action="store_true")
    n.add_argument("--json", action="store_true")
    n.set_defaults(handler=_campaign_new)
    for name, hlp in (("step", "run one round"), ("run", "run several rounds")):
        s = csub.add_parser(name, help=hlp)
        s.add_argument("directory", type=Path)
        if name == "run":
            s.add_argument("--rounds", type=positive_int, required=True)
        s.add_argument("--use-provisional", action="store_true",
                       help="external labeller: fit the GP on the oracle's provisional gaps of the rows still "
                            "pending too (default: seeds and your DFT labels only)")
        s.add_argument("--json", action="store_true")
        s.set_defaults(handler=_campaign_run)
    s = csub.add_parser("status", help="rounds done, best gap, hits, budget left")
    s.add_argument("directory", type=Path)
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=_campaign_status)
    s = csub.add_parser("export", help="CSV of every seed and proposal")
    s.add_argument("directory", type=Path)
    s.add_argument("--output", type=output_file, required=True)
    s.set_defaults(handler=_campaign_export)
    s = csub.add_parser("export-round", help="zip of a round's proposals for your own DFT: a predicted structure's "
                                             "CIF and DFT input folder per formula, index.csv, README")
    s.add_argument("directory", type=Path)
    s.add_argument("--round", type=positive_int, default=None, help="round number (default: the newest)")
    s.add_argument("--output", type=output_file, required=True, help="the zip to write")
    s.set_defaults(handler=_campaign_export_round)
    s = csub.add_parser("import-labels", help="bring your DFT gaps back: a CSV of formula, band_gap (eV); all rows "
                                              "apply or none")
    s.add_argument("directory", type=Path)
    s.add_argument("--input", type=Path, required=True, help="CSV with columns formula, band_gap (eV)")
    s.add_argument("--replace", action="store_true", help="let a row change a DFT gap imported before")
    s.add_argument("--json", action="store_true")
    s.set_defaults(handler=_campaign_import_labels)

    p = sub.add_parser("experiment", help="the paper's experiments (exp1-exp4), results in docs/experiments.md")
    p.add_argument("name", choices=["exp1", "exp2", "exp3", "exp4"])
    p.add_argument("--repeats", type=positive_int, default=10)
    p.add_argument("--seeds", type=positive_int, default=None, help="seed-set size (default 1000 / 300 / 300)")
    p.add_argument("--budget", type=positive_int, default=1000, help="AL proposals per repeat")
    p.add_argument("--pool", type=positive_int, default=200_000, help="generator samples in the fixed pool")
    p.add_argument("--models", default="rf,roost", help="screening models: rf, roost")
    p.add_argument("--roost-steps", type=positive_int, default=None,
                   help="optimiser steps of the small Roost screening model (default 4,000)")
    p.add_argument("--generator", choices=["gan", "ae"], default="gan",
                   help="pool source: the GAN (paper, default) or decoded points of the autoencoder's latent box")
    p.add_argument("--invalid", choices=["skip", "penalty"], default="skip")
    add_engine_flags(p, "the repeats as Ray tasks")
    p.add_argument("--proposal-rule", choices=["any", "compound"], default="any",
                   help="any: label every decoded formula (the paper; the documented tables); compound: the "
                        "validity rule, as the app's campaigns")
    p.add_argument("--test-limit", type=positive_int, default=None, help="subsample the test split for MAE")
    p.add_argument("--no-doc", action="store_true", help="do not write docs/experiments*")
    p.add_argument("--fresh", action="store_true",
                   help="run every repeat again (by default each finished repeat is kept under "
                        "runs/experiments/ and a re-run of the same settings and checkpoints picks up from there)")
    p.add_argument("--output", type=output_file, help="also write the result JSON here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_experiment)


def _progress(quiet: bool):
    if quiet:
        return None
    return lambda f, m: print(f"[{100 * f:5.1f}%] {m}", file=sys.stderr)


def _campaign_dir(path: Path) -> Path:
    from ..settings import get_settings

    if not path.is_absolute() and len(path.parts) == 1 and not path.exists():
        return get_settings().campaigns_dir / path
    return path


def _stepping_models() -> dict:
    """What a campaign that proposes needs, from the shipped checkpoints: the autoencoder and
    the oracle as labeller (also an external campaign's provisional gaps)."""
    from ..engine.campaign import model_labeller
    from ..models.registry import CheckpointSet

    models = CheckpointSet.shipped()
    return {"autoencoder": models.autoencoder(), "labeller": model_labeller(models.oracle())}


READ_ONLY = {"autoencoder": None, "labeller": None}  # status, export, label import: no model needed


def _engine_errors():
    from ..models import ModelError
    from ..engine.campaign import CampaignError
    from ..engine.screening import ScreenError

    return (CampaignError, ScreenError, ModelError, ValueError)


def _campaign_new(args) -> int:
    from ..cli import UserError, print_json
    from ..engine.campaign import Campaign, CampaignConfig, pick_seeds, seeds_from_csv
    from ..models.registry import CheckpointSet
    from ..settings import set_torch_threads

    set_torch_threads()
    try:
        if args.seeds_file:
            seeds = seeds_from_csv(args.seeds_file)
        else:
            seeds = pick_seeds(args.random_seeds, seed=args.seed, max_gap=args.below)
        window_min = args.min_gap if args.min_gap is not None else (5.0 if args.objective == "max" else None)
        cfg = CampaignConfig(objective=args.objective, window_min=window_min, window_max=args.max_gap, kappa=args.kappa,
                             batch_size=args.batch, budget=args.budget, invalid=args.invalid,
                             decode_rule=args.decode_rule, proposal_rule=args.proposal_rule, seed=args.seed,
                             labeller=args.labeller)
        camp = Campaign.new(_campaign_dir(args.directory), cfg, seeds["formula"], seeds["band_gap"],
                            autoencoder=CheckpointSet.shipped().autoencoder(), labeller=None, overwrite=args.overwrite)
    except _engine_errors() as exc:
        raise UserError(str(exc)) from exc
    status = camp.status()
    if args.json:
        print_json(status)
    else:
        print(f"campaign {camp.directory}: {status['seeds']} seeds, best seed {status['best_formula']} "
              f"{status['best_gap']:.2f} eV")
    return 0


def _campaign_run(args) -> int:
    from dataclasses import asdict

    from ..cli import UserError, print_json
    from ..engine.campaign import Campaign
    from ..settings import set_torch_threads

    set_torch_threads()
    rounds = getattr(args, "rounds", 1)
    if rounds < 1:
        raise UserError("--rounds must be at least 1")
    try:
        camp = Campaign.load(_campaign_dir(args.directory), **READ_ONLY)
        if camp.done():
            raise UserError(f"the campaign's budget of {camp.config.budget} proposals is spent")
        if args.use_provisional and camp.config.labeller != "external":
            raise UserError("--use-provisional is for campaigns with the external labeller; this one is labelled "
                            "by the oracle")
        camp = Campaign.load(camp.directory, **_stepping_models())  # the models load once the checks pass
        reports = camp.run(rounds, progress_callback=_progress(args.json), use_provisional=args.use_provisional)
    except _engine_errors() as exc:
        raise UserError(str(exc)) from exc
    if args.json:
        print_json([asdict(r) for r in reports])
    else:
        for r in reports:
            if camp.config.labeller == "external":
                prov = f", {r.provisional_used} of them provisional oracle gaps" if r.provisional_used else ""
                print(f"round {r.round}: {r.pending} proposals wait for your DFT labels ({r.valid_decode_rate:.0%} of "
                      f"{r.decode_attempts} decodes valid, {r.duplicates_skipped} duplicates skipped); the GP was "
                      f"fitted on {r.trained_on} points{prov}, {r.time_s:.1f} s")
                continue
            print(f"round {r.round}: {r.labelled} labelled ({r.valid_decode_rate:.0%} of {r.decode_attempts} decodes valid, "
                  f"{r.duplicates_skipped} duplicates skipped), best this round "
                  f"{r.best_gap_round if r.best_gap_round is not None else float('nan'):.2f} eV, overall {r.best_gap:.2f} eV "
                  f"({r.best_formula}), hits {r.hits_round} (total {r.hits_total}), novel {r.novel_round}, {r.time_s:.1f} s")
        if reports and camp.config.labeller == "external":
            print(f"export a round for DFT: wbg campaign export-round {args.directory} --round {reports[-1].round} "
                  f"--output round{reports[-1].round}.zip", file=sys.stderr)
    return 0


def _campaign_status(args) -> int:
    from ..cli import UserError, print_json
    from ..engine.campaign import Campaign

    try:
        camp = Campaign.load(_campaign_dir(args.directory), **READ_ONLY)
    except _engine_errors() as exc:
        raise UserError(str(exc)) from exc
    st = camp.status()
    if args.json:
        st["history"] = camp.history().to_dict(orient="records")
        print_json(st)
    else:
        print(f"{st['directory']}: {st['rounds_done']} rounds, {st['total_proposals']} proposals "
              f"({st['labelled_al']} labelled), budget left {st['budget_left']}, best {st['best_formula']} "
              f"{st['best_gap']:.2f} eV, hits {st['hits_total']}"
              + (f"; {st['pending']} proposals pending DFT labels, {st['dft_labelled']} DFT-labelled"
                 if st["labeller"] == "external" else ""))
    return 0


def _campaign_export(args) -> int:
    from ..cli import UserError
    from ..engine.campaign import Campaign

    try:
        path = Campaign.load(_campaign_dir(args.directory), **READ_ONLY).export(args.output)
    except _engine_errors() as exc:
        raise UserError(str(exc)) from exc
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _campaign_export_round(args) -> int:
    from ..cli import UserError
    from ..engine.campaign import Campaign
    from ..engine.campaign_labels import round_zip
    from ..settings import set_torch_threads

    set_torch_threads()
    try:
        data, _ = round_zip(Campaign.load(_campaign_dir(args.directory), **READ_ONLY), args.round)
    except _engine_errors() as exc:
        raise UserError(str(exc)) from exc
    write_output(args.output, lambda path: path.write_bytes(data))  # checked by cli.output_file before the work
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _campaign_import_labels(args) -> int:
    from ..cli import UserError, print_json
    from ..engine.campaign import Campaign
    from ..engine.campaign_labels import read_labels

    try:
        camp = Campaign.load(_campaign_dir(args.directory), **READ_ONLY)
        report = camp.import_labels(read_labels(args.input), replace=args.replace)
    except _engine_errors() as exc:
        raise UserError(str(exc)) from exc
    if args.json:
        print_json(report)
    else:
        print(f"imported {report['labelled']} new DFT labels"
              + (f" and replaced {report['replaced']}" if report["replaced"] else "")
              + f" from {args.input}; {report['pending']} proposals still pending")
    return 0


def _elements(text: str) -> tuple[str, ...]:
    return tuple(e.strip() for e in text.split(",") if e.strip())


def _experiment(args) -> int:
    import json
    import shutil

    from ..cli import UserError, print_json
    from ..engine.experiment_journal import journal_dir
    from ..engine.experiments import ROOST_STEPS, ExperimentConfig, run_experiment, save_result
    from ..models.registry import CheckpointSet
    from ..reports.experiments_doc import write_doc
    from ..settings import get_settings, set_torch_threads

    set_torch_threads()
    cfg = ExperimentConfig(name=args.name, repeats=args.repeats, n_seeds=args.seeds, budget=args.budget, pool=args.pool,
                           models=_elements(args.models), invalid=args.invalid,
                           proposal_rule=args.proposal_rule, test_limit=args.test_limit,
                           generator=args.generator,
                           roost_steps=ROOST_STEPS if args.roost_steps is None else args.roost_steps)
    try:
        cfg = cfg.resolved()
        check_engine_flags(args)
        models = CheckpointSet.shipped()
        journal = journal_dir(cfg, models, get_settings().runs_dir)
        if args.fresh and journal.exists():
            shutil.rmtree(journal)
        result = run_experiment(cfg, models, progress_callback=_progress(args.json),
                                engine=args.engine, address=args.address, journal=journal)
    except _engine_errors() as exc:
        raise UserError(str(exc)) from exc
    if args.output:  # checked by cli.output_file before the runs
        write_output(args.output, lambda path: path.write_text(json.dumps(result, indent=2, default=float) + "\n"))
    if not args.no_doc:
        save_result(result)
        write_doc()
    if args.json:
        print_json(result)
    else:
        for k, (m, s) in result["summary"].items():
            print(f"{k}: {m:.4g} +- {s:.2g}")
    return 0
