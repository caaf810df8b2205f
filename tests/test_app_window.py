"""AppTest: the band-gap window page (small screening, URL window, bad inputs)."""
from app_testing import app, need_models, no_exception, texts


def test_small_screening_from_a_shared_window():
    need_models()
    at = app("4_Band_gap_window", {"gap_min": "0.5", "gap_max": "6"}).run()
    no_exception(at)
    assert at.slider(key="window").value == (0.5, 6.0)
    at.select_slider(key="pool").set_value(2000)
    at.checkbox(key="smact").uncheck()
    at.slider(key="p_thr").set_value(0.0)
    at.button[0].click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert "Funnel" in texts(at)
    assert at.query_params.get("gap_min") in ("0.5", ["0.5"])
    from wbg_core.composition import reduced_formula

    cand = at.session_state["screen_result"]["cand"]
    assert len(cand) and all(reduced_formula(f) == f for f in cand["formula"])  # S2O4 would be SO2


def test_conflicting_filters_are_reported():
    need_models()
    at = app("4_Band_gap_window").run()
    at.text_input(key="require").set_value("F")
    at.text_input(key="exclude").set_value("F")
    at.button[0].click().run()
    no_exception(at)
    assert any("both required and excluded" in e.value for e in at.error)


def test_bad_window_in_link_is_a_warning():
    need_models()
    at = app("4_Band_gap_window", {"gap_min": "9", "gap_max": "2"}).run()
    no_exception(at)
    assert any("not valid" in w.value for w in at.warning)
