"""AppTest: the latent explorer (map, placement, decoding, interpolation, bad input)."""
import numpy as np

from app_testing import app, empty_models, need_models, no_exception  # noqa: F401


def test_map_placement_decode_and_interpolation():
    need_models()
    at = app("1_Latent_explorer", {"formula": "CaF2"}).run()
    no_exception(at)
    assert not at.error
    at.button(key="decode").click().run()
    no_exception(at)
    assert at.success and "predicted gap" in at.success[0].value  # the default point decodes
    at.button(key="decode_random").click().run()
    no_exception(at)
    rnd = at.dataframe[-1].value
    assert len(rnd) == 20 and rnd["valid"].mean() >= 0.8  # random map points decode
    at.text_input(key="from").set_value("NaCl")
    at.text_input(key="to").set_value("CaF2")
    at.slider(key="steps").set_value(4)
    at.button(key="interp_btn").click().run()
    no_exception(at)
    line = at.dataframe[-1].value
    assert len(line) == 4 and np.allclose(line["t"], [0, 1 / 3, 2 / 3, 1], atol=1e-3)


def test_bad_formulas_give_messages():
    need_models()
    at = app("1_Latent_explorer").run()
    at.text_input(key="place").set_value("Qq2").run()
    no_exception(at)
    assert at.error and "Qq2" in at.error[0].value
    at.text_input(key="from").set_value("Zz").run()
    at.button(key="interp_btn").click().run()
    no_exception(at)
    assert any("Cannot interpolate" in e.value for e in at.error)


def test_missing_autoencoder_is_an_error(empty_models):
    at = app("1_Latent_explorer").run()
    no_exception(at)
    assert at.error and "autoencoder" in at.error[0].value


def test_gap_bins_hold_every_point_once_in_gap_order():
    from wbg_core.services.figures import gap_bins

    gaps = np.array([0.0, 7.5, 3.2, np.nan, 12.0, 0.4, 6.0])
    bins, edges = gap_bins(gaps, 4, vmax=8.0)
    assert len(bins) == 4 and np.allclose(edges, [0, 2, 4, 6, 8])
    assert sorted(np.concatenate(bins).tolist()) == list(range(len(gaps)))
    assert [sorted(b.tolist()) for b in bins] == [[0, 3, 5], [2], [], [1, 4, 6]]
