"""`wbg` / `python -m wbg_core`: one argparse CLI; each feature registers its subcommands.

A command module exposes `register(subparsers)`; handlers import their heavy dependencies
lazily so that `--help` stays instant. Handlers return an exit code; user errors are raised
as UserError (or FormulaError / DataError / ModelError) and printed as one line, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import sys
from pathlib import Path

COMMAND_MODULES = [
    "wbg_core.commands.data",
    "wbg_core.commands.bench",
    "wbg_core.commands.structure",
    "wbg_core.commands.train",
    "wbg_core.commands.models",
    "wbg_core.commands.latent_map",
    "wbg_core.commands.engine",
    "wbg_core.commands.screen",
]


class UserError(Exception):
    """Bad input from the command line; printed without a traceback."""


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=_json_default)
    sys.stdout.write("\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


class _Parser(argparse.ArgumentParser):
    """Argument errors print one line, like UserError (subcommand parsers inherit this class)."""

    def error(self, message: str):
        message = re.sub(r"^argument (\S+): must be", r"\1 must be", message)  # as the handlers word it
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


# ---- argparse `type=` validators, shared so that every command refuses the same bad numbers the same way
SEED_MAX = 2**32 - 1  # numpy's legacy RandomState (pandas' sample) takes no more; torch seeds derived from it fit


def int_in(lo: int, hi: int | None = None):
    """Counts and sizes in [lo, hi]: a negative one would slice from the end, so argparse refuses it up front."""
    def check(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo or (hi is not None and v > hi):
            span = f">= {lo:,}" if hi is None else f"from {lo:,} to {hi:,}"
            raise argparse.ArgumentTypeError(f"must be an integer {span}, not {text}")
        return v

    check.__name__ = "integer"
    return check


def float_in(lo: float, hi: float | None = None, lo_open: bool = False, note: str = ""):
    """Finite numbers in [lo, hi] (or (lo, hi]): a plain `v < lo` check lets NaN through."""
    def check(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        low_ok = v > lo if lo_open else v >= lo
        if not math.isfinite(v) or not low_ok or (hi is not None and v > hi):
            span = f"{'>' if lo_open else '>='} {lo:g}" if hi is None else \
                f"in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
            raise argparse.ArgumentTypeError(f"must be a finite number {span}{note}, not {text}")
        return v

    check.__name__ = "number"
    return check


positive_int = int_in(1)
nonneg_int = int_in(0)
seed = int_in(0, SEED_MAX)
band_gap = float_in(0.0, note=" eV (band gaps are never negative)")
nonneg_float = float_in(0.0)
positive_float = float_in(0.0, lo_open=True)
fraction = float_in(0.0, 1.0)


_CHECKS = {"fraction": fraction, "nonneg_int": nonneg_int, "positive_int": positive_int,
           "positive_float": positive_float, "nonneg_float": nonneg_float}


def config_flags(config_cls) -> dict[str, object]:
    """{flag: dataclass field} of a model config's fields that carry a "help" in their metadata."""
    import dataclasses

    return {"--" + f.metadata.get("flag", f.name.replace("_", "-")): f
            for f in dataclasses.fields(config_cls) if "help" in f.metadata}


def add_config_flags(p: argparse.ArgumentParser, config_cls, applies_to: str) -> None:
    """One flag per config field with a "help" (see config_flags): the check named by metadata["cli"],
    the choices of metadata["choices"], a store_true for a bool; default None, so the dataclass's own
    default applies and `config_overrides` hands on only what was given."""
    for flag, f in config_flags(config_cls).items():
        text = f"{applies_to}: {f.metadata['help']} (default {f.default!r})"
        if isinstance(f.default, bool):
            p.add_argument(flag, action="store_true", default=None, help=text)
        elif "choices" in f.metadata:
            p.add_argument(flag, choices=f.metadata["choices"], default=None, help=text)
        else:
            p.add_argument(flag, type=_CHECKS[f.metadata["cli"]], default=None, help=text)


def config_overrides(args, config_cls) -> dict:
    """{field: value} of the config flags given on the command line."""
    out = {}
    for flag, f in config_flags(config_cls).items():
        v = getattr(args, flag[2:].replace("-", "_"), None)
        if v is not None:
            out[f.name] = v
    return out


def add_engine_flags(p: argparse.ArgumentParser, ray_does: str) -> None:
    """--engine {local,ray} and --address, the same on every command that can run on Ray."""
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help=f"local: this process (default); ray: {ray_does}, on a local Ray (all cores) or the "
                        "cluster at --address / RAY_ADDRESS (docs/scale.md)")
    p.add_argument("--address", default=None,
                   help="with --engine ray: the cluster's head node, host:port (default: a local Ray)")


def check_engine_flags(args, ray_only: tuple[str, ...] = ("--address",)) -> None:
    """Flags that only mean something on Ray are refused without --engine ray."""
    if args.engine != "ray" and any(getattr(args, f[2:].replace("-", "_")) for f in ray_only):
        verb = "goes" if len(ray_only) == 1 else "go"
        raise UserError(f"{' and '.join(ray_only)} {verb} with --engine ray")


def output_file(text: str) -> Path:
    """An --output file, checked before the work: a long run must not end in a write that cannot happen."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file in it, e.g. {path / 'out.csv'}")
    _check_parent(path, "cannot write")
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {path}: it is read-only")
    return path


def output_dir(text: str) -> Path:
    """An output folder: created by the command if missing, but only inside an existing folder."""
    path = Path(text)
    if path.exists():
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"{path} exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"the output folder {path} is not writable")
        return path
    _check_parent(path, "cannot create the output folder")
    return path


def write_output(path: Path, write) -> None:
    """write(path), with the one failure left after output_file's checks (a full disk) as a UserError."""
    try:
        write(path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _check_parent(path: Path, verb: str) -> None:
    parent = path.parent
    if not parent.exists():
        raise argparse.ArgumentTypeError(f"{verb} {path}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{verb} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{verb} {path}: the folder {parent} is not writable")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wbg",
        description="Wide band-gap discovery studio: data, models, active learning, screening, structures.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .composition.parse import FormulaError
    from .data.registry import DataError
    from .models.errors import ModelError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or an argument error already printed: the code, as for UserError
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except (UserError, FormulaError, DataError, ModelError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
