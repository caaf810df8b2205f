"""The Active learning page's campaign store: one folder per campaign, named by an
unguessable id that the page's URL carries, so a reload or a shared link reopens it and
nothing else lists it (Streamlit-free, so it is tested without a browser)."""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

# The Active learning page keeps each campaign in its own folder, named by an unguessable id
# (secrets.token_urlsafe(16): 22 URL-safe characters) that the page puts in the URL, so a reload
# or the same link in another tab reopens it. Nothing lists the folders: a browser knows the ids
# it created or was given a link to. Ids from a URL are checked against CAMPAIGN_ID before they
# become a path, so a link cannot name anything outside the store.
CAMPAIGN_ID = re.compile(r"[A-Za-z0-9_-]{22}")
APP_CAMPAIGNS = "app"  # the store: <campaigns dir>/app/<id>/ (the CLI's campaigns sit beside it)
STALE_AFTER_S = 24 * 3600  # a campaign with no completed round untouched this long is removed


class CampaignLinkError(ValueError):
    """A campaign id from a link that is malformed or names no campaign; the message says which."""


def new_campaign_id() -> str:
    import secrets

    return secrets.token_urlsafe(16)


def campaign_store(campaigns_dir: Path) -> Path:
    return Path(campaigns_dir) / APP_CAMPAIGNS


def campaign_folder(campaigns_dir: Path, cid: str, must_exist: bool = True) -> Path:
    """The folder of campaign `cid`; CampaignLinkError when the id is malformed or (must_exist) unknown."""
    if not isinstance(cid, str) or not CAMPAIGN_ID.fullmatch(cid):
        shown = cid if isinstance(cid, str) and len(cid) <= 40 else f"{str(cid)[:40]}…"
        raise CampaignLinkError(f"{shown!r} is not a campaign id (22 letters, digits, '-' or '_')")
    store = campaign_store(campaigns_dir)
    folder = store / cid
    if folder.resolve().parent != store.resolve():  # the pattern allows no separator; belt and braces
        raise CampaignLinkError(f"{cid!r} is not a campaign id")
    if must_exist and not (folder / "state.json").is_file():
        raise CampaignLinkError(f"campaign {cid} does not exist on this server: the link is mistyped, or the "
                                f"campaign was removed (campaigns without a completed round go after a day)")
    return folder


def parse_campaign_ids(text: str | None) -> tuple[list[str], list[str]]:
    """(well-formed ids, malformed entries) of a comma-separated list from a URL, order kept, no repeats."""
    good: list[str] = []
    bad: list[str] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if CAMPAIGN_ID.fullmatch(part):
            if part not in good:
                good.append(part)
        else:
            bad.append(part[:40])
    return good, bad


def write_campaign_label(folder: Path, name: str) -> None:
    """The campaign's display name, beside the campaign's own files (Campaign.load ignores it)."""
    (Path(folder) / "app.json").write_text(json.dumps({"name": name, "created": dt.datetime.now().isoformat(
        timespec="seconds")}))


def _rounds_done(folder: Path) -> int:
    try:
        return int(json.loads((Path(folder) / "state.json").read_text()).get("rounds_done", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


def campaign_summary(folder: Path) -> dict:
    """id, name and completed rounds of a campaign folder (for the page's list of this browser's campaigns)."""
    folder = Path(folder)
    try:
        name = json.loads((folder / "app.json").read_text()).get("name") or folder.name
    except (OSError, ValueError, AttributeError):
        name = folder.name
    return {"id": folder.name, "name": str(name), "rounds": _rounds_done(folder)}


def _last_touched(folder: Path) -> float:
    paths = [folder, folder / "state.json", *(p for p in folder.iterdir() if p.is_dir())]
    times = []
    for p in paths:
        try:
            times.append(p.stat().st_mtime)
        except OSError:
            pass
    return max(times, default=0.0)


def clean_stale_campaigns(campaigns_dir: Path, max_age_s: float = STALE_AFTER_S,
                          now: float | None = None) -> list[Path]:
    """Remove the app's campaign folders that hold no completed round and were last touched more
    than max_age_s ago: <store>/<id>/ folders, and the session-<hex>/ folders of earlier versions
    when none of their campaigns completed a round. Returns what was removed. CLI campaigns
    (other folders of the campaigns directory) are never touched."""
    import shutil
    import time

    root = Path(campaigns_dir)
    now = time.time() if now is None else now
    removed: list[Path] = []

    def stale(folder: Path, campaigns: list[Path]) -> bool:
        if any(_rounds_done(c) > 0 for c in campaigns):
            return False
        return now - max([_last_touched(folder)] + [_last_touched(c) for c in campaigns]) > max_age_s

    candidates: list[tuple[Path, list[Path]]] = []
    store = campaign_store(root)
    if store.is_dir():
        candidates += [(d, [d]) for d in store.iterdir() if d.is_dir() and CAMPAIGN_ID.fullmatch(d.name)]
    if root.is_dir():
        for d in root.iterdir():
            if d.is_dir() and re.fullmatch(r"session-[0-9a-f]{12}", d.name):
                candidates.append((d, [c for c in d.iterdir() if c.is_dir()]))
    for folder, campaigns in candidates:
        try:
            if stale(folder, campaigns):
                shutil.rmtree(folder)
                removed.append(folder)
        except OSError:  # another process is removing or writing it: leave it for next time
            continue
    return removed


