"""EMD in closed form against the ElMD package (default mod_petti metric)."""
import warnings

import numpy as np
import pytest

from wbg_core.composition import FormulaError
from wbg_core.structures.emd import MOD_PETTI, composition_vector, cumulative, emd, emd_to_many


@pytest.fixture(scope="module")
def elmd_cls():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ElMD import ElMD
    return ElMD


def test_scale_matches_elmd_table():
    import json
    from pathlib import Path

    import ElMD

    table = json.loads((Path(ElMD.__file__).parent / "el_lookup" / "mod_petti.json").read_text())
    assert {el: table[el] for el in MOD_PETTI} == MOD_PETTI


def test_parity_with_elmd_on_1000_random_pairs(bandgaps, elmd_cls):
    rng = np.random.default_rng(7)
    formulas = bandgaps["formula"].to_numpy(dtype=object)
    pairs = rng.choice(formulas, size=(1000, 2))
    cache = {}

    def obj(f):
        if f not in cache:
            cache[f] = elmd_cls(f)
        return cache[f]

    ours = np.array([emd(a, b) for a, b in pairs])
    theirs = np.array([obj(a).elmd(obj(b)) for a, b in pairs])
    assert np.abs(ours - theirs).max() < 1e-6
    assert (ours > 0).mean() > 0.99  # random pairs are distinct compositions


@pytest.mark.parametrize("a, b, expected", [
    ("SrYF5", "CaYF5", 1 / 7),  # Sr (14) -> Ca (15): 1/7 of the mass moves one step
    ("NaCl", "NaCl", 0.0),
    ("NaCl", "Na2Cl2", 0.0),  # normalised: reduced and unreduced are the same composition
    ("NaCl", "KCl", 0.5),  # Na 10 -> K 9: half the mass, one step
    ("H", "He", 102.0),  # the two ends of the scale
])
def test_known_values(a, b, expected):
    assert emd(a, b) == pytest.approx(expected, abs=1e-12)
    assert emd(b, a) == pytest.approx(expected, abs=1e-12)


def test_vectorised_equals_pairwise(bandgaps):
    formulas = bandgaps["formula"].to_numpy(dtype=object)[:3000]
    cdfs = cumulative(np.stack([composition_vector(f) for f in formulas]))
    d = emd_to_many("SrYF5", cdfs, chunk=1000)
    assert d.shape == (3000,)
    expected = np.array([emd("SrYF5", f) for f in formulas[:200]])
    np.testing.assert_allclose(d[:200], expected, atol=1e-12)


@pytest.mark.parametrize("bad", ["", "Xx2", "Fe0O0"])
def test_bad_formula_is_a_formula_error(bad):
    with pytest.raises(FormulaError):
        emd(bad, "NaCl")


@pytest.mark.parametrize("query", ["SrYF5", "CaTiO3", "H2O", "Cs", "LiFePO4"])
def test_sparse_kernel_equals_dense(bandgaps, query):
    from wbg_core.structures.emd import _sparse_kernel_py, emd_sparse, sparse_pool
    from wbg_core.structures.templates import reduce

    formulas = bandgaps["formula"].to_numpy(dtype=object)[::30]
    comps = [reduce(f) for f in formulas]
    pos, w, n = sparse_pool(comps)
    dense = emd_to_many(query, cumulative(np.stack([composition_vector(c) for c in comps])))
    np.testing.assert_allclose(emd_sparse(query, pos, w, n), dense, atol=1e-12)
    rows = np.arange(0, len(comps), 7)
    out = np.empty(len(rows))
    (qp,), (qw,), (k,) = sparse_pool([reduce(query)])
    np.testing.assert_allclose(_sparse_kernel_py(rows, pos, w, n, qp[:k], qw[:k], out), dense[rows], atol=1e-12)
