"""What every page of the Streamlit app shares: models and data loaded once per server
(st.cache_resource), the app-wide choice of checkpoints, per-session folders and the URL state.

Pages stay thin: they lay out widgets and call wbg_core (computing lives in wbg_core).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent

from wbg_core.settings import get_settings

def _load_errors():
    from wbg_core.data import DataError
    from wbg_core.models import ModelError

    return (ModelError, DataError, FileNotFoundError, OSError, ValueError, KeyError)


@dataclass(frozen=True)
class PageInfo:
    path: str  # relative to the repository root
    title: str  # the sidebar label
    icon: str
    url: str  # the URL path: /<url>?... (kept stable: shared links use it)
    blurb: str


# every page but Home, in sidebar order (app.py builds st.navigation and the home links from it)
PAGES = [
    PageInfo("app_pages/1_Latent_explorer.py", "Latent explorer", ":material/scatter_plot:", "Latent_explorer",
             "the map of all formulas, decoding and interpolation"),
    PageInfo("app_pages/2_Oracle.py", "Oracle", ":material/bolt:", "Oracle",
             "band gap ± uncertainty of any formulas, with known neighbours"),
    PageInfo("app_pages/3_Active_learning.py", "Active learning", ":material/autorenew:", "Active_learning",
             "GP + UCB campaigns in the latent space"),
    PageInfo("app_pages/4_Band_gap_window.py", "Band-gap window", ":material/filter_alt:", "Band_gap_window",
             "screen generated formulas for a gap window"),
    PageInfo("app_pages/5_Structures.py", "Structures", ":material/deployed_code:", "Structures",
             "template structures in 3D, CHGNet, symmetry, XRD, CIF and DFT-input downloads"),
    PageInfo("app_pages/6_Models.py", "Models", ":material/monitoring:", "Models",
             "model cards, diagnostics, retraining"),
]


def page(title: str, icon: str = "🔬") -> None:
    st.set_page_config(page_title=f"{title} · WBG studio", page_icon=icon, layout="wide")
    st.title(title)


# ---------------------------------------------------------------- server-wide state

def public() -> bool:
    """Public mode (WBG_PUBLIC=1): no retraining, no checkpoint switching."""
    return bool(get_settings().public)


def runs_dir() -> Path:
    """Where retraining from the Models page writes (Settings.app_runs_dir): never models/."""
    return Path(get_settings().app_runs_dir)


def active_label() -> str:
    """The checkpoint set the whole server uses (switched on the Models page; shipped in public mode)."""
    from wbg_core.services.status import active_set

    return active_set(get_settings().models_dir, runs_dir())[0]


def checkpoint_sets() -> dict[str, Path]:
    """The sets every visitor may switch to (wbg_core.services.status.checkpoint_sets)."""
    from wbg_core.services.status import checkpoint_sets as sets

    return sets(get_settings().models_dir, runs_dir())


def set_active(label: str) -> None:
    """Switch the whole server to an offered set; the service refuses it in public mode and for
    a set nobody confirmed, whatever the session state says."""
    from wbg_core.services.status import switch_set

    switch_set(label, get_settings().models_dir, runs_dir())


def model_dirs() -> dict[str, Path]:
    """Directory of each model in the active set (shipped ones fill what a trained set lacks)."""
    from wbg_core.services.status import active_set, complete_set

    shipped = get_settings().models_dir
    return complete_set(active_set(shipped, runs_dir())[1], shipped)


def shown_path(path: Path) -> str:
    """A checkpoint folder as a visitor sees it: relative to the repository, else <set>/<model>
    (no server paths on a page)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return f"{p.parent.name}/{p.name}"


def model_dir(name: str) -> Path:
    return model_dirs()[name]


# Models are cached here once per server and directory, by Streamlit; the loaders below are the
# uncached ones (the lru_cached wbg_core.models.load_* serve the CLI and the engine).
# kind -> (module whose load() reads the checkpoint, what the spinner calls it)
_MODELS = {"autoencoder": ("wbg_core.models.autoencoder", "the autoencoder"),
           "oracle": ("wbg_core.models.oracle", "the band-gap oracle"),
           "gan": ("wbg_core.models.gan", "the generator")}


@st.cache_resource(show_spinner=False)
def _model(kind: str, directory: str):
    import importlib

    from wbg_core.settings import set_torch_threads

    set_torch_threads()
    return importlib.import_module(_MODELS[kind][0]).load(Path(directory))


@st.cache_resource(show_spinner="Loading the latent map…")
def _latent_map(directory: str):
    from wbg_core.models.latent_map import LatentMap

    return LatentMap.load(Path(directory))


@st.cache_resource(show_spinner="Loading the Materials Project data…")
def bandgaps():
    from wbg_core.data import load_bandgaps

    return load_bandgaps()


@st.cache_resource(show_spinner="Indexing the known formulas…")
def known_data():
    from wbg_core.services.known import build_known_data

    return build_known_data(bandgaps())


def _get(name: str, show: bool, loader=None):
    """The model `name` of the checkpoint set in use (by `loader`, else _model), or None after an
    error on the page (when `show`)."""
    try:
        if loader is not None:
            return loader(str(model_dir(name)))
        with st.spinner(f"Loading {_MODELS[name][1]}…"):
            return _model(name, str(model_dir(name)))
    except _load_errors() as exc:
        if show:
            st.error(f"The {name} checkpoint cannot be loaded: {exc}. "
                     "Train it with `wbg train` or pick another set on the Models page.")
        return None


def autoencoder(show: bool = True):
    return _get("autoencoder", show)


def oracle(show: bool = True):
    return _get("oracle", show)


def gan(show: bool = True):
    return _get("gan", show)


@st.cache_resource(show_spinner="Loading the interatomic potential…")
def potential(name: str):
    """A pretrained potential (wbg_core.structures.potentials), loaded once per server."""
    from wbg_core.structures.potentials import make_potential

    return make_potential(name)


@st.cache_resource(show_spinner="Loading the latent sampler…")
def _latent_sampler(directory: str):
    from wbg_core.models.autoencoder import LatentSampler

    return LatentSampler.shipped(directory)


def latent_sampler(show: bool = True):
    return _get("autoencoder", show, _latent_sampler)


def latent_map(show: bool = True):
    return _get("autoencoder", show, _latent_map)


def latent_map_of(directory: str) -> dict:
    """The latent map of one autoencoder directory (cached; raises when it cannot be loaded)."""
    return _latent_map(directory)


def my_job():
    """The training job this browser session started (its id lives in st.session_state), or None."""
    from wbg_core.services.jobs import JobError, find_job

    job_id = st.session_state.get("train_job")
    if not job_id:
        return None
    try:
        return find_job(runs_dir(), str(job_id))
    except JobError:
        return None


def start_my_job(**kw):
    """Start a retraining job (wbg_core.services.jobs.start_training checks public mode and the limits)
    and remember it in this session only: no other visitor is offered its result."""
    from wbg_core.services.jobs import start_training

    job = start_training(runs_dir=runs_dir(), **kw)
    st.session_state["train_job"] = job.id
    return job


def use_my_job() -> str:
    """The visitor confirmed: the whole app switches to their finished job's checkpoints."""
    from wbg_core.services.jobs import JobError, confirm_job

    job_id = st.session_state.get("train_job")
    if not job_id:
        raise JobError("this session has started no training job")
    job = confirm_job(runs_dir(), str(job_id))
    set_active(job.id)
    return job.id


# ---------------------------------------------------------------- campaigns of this browser

def campaigns_root() -> Path:
    return Path(get_settings().campaigns_dir)


@st.cache_resource(ttl=3600, show_spinner=False)
def _cleaned(root: str) -> int:
    from wbg_core.services.campaigns import clean_stale_campaigns

    return len(clean_stale_campaigns(Path(root)))


def clean_campaigns() -> None:
    """Remove old campaigns that never completed a round (at most once an hour per server)."""
    _cleaned(str(campaigns_root()))


def browser_campaigns() -> list[str]:
    """Ids of the campaigns this browser created or opened a link to (newest last); the Active
    learning page keeps them in st.session_state and in the URL (?mine=), never lists the disk."""
    return st.session_state.setdefault("my_campaigns", [])


def remember_campaign(cid: str) -> None:
    mine = browser_campaigns()
    if cid in mine:
        mine.remove(cid)
    mine.append(cid)


def open_campaign(cid: str) -> None:
    """Make `cid` this browser's open campaign (the Band-gap window page's RF route reads its folder)."""
    from wbg_core.services.campaigns import campaign_folder

    remember_campaign(cid)
    st.session_state["campaign_id"] = cid
    st.session_state["campaign"] = str(campaign_folder(campaigns_root(), cid))


# ---------------------------------------------------------------- shareable URL state

def qp(key: str, default=None):
    v = st.query_params.get(key)
    return default if v in (None, "") else v


def qp_float(key: str, default: float) -> float:
    try:
        return float(qp(key, default))
    except (TypeError, ValueError):
        return default


def set_qp(**values) -> None:
    for k, v in values.items():
        if v is None or v == "":
            if k in st.query_params:
                del st.query_params[k]
        elif st.query_params.get(k) != str(v):
            st.query_params[k] = str(v)


def selected_candidates() -> list[str]:
    """Candidates sent from the screening page to the structure page (this session)."""
    return list(st.session_state.get("candidates", []))


def send_candidates(formulas: list[str]) -> None:
    cur = selected_candidates()
    st.session_state["candidates"] = cur + [f for f in formulas if f not in cur]
