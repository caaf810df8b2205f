"""The Active learning page's campaign store: one folder per campaign, named by an
unguessable id that the page's URL carries, so a reload or a shared link reopens it and
nothing else lists it (Streamlit-free, so it is tested without a browser)."""
from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

# The Active learning page keeps each campaign in its own folder, named by an unguessable id
# (secrets.token_urlsafe(16): 22 URL-safe characters) that the page puts in the URL, so a reload
# or the same link in another tab reopens it. Nothing lists the folders: a browser knows the ids
# it created or was given a link to. Ids from a URL are checked against CAMPAIGN_ID before they
# become a path, so a link cannot name anything outside the store.
CAMPAIGN_ID = re.compile(r"[A-Za-z0-9_-]{22}")
APP_CAMPAIGNS = "app"  # the store: <campaigns dir>/app/<id>/ (the CLI's campaigns sit beside it)
STALE_AFTER_S = 24 * 3600  # a campaign with no completed round untouched this long is removed
UPLOAD_PREFIX = ".upload-"  # <store>/.upload-*/: a zip being checked; renamed to <store>/<id>/ when it passes


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
        for d in store.glob(f"{UPLOAD_PREFIX}*"):  # an upload whose process died while checking it
            if d.is_dir() and now - _last_touched(d) > 3600:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
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




# ---------------------------------------------------------------- campaign zips
def campaign_zip(folder: Path) -> bytes:
    """The campaign's shipped files (no lock, no half-written temp), as 'Download campaign' serves them."""
    from ..engine.campaign_store import name_kind

    folder = Path(folder)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            rel = p.relative_to(folder).as_posix()
            if p.is_file() and not p.is_symlink() and name_kind(rel, False) == "shipped":
                zf.write(p, rel)
    return buf.getvalue()


def _check_zip_entries(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The files to extract; CampaignError for anything a campaign zip never holds, before any byte is written."""
    from ..engine.campaign import CampaignError
    from ..engine.campaign_store import name_kind
    from ..settings import get_settings

    limits = get_settings()
    infos = zf.infolist()
    if len(infos) > limits.upload_max_files:
        raise CampaignError(f"the zip holds {len(infos)} entries; a campaign upload may hold at most "
                            f"{limits.upload_max_files}")
    total = sum(i.file_size for i in infos)
    if total > limits.upload_max_unpacked_mb * 1e6:
        raise CampaignError(f"the zip unpacks to {total / 1e6:.1f} MB; a campaign upload may unpack to at most "
                            f"{limits.upload_max_unpacked_mb:g} MB")
    files, seen = [], set()
    for i in infos:
        name = i.filename
        shown = name[:80]
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or re.match(r"[A-Za-z]:", name):
            raise CampaignError(f"the zip holds an unsafe path: {shown!r}")
        kind = stat.S_IFMT(i.external_attr >> 16)  # 0 when the zip records no Unix file type
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise CampaignError(f"the zip holds a link or special file: {shown!r}")
        rel = name.rstrip("/")
        if name_kind(rel, i.is_dir()) != "shipped":
            raise CampaignError(f"the zip holds {shown!r}, which a campaign never holds (a campaign zip has "
                                "state.json, config.json, seeds.csv, seeds_z.npy and rounds/NNNN/ at its top level)")
        if rel in seen:
            raise CampaignError(f"the zip holds {shown!r} twice")
        seen.add(rel)
        if not i.is_dir():
            files.append(i)
    return files


def import_campaign_zip(data: bytes, campaigns_dir: Path, cid: str, label: str | None = None) -> Path:
    """Unpack a campaign zip into a hidden folder of the store, check it (names, sizes, then
    Campaign.load's schema) and only then rename it to <store>/<cid>/. Every refusal is a
    CampaignError whose message names no server path, and leaves nothing behind."""
    from ..engine.campaign import Campaign, CampaignDamaged, CampaignError
    from ..settings import get_settings

    target = campaign_folder(campaigns_dir, cid, must_exist=False)
    if target.exists():
        raise CampaignError(f"campaign {cid} already exists")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
        raise CampaignError("the upload is not a readable zip file") from exc
    budget = int(get_settings().upload_max_unpacked_mb * 1e6)
    tmp: Path | None = None
    try:
        with zf:
            files = _check_zip_entries(zf)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=UPLOAD_PREFIX))
            for info in files:
                out = tmp / info.filename
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "xb") as dst:
                    while chunk := src.read(1 << 20):  # counted as written: a header may lie about sizes
                        budget -= len(chunk)
                        if budget < 0:
                            raise CampaignError("the zip unpacks to more than "
                                                f"{get_settings().upload_max_unpacked_mb:g} MB")
                        dst.write(chunk)
        try:
            Campaign.load(tmp, autoencoder=None, labeller=None)  # the schema check: no model needed
        except CampaignDamaged as exc:
            raise CampaignError(f"the campaign in the zip is damaged: {exc.detail}") from None
        except CampaignError:
            raise CampaignError("the zip holds no state.json: it is not a campaign") from None
        if label is not None:
            write_campaign_label(tmp, label)
        os.rename(tmp, target)
        return target
    except CampaignError:
        _remove(tmp)
        raise
    except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
        _remove(tmp)
        log.warning("campaign zip upload %s refused: %r", cid, exc)
        raise CampaignError("the zip could not be unpacked (corrupt, encrypted or an unsupported compression)") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def public_message(exc: Exception, folder: Path) -> str:
    """The error without the server's path of the campaign folder (a page shows it to anyone)."""
    text = str(exc)
    for p in {str(Path(folder)), str(Path(folder).resolve())}:
        text = text.replace(f"campaign {p}", "this campaign").replace(p, "this campaign")
    return text[:1].upper() + text[1:]
