"""`wbg data` (bundled data status) and `wbg parse` (formula checks)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="show the bundled data: sizes, coverage of the 87 x 8 encoding, checksums")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_data)
    p = sub.add_parser("parse", help="parse formulas: canonical form, encodability, SMACT validity")
    p.add_argument("formulas", nargs="+", metavar="FORMULA")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_parse)


def data_summary() -> dict:
    from collections import Counter

    from ..data import load_bandgaps, load_structures, split
    from ..data.registry import load_registry

    df = load_bandgaps()
    pool = load_structures()
    reasons = Counter(
        e.split(": ", 1)[1].split(" (")[0] for e in df["encode_error"].dropna()
    )
    splits = {s: {k: len(v) for k, v in split(df, subset=s).items()} for s in ("full", "nonmetal")}
    return {
        "compositions": len(df),
        "nonmetal_compositions": int((df["band_gap"] > 0).sum()),
        "encodable": int(df["encodable"].sum()),
        "not_encodable": dict(reasons),
        "max_band_gap": float(df["band_gap"].max()),
        "structures": len(pool),
        "structure_formulas": int(pool.meta["formula"].nunique()),
        "splits_seed0": splits,
        "files": {k: v["sha256"] for k, v in load_registry()["files"].items()},
    }


def _data(args) -> int:
    from ..cli import print_json

    summary = data_summary()
    if args.json:
        print_json(summary)
        return 0
    print(f"compositions: {summary['compositions']:,} ({summary['nonmetal_compositions']:,} with gap > 0)")
    print(f"encodable in 87 x 8: {summary['encodable']:,}; not: {summary['not_encodable']}")
    print(f"template structures: {summary['structures']:,} of {summary['structure_formulas']:,} formulas")
    for subset, parts in summary["splits_seed0"].items():
        print(f"split (seed 0, {subset}): " + ", ".join(f"{k} {v:,}" for k, v in parts.items()))
    print("checksums verified for: " + ", ".join(summary["files"]))
    return 0


def parse_rows(formulas: list[str]) -> list[dict]:
    from ..composition import FormulaError, compound_verdict, encode_counts, reduced_formula, smact_valid

    rows = []
    for text in formulas:
        try:
            canon = reduced_formula(text)
        except FormulaError as exc:
            rows.append({"input": text, "formula": None, "error": str(exc)})
            continue
        enc = encode_counts([canon])
        rows.append({
            "input": text,
            "formula": canon,
            "encodable": bool(enc.ok[0]),
            "encode_error": enc.error(0),
            "compound_valid": (v := compound_verdict(canon)).valid,
            "validity_reason": v.reason or None,
            "paper_rule_valid": bool(smact_valid([canon])[0]),
            "error": None,
        })
    return rows


def _parse(args) -> int:
    from ..cli import print_json

    rows = parse_rows(args.formulas)
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            if r["error"]:
                print(f"{r['input']}: error: {r['error']}")
            else:
                enc = "encodable" if r["encodable"] else f"not encodable ({r['encode_error']})"
                rule = "a valid compound" if r["compound_valid"] else f"not a valid compound ({r['validity_reason']})"
                print(f"{r['input']} -> {r['formula']}: {enc}; {rule}")
    return 0 if all(r["error"] is None for r in rows) else 2
