"""`wbg train {autoencoder,oracle,gan,all}`: the command that produces the shipped checkpoints."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..cli import (add_config_flags, add_engine_flags, check_engine_flags, config_flags, config_overrides, int_in,
                   nonneg_float, nonneg_int, output_dir, positive_int, seed)
from ..models.config_bounds import MAX_MEMBERS
from ..models.configs import AEConfig, GANConfig, OracleConfig
from ..models.registry import MODEL_NAMES as MODELS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (resumable; writes model.safetensors, config.json, card.json)")
    p.add_argument("model", choices=(*MODELS, "all"))
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto picks CUDA when present (bf16 mixed precision on CUDA)")
    p.add_argument("--epochs", type=positive_int, default=None, help="epochs (per ensemble member for the oracle)")
    p.add_argument("--out", type=output_dir, default=None,
                   help="output directory (default models/; each model goes to OUT/<model>)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: settings, 2)")
    p.add_argument("--limit", type=positive_int, default=None, help="train on the first N rows only (smoke tests)")
    p.add_argument("--members", type=int_in(1, MAX_MEMBERS), default=None,
                   help=f"oracle ensemble size (default 5, at most {MAX_MEMBERS}: what a checkpoint may hold)")
    add_config_flags(p, AEConfig, "autoencoder")
    add_config_flags(p, GANConfig, "gan")
    add_config_flags(p, OracleConfig, "oracle")
    p.add_argument("--no-head", action="store_true",
                   help="oracle: assemble the ensemble and stop before fitting its head (then `wbg calibrate oracle "
                        "--dir OUT/oracle`): for a GPU machine without LightGBM, or to fit the head elsewhere")
    p.add_argument("--init-from", type=Path, default=None,
                   help="autoencoder: start from this checkpoint directory's weights; oracle: take the full "
                        "members from this checkpoint and train only the non-metal ones (cited in the card)")
    p.add_argument("--nonmetal-from", type=Path, default=None,
                   help="oracle: take the non-metal members from this checkpoint and train only the full ones "
                        "(cited in the card); --member then counts the full members only")
    p.add_argument("--nonmetal-members", type=int_in(0, MAX_MEMBERS), default=None,
                   help="oracle: members trained on gap > 0 rows only, read by the head's non-metal regressor "
                        "(default 5; 0: none, the checkpoints before 2026-12)")
    p.add_argument("--member", type=nonneg_int, default=None,
                   help="oracle: train only this ensemble member's resume state (run members in parallel "
                        "processes, then once without --member to assemble the ensemble)")
    add_engine_flags(p, "oracle only: its members as Ray tasks (one GPU each where there are GPUs), "
                        "then assembled here")
    p.add_argument("--progress-file", type=Path, default=None,
                   help="append one JSON line per epoch (model, epoch, epochs, seconds, ETA, losses) to this file; "
                        "the app's training jobs read it")
    p.add_argument("--json", action="store_true", help="print the resulting card(s) as JSON")
    p.set_defaults(handler=_train)
    p = sub.add_parser("evaluate", help="re-measure a checkpoint's card metrics on its own split (weights untouched)")
    p.add_argument("model", choices=("autoencoder", "oracle", "gan"))
    p.add_argument("--dir", type=Path, default=None, help="checkpoint directory (default: the shipped one)")
    p.add_argument("--write", action="store_true",
                   help="store the metrics in the card (the old ones kept); autoencoder: rebuild the latent map; "
                        "oracle: with the random forest baseline trained on the same split (~2 min); "
                        "gan: and the sampling setting in config.json")
    p.add_argument("--compound-max-drop", type=nonneg_float, default=None,
                   help="gan: read a sample that is not a compound as its most likely compound reading within "
                        "this many nats (0: the plain argmax decode; default: the checkpoint's setting)")
    p.add_argument("-n", type=positive_int, default=None,
                   help="oracle: a random sample of N test formulas (default: the whole test split)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: settings, 2)")
    p.set_defaults(handler=_evaluate)
    p = sub.add_parser("calibrate", help="fit the oracle's head (P(non-metal), gap of a non-metal, conformal σ) "
                                         "on an ensemble's own split; re-measures its card")
    p.add_argument("model", choices=("oracle",))
    p.add_argument("--dir", type=Path, default=None, help="checkpoint directory (default: the shipped one)")
    p.add_argument("--limit", type=positive_int, default=None, help="the first N rows of each split only (smoke tests)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch and LightGBM threads (default: settings, 2)")
    p.add_argument("--regressor-on", choices=("train", "validation"), default="validation",
                   help="where the gap regressor learns: cross-fitted on the validation split, where the members' "
                        "outputs are out-of-sample, its k boosters averaged and σ calibrated out-of-fold (default), "
                        "or one booster on the train split (heads before 2026-12-05)")
    p.add_argument("--classifier-on", choices=("train", "validation"), default="validation",
                   help="P(non-metal): the train-split classifier with a second one stacked on it, cross-fitted on the "
                        "validation split with the members' outputs (default), or the train-split one alone")
    p.add_argument("--point", choices=("mean", "median"), default="mean",
                   help="the shown gap is P(non-metal) x the mean of the non-metal gap's calibrated distribution "
                        "(default), or x the regressor's median")
    p.set_defaults(handler=_calibrate)


def _train(args) -> int:
    from ..cli import UserError, print_json
    from ..settings import get_settings, set_torch_threads
    from ..models.training import pick_device

    if args.member is not None and args.model != "oracle":
        raise UserError("--member applies to the oracle's ensemble only")
    for model, cls in (("autoencoder", AEConfig), ("gan", GANConfig), ("oracle", OracleConfig)):
        given = [flag for flag, f in config_flags(cls).items() if f.name in config_overrides(args, cls)]
        if given and args.model != model:
            raise UserError(f"{', '.join(given)}: {model} only")
    if args.init_from is not None and args.model not in ("autoencoder", "oracle"):
        raise UserError("--init-from: autoencoder or oracle only")
    if args.init_from is not None and not (args.init_from / "model.safetensors").exists():
        raise UserError(f"--init-from {args.init_from}: no model.safetensors there")
    if args.nonmetal_from is not None:
        if args.model != "oracle":
            raise UserError("--nonmetal-from applies to the oracle only")
        if args.init_from is not None:
            raise UserError("--nonmetal-from and --init-from: give one (both would leave no member to train)")
        if not (args.nonmetal_from / "model.safetensors").exists():
            raise UserError(f"--nonmetal-from {args.nonmetal_from}: no model.safetensors there")
    if args.no_head and args.model != "oracle":
        raise UserError("--no-head applies to the oracle only")
    if args.nonmetal_members is not None and args.model != "oracle":
        raise UserError("--nonmetal-members applies to the oracle only")
    if args.engine == "ray" and (args.model != "oracle" or args.member is not None):
        raise UserError("--engine ray trains the oracle's members (all of them; leave out --member)")
    check_engine_flags(args)
    set_torch_threads(args.threads)
    if args.progress_file is not None:
        from ..models.progress_log import set_progress_file

        set_progress_file(args.progress_file)
    try:
        device = pick_device(args.device)
    except RuntimeError as exc:
        raise UserError(str(exc)) from exc
    out = args.out or get_settings().models_dir
    command = _command_line()
    cards = {}
    for name in MODELS if args.model == "all" else (args.model,):
        target = Path(out) / name
        print(f"training {name} on {device} -> {target}", file=sys.stderr)
        # a bad checkpoint to start from, or ensemble layout: ModelError, one line from cli.main
        cards[name] = _train_one(name, args, target, device, command)
        print(f"{name}: {cards[name].get('metrics', cards[name])}", file=sys.stderr)
    if args.json:
        print_json(cards)
    return 0


def _command_line() -> str | None:
    """The command as typed, for the card (None when called from Python)."""
    if not sys.argv[0].endswith(("__main__.py", "wbg")):
        return None
    return "python -m wbg_core " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _evaluate(args) -> int:
    from ..cli import UserError, print_json
    from ..settings import get_settings, set_torch_threads

    set_torch_threads(args.threads)
    if args.model == "oracle":
        return _evaluate_oracle(args)
    if args.n is not None:
        raise UserError("-n applies to the oracle only")
    if args.compound_max_drop is not None and args.model != "gan":
        raise UserError("--compound-max-drop applies to the gan only")
    if args.model == "gan":
        from ..models.gan import NAME as GAN, reevaluate as gan_reevaluate
        from ..models.registry import CheckpointSet

        directory = args.dir or get_settings().models_dir / GAN
        # the card's gap histogram: the models directory's oracle, loaded when the histogram is drawn
        print_json(gan_reevaluate(directory, write=args.write, command=_command_line(),
                                  compound_max_drop=args.compound_max_drop, oracle=CheckpointSet.shipped().oracle))
        return 0
    from ..models.autoencoder import NAME
    from ..models.autoencoder_training import reevaluate

    directory = args.dir or get_settings().models_dir / NAME
    print_json(reevaluate(directory, write=args.write, command=_command_line()))
    return 0


def _evaluate_oracle(args) -> int:
    """The card's figures, re-measured by the same function (oracle_eval.evaluate_model)."""
    import json

    from ..cli import UserError, print_json
    from ..data import load_bandgaps
    from ..models.checkpoint import CARD, atomic_write_text, _jsonable
    from ..models.oracle import NAME, load
    from ..models.oracle_training import measure
    from ..settings import get_settings

    if args.write and args.n is not None:
        raise UserError("--write measures the whole test split; leave out -n")
    directory = args.dir or get_settings().models_dir / NAME
    oracle = load(directory)
    metrics = measure(oracle, load_bandgaps(), int(oracle.card.get("seed", 0)), with_forest=args.write, n=args.n)
    if args.write:
        card = dict(oracle.card)
        card["earlier_metrics"] = card.get("metrics")
        card["metrics"] = metrics
        card["evaluation"] = {"command": _command_line(), "date": __import__("datetime").date.today().isoformat()}
        atomic_write_text(directory / CARD, json.dumps(card, indent=2, default=_jsonable) + "\n")
    print_json(metrics)
    return 0


def _calibrate(args) -> int:
    from ..cli import UserError, print_json
    from ..models.oracle import NAME
    from ..models.oracle_training import calibrate
    from ..settings import get_settings, set_torch_threads

    if args.limit is not None and args.limit < 50:
        raise UserError("--limit must be at least 50 rows per split")
    threads = set_torch_threads(args.threads)
    directory = args.dir or get_settings().models_dir / NAME
    from ..models.oracle_head_fit import HeadConfig

    card = calibrate(directory, HeadConfig(regressor_fit_on=args.regressor_on, classifier_fit_on=args.classifier_on,
                                                  point=args.point), command=_command_line(), threads=threads,
                     limit=args.limit)
    m = card["metrics"]
    print_json({k: m[k] for k in ("sample", "test_full", "test_nonmetal", "by_predicted_gap", "window_mean_f1",
                                  "roc_auc_gap_ge_3eV")})
    return 0


def _train_one(name: str, args, target: Path, device, command: str | None) -> dict:
    if name == "autoencoder":
        from ..models.autoencoder_training import train

        kw = {"epochs": args.epochs} if args.epochs else {}
        kw.update(config_overrides(args, AEConfig))
        if args.init_from is not None:
            kw["init_from"] = str(args.init_from)
        cfg = AEConfig(seed=args.seed, **kw)
        return train(target, cfg, device, command=command, limit=args.limit)
    elif name == "oracle":
        from ..models.oracle import NONMETAL_MEMBERS
        from ..models.oracle_training import train

        kw = {"epochs": args.epochs} if args.epochs else {}
        if args.members:
            kw["members"] = args.members
        cfg = OracleConfig(seed=args.seed, **kw, **config_overrides(args, OracleConfig))
        nonmetal = NONMETAL_MEMBERS if args.nonmetal_members is None else args.nonmetal_members
        if args.engine == "ray":
            from ..engine.ray_members import train_members

            train_members(target, cfg, args.device, limit=args.limit, nonmetal_members=nonmetal,
                          init_from=args.init_from, nonmetal_from=args.nonmetal_from, address=args.address,
                          progress_callback=lambda f, m: print(f"[{100 * f:5.1f}%] {m}", file=sys.stderr))
        return train(target, cfg, device, command=command, limit=args.limit, only_member=args.member,
                     init_from=args.init_from, nonmetal_members=nonmetal, with_head=not args.no_head,
                     nonmetal_from=args.nonmetal_from)
    else:
        from ..models.gan import train
        from ..models.registry import CheckpointSet

        cfg = GANConfig(seed=args.seed, **config_overrides(args, GANConfig),
                        **({"epochs": args.epochs} if args.epochs else {}))
        # the card's gap histogram: the models directory's oracle, loaded after the training (as before)
        return train(target, cfg, device, command=command, limit=args.limit, oracle=CheckpointSet.shipped().oracle)
