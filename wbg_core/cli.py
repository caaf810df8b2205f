"""`wbg` / `python -m wbg_core`: one argparse CLI; each feature registers its subcommands.

A command module exposes `register(subparsers)`; handlers import their heavy dependencies
lazily so that `--help` stays instant. Handlers return an exit code; user errors are raised
as UserError (or FormulaError / DataError / ModelError) and printed as one line, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

COMMAND_MODULES = [
    "wbg_core.commands.data",
    "wbg_core.commands.bench",
    "wbg_core.commands.structure",
    "wbg_core.commands.train",
    "wbg_core.commands.models",
    "wbg_core.commands.latent_map",
    "wbg_core.commands.engine",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    args = parser.parse_args(argv)
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
