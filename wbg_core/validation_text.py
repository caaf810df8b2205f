"""One wording for pydantic validation errors, wherever a file is checked (checkpoint configs,
campaign files): `key = value is out of range lo..hi`, `key is missing`, `key is not a known key`."""
from __future__ import annotations

import json


def describe(err: dict) -> str:
    """One pydantic error as `key = value is out of range lo..hi`, `key is not a known key`, ..."""
    loc = ".".join(str(p) for p in err["loc"]) or "the file"
    if err["type"] == "missing":
        return f"{loc} is missing"
    if err["type"] == "extra_forbidden":
        return f"{loc} is not a known key"
    msg = err["msg"].removeprefix("Value error, ")
    try:
        value = json.dumps(err["input"])
    except (TypeError, ValueError):
        value = repr(err["input"])
    value = value if len(value) <= 60 else value[:57] + "..."
    return f"{loc} = {value} is {msg}" if msg.startswith("out of range") else f"{loc} = {value}: {msg}"


def describe_errors(exc, where: str, limit: int = 3) -> str:
    """`where: problem; problem; problem (and N more)` for a pydantic ValidationError."""
    problems = [describe(e) for e in exc.errors(include_url=False)]
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return f"{where}: {'; '.join(problems[:limit])}{more}"
