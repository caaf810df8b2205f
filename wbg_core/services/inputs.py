"""Formula input: pasted text and uploaded CSVs read into formulas, counting what was skipped
so the page can say so (Streamlit-free)."""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import pandas as pd

from ..composition import FormulaError, reduced_formula

MAX_FORMULAS = 2000  # rows one oracle request may hold

_SEPARATORS = r"[,;\t]"


def split_formula_text(text: str) -> list[str]:
    """Formulas from pasted text: one per line, or separated by commas, semicolons or tabs."""
    return read_formula_text(text).formulas


@dataclass
class FormulaInput:
    """Formulas read from pasted text or a CSV, and what was skipped on the way (said on the page)."""

    formulas: list[str]
    blank_lines: int = 0  # whitespace-only lines (inside the text; trailing ones do not count)
    empty_entries: int = 0  # empty fields between separators, or CSV rows with an empty formula cell
    notes: list[str] | None = None
    empty_word: tuple[str, str] = ("empty entry", "empty entries")

    def skipped_message(self) -> str | None:
        """One sentence on what was skipped ("2 blank lines skipped"), or None."""
        parts = []
        if self.blank_lines:
            parts.append(plural(self.blank_lines, "blank line"))
        if self.empty_entries:
            parts.append(plural(self.empty_entries, *self.empty_word))
        return " and ".join(parts) + " skipped" if parts else None


def read_formula_text(text: str) -> FormulaInput:
    """Formulas from pasted text (one per line, or separated by commas, semicolons or tabs),
    counting the blank lines and empty entries skipped so the page can say so."""
    lines = (text or "").rstrip().split("\n") if (text or "").strip() else []
    out, blank, empty = [], 0, 0
    for line in lines:
        if not line.strip():
            blank += 1
            continue
        fields = [f.strip() for f in re.split(_SEPARATORS, line)]
        if fields and not fields[-1]:  # a trailing separator ("NaCl,") is not an entry
            fields = fields[:-1]
        empty += sum(1 for f in fields if not f)
        out += [f for f in fields if f]
    return FormulaInput(out, blank, empty)


def _decode_csv(data: bytes) -> str:
    """Text of an uploaded CSV: UTF-8 (with or without BOM) or UTF-16 with a BOM; ValueError otherwise."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ValueError(f"it starts like UTF-16 text but is not ({exc.reason})") from exc
    if b"\x00" in data[:4096]:
        raise ValueError("it is a binary file, not a text CSV")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"it is not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start}); "
                         "save it as CSV UTF-8") from exc


def formula_column(df) -> str:
    """The column holding formulas: 'formula' (any case, spaces ignored), else the only column;
    ValueError otherwise (the page's reader and the CLI's share it)."""
    cols = {str(c).strip().lower(): c for c in df.columns}
    if "formula" in cols:
        return cols["formula"]
    if len(df.columns) == 1:
        return df.columns[0]
    raise ValueError(f"it has columns {[str(c) for c in df.columns]}; it needs a 'formula' column")


def read_formula_csv(data: bytes) -> FormulaInput:
    """Formulas from an uploaded CSV: a 'formula' column, else the only column (comma, semicolon
    or tab separated). ValueError says why a file cannot be read; blank lines and rows with an
    empty formula are counted, not silently dropped; a header that is itself a formula (a file
    of bare formulas) is kept as the first formula, with a note."""
    text = _decode_csv(data)
    if not text.strip():
        raise ValueError("the file is empty")
    first = text.lstrip("\n").split("\n", 1)[0]
    sep = max((",", ";", "\t"), key=first.count) if any(s in first for s in ",;\t") else ","
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, keep_default_na=False, dtype=str, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        msg = str(exc).strip().replace("Error tokenizing data. C error: ", "")
        raise ValueError(f"it is not a readable CSV: {msg}") from exc
    notes: list[str] = []
    col = formula_column(df)
    cols = {str(c).strip().lower(): c for c in df.columns}
    values = [str(s).strip() for s in df[col].tolist()]
    header = str(col).strip()
    if col is not cols.get("formula") and any(ch.isupper() for ch in header):
        try:
            reduced_formula(header)
            values.insert(0, header)
            notes.append(f"the first line ({header}) is a formula, not a column name: read as one")
        except FormulaError:
            pass
    whole_blank = df.apply(lambda r: all(not str(v).strip() for v in r), axis=1).tolist()
    if len(values) > len(whole_blank):
        whole_blank.insert(0, False)
    while values and not values[-1] and whole_blank and whole_blank[-1]:  # trailing blank lines
        values.pop()
        whole_blank.pop()
    blank = sum(1 for v, b in zip(values, whole_blank) if not v and b)
    empty = sum(1 for v, b in zip(values, whole_blank) if not v and not b)
    return FormulaInput([v for v in values if v], blank, empty, notes,
                        ("row without a formula", "rows without a formula"))


def read_formula_csv_bytes(data: bytes) -> list[str]:
    """Formulas from an uploaded CSV (read_formula_csv without the counts); ValueError says why."""
    return read_formula_csv(data).formulas


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 candidate', '2 candidates', '1,200 formulas' (many: an irregular plural)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"
