"""AppTest: the band-gap window page (links restore the form and the result, bad inputs)."""
from app_testing import app, need_models, no_exception, texts


def _qp(at, key):
    v = at.query_params.get(key)
    return v[-1] if isinstance(v, list) and v else v


def test_small_screening_from_a_shared_window():
    need_models()
    at = app("4_Band_gap_window", {"gap_min": "0.5", "gap_max": "6", "pool": "2000"}).run()
    no_exception(at)
    assert not at.warning, [w.value for w in at.warning]
    assert at.slider(key="window").value == (0.5, 6.0)
    assert "Funnel: generated 2,000" in texts(at)  # the link ran its screening
    at.checkbox(key="valid_only").uncheck()
    at.slider(key="p_thr").set_value(0.0)
    at.button[0].click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert _qp(at, "gap_min") == "0.5" and _qp(at, "gap_max") == "6"
    assert _qp(at, "valid_only") == "0" and _qp(at, "p_min") == "0" and _qp(at, "pool") == "2000"
    from wbg_core.composition import reduced_formula

    cand = at.session_state["screen_result"]["cand"]
    assert len(cand) and all(reduced_formula(f) == f for f in cand["formula"])  # S2O4 would be SO2
    # the CSV names which gap of a non-metal each column holds: the mean the shown gap is P times, the median
    from wbg_core.services.window import csv_table

    header = csv_table(cand).splitlines()[0].split(",")
    assert {"mean_gap_if_nonmetal", "median_gap_if_nonmetal"} <= set(header) and "gap_if_nonmetal" not in header
    assert "predicted metal" in texts(at)  # the histogram's caption says the metals are left out


def test_open_ended_link_restores_every_filter_and_runs():
    need_models()
    link = {"gap_min": "6.0", "pool": "2000", "p_min": "0.3", "max_atoms": "9", "max_elements": "4",
            "exclude": "Pb,Cd", "novel": "0", "valid_only": "1", "allow_elements_and_alloys": "0", "seed": "3"}
    at = app("4_Band_gap_window", link).run()
    no_exception(at)
    assert not at.warning and not at.error, [w.value for w in at.warning] + [e.value for e in at.error]
    assert at.checkbox(key="open_top").value is True
    assert at.slider(key="window").value[0] == 6.0 and at.slider(key="p_thr").value == 0.3
    assert at.number_input(key="max_atoms").value == 9 and at.number_input(key="max_el").value == 4
    assert at.text_input(key="exclude").value == "Pb, Cd" and at.checkbox(key="novel").value is False
    assert at.number_input(key="seed").value == 3 and at.select_slider(key="pool").value == 2000
    res = at.session_state["screen_result"]
    assert res["window"] == (6.0, None)
    cand = res["cand"]
    assert cand["compound_valid"].all() and not cand["formula"].str.contains("Pb|Cd").any()
    heading = [s.value for s in at.subheader]
    assert any(h.endswith(" candidate" if len(cand) == 1 else " candidates") for h in heading), heading
    # the same link again (a reload, another tab) comes from the server's cache with the same result
    again = app("4_Band_gap_window", link).run()
    no_exception(again)
    assert again.session_state["screen_result"]["cand"].equals(cand)


def test_bad_link_parameters_are_named_and_nothing_runs():
    need_models()
    at = app("4_Band_gap_window", {"gap_min": "6", "pool": "123", "novel": "maybe", "require": "F,Xx"}).run()
    no_exception(at)
    msgs = " ".join(w.value for w in at.warning)
    assert "pool=123" in msgs and "novel='maybe'" in msgs and "Xx" in msgs
    assert "screen_result" not in at.session_state
    assert at.select_slider(key="pool").value == 10_000  # the default stands in for the bad value


def test_conflicting_filters_are_reported():
    need_models()
    at = app("4_Band_gap_window").run()
    at.text_input(key="require").set_value("F")
    at.text_input(key="exclude").set_value("F")
    at.select_slider(key="pool").set_value(2000)
    at.button[0].click().run()
    no_exception(at)
    assert any("both required and excluded" in e.value for e in at.error)


def test_bad_window_in_link_is_a_warning():
    need_models()
    at = app("4_Band_gap_window", {"gap_min": "9", "gap_max": "2"}).run()
    no_exception(at)
    assert any("not valid" in w.value and "gap_min" in w.value for w in at.warning)


def test_window_query_round_trip_and_plurals():
    from wbg_core.services.inputs import plural
    from wbg_core.services.window_query import WindowQuery

    q = WindowQuery(gap_min=6.0, gap_max=None, require=("F", "Sr"), pool=2000, model="rf_mp",
                    allow_elements_and_alloys=True)
    assert WindowQuery.from_query(q.to_query()) == (q, [])
    assert "gap_max" not in q.to_query()
    assert WindowQuery.from_query({"gap_max": "4"})[0].gap_min == 0.0
    q2, problems = WindowQuery.from_query({"gap_min": "abc", "seed": "1.5", "model": "gp"})
    assert q2 == WindowQuery() and len(problems) == 3
    assert plural(1, "candidate") == "1 candidate" and plural(1200, "candidate") == "1,200 candidates"


def test_the_latent_generator_screens_from_a_link():
    """generator=latent samples the autoencoder's latent space (the Models page's checkpoint set)
    instead of the GAN: the same funnel, from another generator."""
    need_models()
    at = app("4_Band_gap_window", {"gap_min": "3", "pool": "2000", "generator": "latent"}).run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="generator").value == "latent"
    assert "Funnel: generated 2,000" in texts(at)
    assert at.session_state["screen_result"]["query"].generator == "latent"
