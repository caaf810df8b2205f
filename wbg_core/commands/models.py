"""`wbg predict`, `wbg reconstruct`, `wbg generate`: the shipped models from the command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import int_in, output_file, seed, write_output


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="band gap (mean and std, eV) of formulas by the oracle ensemble")
    p.add_argument("formulas", nargs="*", metavar="FORMULA")
    p.add_argument("--input", type=Path, help="CSV with a 'formula' column (or one column of formulas)")
    p.add_argument("--output", type=output_file, help="write CSV: formula, band_gap_mean, band_gap_std, p_nonmetal, mp_band_gap, mp_label_source, error")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_predict)
    p = sub.add_parser("reconstruct", help="autoencoder round trip per formula")
    p.add_argument("formulas", nargs="*", metavar="FORMULA")
    p.add_argument("--input", type=Path)
    p.add_argument("--output", type=output_file, help="write CSV: formula, reconstructed, match, error")
    p.add_argument("--no-refine", action="store_true",
                   help="the encoder network's codes only, without refining those that miss (docs/models.md)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_reconstruct)
    p = sub.add_parser("generate", help="sample formulas from the generator (duplicates kept)")
    p.add_argument("-n", type=int_in(1, 5_000_000), default=1000)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--output", type=output_file, help="write CSV: formula, valid, paper_rule_valid, compound_valid")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_generate)


def read_formula_csv(path: Path) -> list[str]:
    """Formulas from a user CSV, one per row in order (an empty row stays, as a row with an error);
    the column is chosen as the page's reader chooses it; clear errors."""
    import pandas as pd

    from ..cli import UserError
    from ..services.inputs import formula_column

    if not path.exists():
        raise UserError(f"input file {path} does not exist")
    if path.is_dir():
        raise UserError(f"input file {path} is a folder; give a CSV file")
    try:
        df = pd.read_csv(path, keep_default_na=False, dtype=str, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a readable CSV: {exc}") from exc
    try:
        column = formula_column(df)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from exc
    if df.empty:
        raise UserError(f"{path} has a header ({', '.join(map(str, df.columns))}) but no rows of formulas")
    return df[column].tolist()


def _inputs(args) -> list[str]:
    from ..cli import UserError

    formulas = list(args.formulas)
    if args.input:
        formulas += read_formula_csv(args.input)
    if not formulas:
        raise UserError("give formulas as arguments or --input CSV")
    return formulas


def _emit(df, args) -> None:
    from ..cli import print_json

    if args.output:  # checked by cli.output_file before the work
        write_output(args.output, lambda path: df.to_csv(path, index=False))
        print(f"wrote {len(df)} rows to {args.output}", file=sys.stderr)
    if args.json:
        print_json(df.astype(object).where(df.notna(), None).to_dict(orient="records"))
    elif not args.output:
        print(df.astype(object).where(df.notna(), "").to_string(index=False))


def _predict(args) -> int:
    from ..models import load_oracle

    formulas = _inputs(args)
    df = load_oracle().predict(formulas).frame()  # a missing or corrupt checkpoint: ModelError, one line from cli.main
    for col in ("band_gap_mean", "band_gap_std", "p_nonmetal"):
        df[col] = df[col].round(4)
    df = with_known_labels(df)
    _emit(df, args)
    return 0


def with_known_labels(df):
    """Add mp_band_gap and mp_label_source (where the bundled value comes from) before `error`."""
    from ..services.known import build_known_data
    from ..composition import FormulaError, reduced_formula

    known = build_known_data()
    gaps, sources = [], []
    for f, err in zip(df["formula"], df["error"]):
        gap = where = None
        if not (isinstance(err, str) and err):
            try:
                gap, _, where = known.lookup(reduced_formula(f))
            except FormulaError:
                pass
        gaps.append(gap)
        sources.append(where)
    out = df.drop(columns="error")
    out["mp_band_gap"] = gaps
    out["mp_label_source"] = sources
    out["error"] = df["error"]
    return out


def reconstruct_table(formulas: list[str], refine: bool = True):
    import pandas as pd

    from ..composition import canonical_formula
    from ..models import load_autoencoder

    ae = load_autoencoder()
    z, ok, errors = ae.encode_formulas(formulas, refine=refine)
    rec = ae.decode(z[ok]) if ok.any() else []
    out = pd.DataFrame({"formula": formulas, "reconstructed": None, "match": False, "error": errors})
    idx = [i for i in range(len(formulas)) if ok[i]]
    for j, i in enumerate(idx):
        out.at[i, "reconstructed"] = rec[j]
        out.at[i, "match"] = rec[j] == canonical_formula(formulas[i])
        if rec[j] is None:
            out.at[i, "error"] = "decodes to no valid formula"
    return out


def _reconstruct(args) -> int:
    _emit(reconstruct_table(_inputs(args), refine=not args.no_refine), args)
    return 0


def _generate(args) -> int:
    from ..models import load_gan

    df = load_gan().sample(args.n, seed=args.seed)
    _emit(df, args)
    return 0
