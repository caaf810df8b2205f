import numpy as np
import pandas as pd
import pytest

from wbg_core.data.loaders import BANDGAP_FILE, parsed_formulas
from wbg_core.data.registry import data_path


@pytest.fixture(scope="module")
def mp_formulas():
    path = data_path(BANDGAP_FILE)
    return path, pd.read_csv(path, keep_default_na=False, dtype={"formula": str})["formula"].tolist()


def _same(a, b):
    assert list(a[0]) == list(b[0])
    assert np.array_equal(a[1], b[1]) and a[2] == b[2] and np.array_equal(a[3], b[3])


def test_cached_parse_equals_a_fresh_one(tmp_path, mp_formulas):
    path, formulas = mp_formulas
    fresh = parsed_formulas(path, formulas, cache_dir=tmp_path)  # builds the cache
    (cache,) = tmp_path.glob("parsed-*.npz")
    again = parsed_formulas(path, formulas, cache_dir=tmp_path)
    _same(fresh, again)
    assert "NaN" in set(again[0])  # sodium nitride survives the round trip as a formula
    assert sum(e is None for e in again[2]) == int(again[1].sum())  # None exactly where encodable
    assert cache.stat().st_size < 5_000_000


def test_a_corrupt_cache_is_rebuilt(tmp_path, mp_formulas):
    path, formulas = mp_formulas
    fresh = parsed_formulas(path, formulas, cache_dir=tmp_path)
    (cache,) = tmp_path.glob("parsed-*.npz")
    cache.write_bytes(b"not a zip")
    _same(fresh, parsed_formulas(path, formulas, cache_dir=tmp_path))
    assert np.load(cache)["counts"].shape == (len(formulas), 87)  # rewritten


def test_the_key_follows_the_file(tmp_path, mp_formulas):
    path, formulas = mp_formulas
    copy = tmp_path / "data" / path.name
    copy.parent.mkdir()
    copy.write_bytes(path.read_bytes())
    parsed_formulas(copy, formulas[:50], cache_dir=tmp_path / "c")
    (first,) = (tmp_path / "c").glob("parsed-*.npz")
    copy.write_bytes(path.read_bytes().replace(b"NaCl", b"KCl", 1))
    out = parsed_formulas(copy, formulas[:50], cache_dir=tmp_path / "c")
    (second,) = (tmp_path / "c").glob("parsed-*.npz")  # a new key; the stale cache removed
    assert second != first and len(out[0]) == 50


def test_no_cache_dir_means_no_cache(tmp_path, mp_formulas):
    path, formulas = mp_formulas
    parsed_formulas(path, formulas[:20], cache_dir="")
    assert not list(tmp_path.glob("*"))
