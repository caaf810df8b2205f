"""AppTest: the home page (status of data and checkpoints, links, credit)."""
from app_testing import app, empty_models, need_models, no_exception, texts  # noqa: F401


def test_home_renders_status_and_credit():
    need_models()
    at = app().run()
    no_exception(at)
    t = texts(at)
    assert "Materials Project" in t and "CC-BY 4.0" in t
    assert "oracle" in t and "autoencoder" in t
    assert not at.error


def test_home_missing_checkpoints_are_errors_not_crashes(empty_models):
    at = app().run()
    no_exception(at)
    assert any("missing" in e.value for e in at.error)


def test_home_has_a_start_here_path():
    need_models()
    at = app().run()
    no_exception(at)
    assert any(s.value == "Start here" for s in at.subheader)
    links = [e for e in at.get("page_link")]
    labels = [e.proto.label for e in links]
    assert labels[:4] == ["1. Oracle", "2. Band-gap window", "3. Structures", "4. Active learning"], labels
    assert {"Latent explorer", "Models"} <= set(labels)


def test_the_app_edits_no_import_path():
    """Pages import app_common and wbg_core as installed modules (pyproject py-modules), never
    through sys.path edits that need `noqa: E402` on every import below them."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for path in [root / "app.py", root / "app_common.py", *sorted((root / "app_pages").glob("*.py"))]:
        text = path.read_text()
        assert "sys.path" not in text and "noqa: E402" not in text, path.name
