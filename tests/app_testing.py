"""Shared pieces of the Streamlit AppTest files (tests/test_app_*.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120


def models_ready() -> bool:
    from wbg_core.settings import get_settings

    d = Path(get_settings().models_dir)
    return all((d / m / "card.json").exists() for m in ("autoencoder", "oracle", "gan"))


def need_models():
    if not models_ready():
        pytest.skip("the checkpoints are not there (train them, or set WBG_MODELS_DIR)")


def app(page: str | None = None, query: dict | None = None):
    """An AppTest of app.py (page None) or app_pages/<page>.py, with URL query parameters."""
    from streamlit.testing.v1 import AppTest

    path = ROOT / ("app.py" if page is None else f"app_pages/{page}.py")
    at = AppTest.from_file(str(path), default_timeout=TIMEOUT)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at


def texts(at) -> str:
    """All markdown, captions, metrics, alerts of a run, as one string."""
    parts = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "title", "subheader"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(parts)


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture
def empty_models(tmp_path, monkeypatch):
    """Point the app at a folder with no checkpoints (server caches cleared before and after)."""
    import streamlit as st

    from wbg_core.settings import get_settings

    monkeypatch.setenv("WBG_MODELS_DIR", str(tmp_path))
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()
    yield tmp_path
    monkeypatch.undo()
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()
