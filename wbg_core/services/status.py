"""Status of data and models for the home and models pages: the data files, each model's card
and headline numbers, and the checkpoint sets the app may switch to (the jobs that train
them are in services.jobs)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from ..models import MODEL_NAMES
from .jobs import JobError, offered, refuse_in_public


def data_status(data_dir: Path | None = None) -> list[dict]:
    from ..settings import get_settings

    root = Path(data_dir or get_settings().data_dir)
    try:
        reg = json.loads((root / "registry.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [{"file": "registry.json", "present": False, "error": str(exc)}]
    out = []
    for name, info in reg.get("files", {}).items():
        p = root / name
        out.append({"file": name, "present": p.exists(), "rows": info.get("rows"),
                    "MB": round(info.get("bytes", 0) / 1e6, 1), "licence": info.get("licence"),
                    "modified": _mtime(p)})
    return out


def _mtime(p: Path) -> str | None:
    try:
        return dt.datetime.fromtimestamp(p.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d")
    except OSError:
        return None


def headline_metrics(name: str, card: dict) -> dict[str, str]:
    """A few numbers per model card for the home page and the models page."""
    m = card.get("metrics") or {}
    out: dict[str, str] = {}
    if name == "autoencoder":
        for key, label in (("reconstruction_rate_strict", "test reconstruction"),
                           ("reconstruction_rate_strict_amortised", "encoder network alone"),
                           ("random_box_valid_strict", "random-point valid decodes")):
            if key in m:
                out[label] = f"{100 * m[key]:.1f}%"
    elif name == "oracle":
        t = m.get("test_full") or {}
        if "mae" in t:
            out["test MAE"] = f"{t['mae']:.3f} eV"
        if "r2" in t:
            out["test R²"] = f"{t['r2']:.3f}"
    elif name == "gan":
        for key, val in m.items():
            if isinstance(val, float) and any(s in key for s in ("valid", "novel", "unique")):
                out[key.replace("_", " ")] = f"{100 * val:.1f}%" if val <= 1 else f"{val:.3g}"
            if len(out) >= 3:
                break
    return out


def head_summary(card: dict) -> str | None:
    """One line on how the oracle's head turns the members' outputs into the shown gap, read from
    its calibration: a scientist comparing two checkpoints needs to know which head each has."""
    cal = (card.get("head") or {}).get("calibration") if isinstance(card.get("head"), dict) else None
    if not isinstance(cal, dict):
        return None
    k_reg, k_stack = int(cal.get("regressor_boosters", 1)), int(cal.get("classifier_stack_boosters", 0))
    rounds = cal.get("regressor_rounds", "?")
    rounds = f"{rounds} round{'' if rounds == 1 else 's'}"
    gap = (f"the mean of {k_reg} LightGBM regressors cross-fitted on the validation split ({rounds} each)"
           if cal.get("regressor_fit_on") == "validation" else f"one LightGBM regressor on the train split ({rounds})")
    p = ("a classifier on composition statistics, with " + (f"{k_stack} classifiers cross-fitted on the validation "
         "split stacked on it (they also read the members' outputs)" if k_stack else "nothing stacked on it"))
    shown = ("P(non-metal) × the mean of the non-metal gap's calibrated distribution" if cal.get("point") == "mean"
             else "P(non-metal) × the regressor's gap")
    return f"gap of a non-metal: {gap}; P(non-metal): {p}; shown gap: {shown}; σ calibrated on the validation split"


def read_card(directory: Path) -> dict:
    """A model's card.json, or {"error": ...} naming it by set and model only (the app shows it)."""
    path = Path(directory) / "card.json"
    shown = f"{path.parent.parent.name}/{path.parent.name}/card.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {"error": f"{shown} is missing"}
    except OSError as exc:
        return {"error": f"{shown} is unreadable: {exc.strerror}"}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {"error": f"{shown} is unreadable: {exc}"}


def model_status(dirs: dict[str, Path] | Path | None = None) -> list[dict]:
    """Per model: ok, error, created date, epochs, headline metrics, training command.

    dirs: one models directory (holding autoencoder/, oracle/, gan/) or {model: its directory}.
    """
    from ..settings import get_settings

    if not isinstance(dirs, dict):
        root = Path(dirs or get_settings().models_dir)
        dirs = {m: root / m for m in MODEL_NAMES}
    cards = {m: read_card(dirs[m]) for m in MODEL_NAMES}
    out = []
    for name in MODEL_NAMES:
        card = cards[name]
        out.append({"model": name, "ok": "error" not in card, "error": card.get("error"),
                    "created": (card.get("created") or "")[:10] or None,
                    "device": card.get("device"), "epochs": card.get("epochs"),
                    "metrics": headline_metrics(name, card) if "error" not in card else {},
                    "command": card.get("command")})
    return out


def checkpoint_sets(shipped: Path, runs_dir: Path) -> dict[str, Path]:
    """Label -> models directory every visitor may switch to: the shipped set first, then the
    app-trained sets their starter confirmed (newest first; never a running, failed or
    cancelled job's folder). Public mode offers the shipped set only."""
    from ..settings import get_settings

    out = {"shipped": Path(shipped)}
    if get_settings().public:
        return out
    if Path(runs_dir).exists():
        for d in sorted(Path(runs_dir).iterdir(), reverse=True):
            if d.is_dir() and offered(d):
                out[d.name] = d
    return out


def choose_set(label: str, shipped: Path, runs_dir: Path) -> Path:
    """The directory of a set the whole app may switch to; PublicModeError in public mode,
    JobError for a label that is not offered (a crafted one, or a job not confirmed)."""
    refuse_in_public("switching checkpoints")
    sets = checkpoint_sets(shipped, runs_dir)
    if label not in sets:
        raise JobError(f"{label!r} is not a checkpoint set this server offers")
    return sets[label]


ACTIVE_FILE = "active_set.json"  # in the app's runs folder: which set the whole server uses


def active_set(shipped: Path, runs_dir: Path) -> tuple[str, Path]:
    """(label, directory) of the set the whole server uses, as switch_set recorded it in a file, so
    every server process reads the same choice and a restart keeps it. The shipped set in public
    mode, when nothing was chosen, or when the chosen set is no longer offered (its folder gone)."""
    from ..settings import get_settings

    if get_settings().public:
        return "shipped", Path(shipped)
    try:
        label = json.loads((Path(runs_dir) / ACTIVE_FILE).read_text()).get("label")
    except (OSError, ValueError, AttributeError):
        label = None
    sets = checkpoint_sets(shipped, runs_dir) if label and label != "shipped" else {}
    return (label, sets[label]) if label in sets else ("shipped", Path(shipped))


def switch_set(label: str, shipped: Path, runs_dir: Path) -> Path:
    """Make an offered set the whole server's (choose_set's checks), recorded for every process."""
    from ..files import atomic_write_text

    directory = choose_set(label, shipped, runs_dir)
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(runs_dir) / ACTIVE_FILE, json.dumps(
        {"label": label, "chosen": dt.datetime.now().isoformat(timespec="seconds")}) + "\n")
    return directory


def complete_set(directory: Path, fallback: Path) -> dict[str, Path]:
    """Directory of each model: from `directory` when it holds that model, else from `fallback`."""
    return {m: (Path(directory) / m if (Path(directory) / m / "card.json").exists() else Path(fallback) / m)
            for m in MODEL_NAMES}
