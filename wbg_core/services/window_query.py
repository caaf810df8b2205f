"""Band-gap window links: every input of one screening as URL parameters, parsed back with
a message per bad parameter (Streamlit-free, so it is tested without a browser)."""
from __future__ import annotations

import re
from dataclasses import dataclass

WINDOW_POOLS = (2_000, 10_000, 50_000, 200_000, 1_000_000, 5_000_000)  # above 200,000: a background job
WINDOW_MODELS = {"oracle": "oracle (Roost ensemble)", "rf_mp": "random forest on random MP data",
                 "rf_al": "random forest on my AL campaign"}
WINDOW_GENERATORS = {"gan": "GAN (the paper's MATGAN route)",
                     "latent": "autoencoder latent sampling (the AL search space)"}
GAP_LIMITS = (0.0, 12.0)  # eV: the page's window slider
METAL_GAP = 0.1  # eV: a predicted gap below this is a metal (left out of the window histogram)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def split_elements(text: str) -> tuple[str, ...]:
    """Element symbols from 'F, Sr' or 'F Sr' (order kept, no repeats)."""
    return tuple(dict.fromkeys(p for p in re.split(r"[\s,;]+", text or "") if p))


@dataclass(frozen=True)
class WindowQuery:
    """Every input of one band-gap window screening: what the page's form holds, what a window
    link carries (to_query / from_query) and the key its result is cached under."""

    gap_min: float = 3.0
    gap_max: float | None = 5.0  # None: no upper bound
    p_min: float = 0.5
    max_atoms: int = 7
    max_elements: int = 3
    require: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    novel: bool = True
    valid_only: bool = True
    allow_elements_and_alloys: bool = False
    pool: int = 10_000
    seed: int = 0
    model: str = "oracle"
    generator: str = "gan"

    KEYS = ("gap_min", "gap_max", "p_min", "max_atoms", "max_elements", "require", "exclude", "novel",
            "valid_only", "allow_elements_and_alloys", "pool", "seed", "model", "generator")

    def to_query(self) -> dict[str, str]:
        """URL parameters (every field; gap_max absent means no upper bound, empty element lists absent)."""
        q: dict[str, str] = {}
        for k in self.KEYS:
            v = getattr(self, k)
            if v is None or v == ():
                continue
            q[k] = ("1" if v else "0") if isinstance(v, bool) else ",".join(v) if isinstance(v, tuple) else (
                f"{v:g}" if isinstance(v, float) else str(v))
        return q

    @classmethod
    def is_link(cls, query) -> bool:
        return any(k in query for k in cls.KEYS)

    @classmethod
    def from_query(cls, query) -> tuple["WindowQuery", list[str]]:
        """(the query, problems) from URL parameters. A missing parameter takes its default, except
        that a link with gap_min and no gap_max is open above (and one with only gap_max starts at
        0 eV). Each bad parameter gives one problem naming it, and its default is used instead."""
        from ..composition import VOCAB

        d = cls()
        problems: list[str] = []
        raw = {k: (v[-1] if isinstance(v, list) else v) for k, v in dict(query).items() if k in cls.KEYS}
        raw = {k: str(v).strip() for k, v in raw.items()}
        vals: dict = {}

        def number(key, kind, lo, hi):
            if key not in raw:
                return None
            try:
                v = kind(float(raw[key])) if kind is int else float(raw[key])
                if kind is int and float(raw[key]) != int(float(raw[key])):
                    raise ValueError
            except (ValueError, OverflowError):
                problems.append(f"{key}={raw[key]!r} is not {'a whole number' if kind is int else 'a number'}")
                return None
            if not (lo <= v <= hi) or v != v:
                problems.append(f"{key}={raw[key]} is outside {lo:g}–{hi:g}")
                return None
            return v

        lo, hi = GAP_LIMITS
        has_min, has_max = "gap_min" in raw, "gap_max" in raw
        open_top = has_max and raw["gap_max"].lower() in ("", "inf", "none", "open")
        a = number("gap_min", float, lo, hi)
        b = None if open_top else number("gap_max", float, lo, hi)
        bad_window = (has_min and a is None) or (has_max and not open_top and b is None)
        if not bad_window and (has_min or has_max):
            a = lo if a is None else a
            if b is not None and not a < b:
                problems.append(f"the window gap_min={a:g} – gap_max={b:g} eV is not valid: gap_min must be "
                                "below gap_max")
            else:
                vals["gap_min"], vals["gap_max"] = round(a, 2), None if b is None else round(b, 2)
        for key, kind, lo_, hi_ in (("p_min", float, 0.0, 1.0), ("max_atoms", int, 2, 40),
                                    ("max_elements", int, 2, 8), ("seed", int, 0, 10_000)):
            v = number(key, kind, lo_, hi_)
            if v is not None:
                vals[key] = v
        if "pool" in raw:
            v = number("pool", int, 1, 10**9)
            if v is not None and v not in WINDOW_POOLS:
                problems.append(f"pool={raw['pool']} is not one of {', '.join(f'{p:,}' for p in WINDOW_POOLS)}")
            elif v is not None:
                vals["pool"] = v
        for key in ("require", "exclude"):
            if key in raw:
                els = split_elements(raw[key])
                unknown = [e for e in els if e not in VOCAB]
                if unknown:
                    problems.append(f"{key}={raw[key]!r}: {', '.join(unknown)} "
                                    f"{'is not an element' if len(unknown) == 1 else 'are not elements'} "
                                    "of the 87-element vocabulary")
                else:
                    vals[key] = els
        both = set(vals.get("require", ())) & set(vals.get("exclude", ()))
        if both:
            problems.append(f"require and exclude both name {', '.join(sorted(both))}")
            vals.pop("require"), vals.pop("exclude")
        for key in ("novel", "valid_only", "allow_elements_and_alloys"):
            if key in raw:
                t = raw[key].lower()
                if t in _TRUE | _FALSE:
                    vals[key] = t in _TRUE
                else:
                    problems.append(f"{key}={raw[key]!r} is not 1 or 0")
        for key, allowed in (("model", WINDOW_MODELS), ("generator", WINDOW_GENERATORS)):
            if key in raw:
                if raw[key] in allowed:
                    vals[key] = raw[key]
                else:
                    problems.append(f"{key}={raw[key]!r} is not one of {', '.join(allowed)}")
        from dataclasses import replace

        return replace(d, **vals), problems
