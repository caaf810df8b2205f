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


# ---------------------------------------------------------------- every corrupt cache is rebuilt (#16.4)

import json
import os
import shutil
import subprocess
import sys

from wbg_core.data.loaders import _parse_key, _read_parse_cache, load_element_embedding, load_structures
from wbg_core.data.registry import DataError, load_registry
from wbg_core.settings import get_settings


@pytest.fixture(scope="module")
def small(tmp_path_factory, mp_formulas):
    """The first 3,000 rows of the real file, so that each rebuild takes a fraction of a second."""
    path, _ = mp_formulas
    copy = tmp_path_factory.mktemp("small") / path.name
    copy.write_text("".join(path.read_text().splitlines(keepends=True)[:3001]))
    return copy, pd.read_csv(copy, keep_default_na=False, dtype={"formula": str})["formula"].tolist()


def _built(tmp_path, small):
    path, formulas = small
    fresh = parsed_formulas(path, formulas, cache_dir=tmp_path)
    (cache,) = tmp_path.glob("parsed-*.npz")
    return path, formulas, fresh, cache


def _assert_rebuilt(tmp_path, small, fresh, cache):
    path, formulas = small
    _same(fresh, parsed_formulas(path, formulas, cache_dir=tmp_path))
    assert _read_parse_cache(cache, _parse_key(path), len(formulas)) is not None  # rewritten, and whole


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbled"])
def test_an_empty_truncated_or_garbled_cache_is_rebuilt(tmp_path, small, damage):
    path, formulas, fresh, cache = _built(tmp_path, small)
    data = bytearray(cache.read_bytes())
    if damage == "empty":
        data = bytearray()
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        mid = len(data) // 2
        data[mid : mid + 2000] = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    cache.write_bytes(bytes(data))
    assert _read_parse_cache(cache, _parse_key(path), len(formulas)) is None
    _assert_rebuilt(tmp_path, small, fresh, cache)


def _rewrite(cache, **change):
    with np.load(cache, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(change)
    with open(cache, "wb") as fh:
        np.savez_compressed(fh, **{k: v for k, v in arrays.items() if v is not None})


def test_a_well_formed_but_wrong_cache_is_rebuilt(tmp_path, small):
    """Valid npz files of the right names and shapes, whose content is not what was stored."""
    path, formulas, fresh, cache = _built(tmp_path, small)
    good = cache.read_bytes()
    with np.load(cache, allow_pickle=False) as z:
        counts, enc, formula = z["counts"].copy(), z["encodable"].copy(), z["formula"].copy()
    counts[0] = counts[1]
    for change in ({"counts": counts},  # one row's counts changed
                   {"encodable": ~enc},
                   {"formula": np.roll(formula, 1)},  # rows shifted by one
                   {"digest": None}):  # a cache from before digests
        cache.write_bytes(good)
        _rewrite(cache, **change)
        assert _read_parse_cache(cache, _parse_key(path), len(formulas)) is None, list(change)
        _assert_rebuilt(tmp_path, small, fresh, cache)


def test_a_cache_of_another_row_count_is_rebuilt(tmp_path, small):
    path, formulas = small
    parsed_formulas(path, formulas[:100], cache_dir=tmp_path)  # the same key, 100 rows
    (cache,) = tmp_path.glob("parsed-*.npz")
    assert _read_parse_cache(cache, _parse_key(path), len(formulas)) is None
    out = parsed_formulas(path, formulas, cache_dir=tmp_path)
    assert len(out[0]) == len(formulas) and _read_parse_cache(cache, _parse_key(path), len(formulas)) is not None


def test_wbg_data_runs_over_an_empty_cache_file(tmp_path, mp_formulas):
    """The reported bug: a 0-byte cache broke `wbg data` and `wbg screen` until deleted by hand."""
    path, _ = mp_formulas
    cache = tmp_path / f"parsed-{path.stem}-{_parse_key(path)}.npz"
    cache.write_bytes(b"")
    env = {**os.environ, "WBG_CACHE_DIR": str(tmp_path), "WBG_TORCH_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "wbg_core", "data", "--json"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["files"]["mp_bandgap.csv"] == load_registry()["files"]["mp_bandgap.csv"]["sha256"]
    assert cache.stat().st_size > 100_000  # rebuilt in place


# ---------------------------------------------------------------- a corrupt bundled file is named

def _data_copy(tmp_path):
    d = tmp_path / "data"
    shutil.copytree(get_settings().data_dir, d)
    return d


@pytest.mark.parametrize("content", [b"", b"{\"files\": ", b"\xff\xfe", b"{\"files\": {\"x\": {\"bytes\": \"7\"}}}"])
def test_a_corrupt_registry_is_named(tmp_path, content):
    d = _data_copy(tmp_path)
    (d / "registry.json").write_bytes(content)
    with pytest.raises(DataError, match=r"data registry .*registry\.json is corrupt"):
        load_registry(d)


@pytest.fixture
def no_checksums(monkeypatch):
    monkeypatch.setenv("WBG_VERIFY_CHECKSUMS", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("name, loader", [("mp_structures.npz", load_structures),
                                          ("mp_structures_meta.parquet", load_structures),
                                          ("matscholar-embedding.json", load_element_embedding)])
def test_a_garbled_data_file_is_named_by_its_checksum_and_by_its_loader(tmp_path, name, loader, monkeypatch):
    """Same size, other bytes: the registry's sha256 names it; with checksums off, the loader itself does."""
    d = _data_copy(tmp_path)
    data = bytearray((d / name).read_bytes())
    mid = len(data) // 2
    data[mid : mid + 2000] = bytes(b ^ 0x5A for b in data[mid : mid + 2000])
    (d / name).write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"{name} is corrupt or was changed"):
        loader(d)
    monkeypatch.setenv("WBG_VERIFY_CHECKSUMS", "0")
    get_settings.cache_clear()
    try:
        loader.cache_clear()
        with pytest.raises(DataError, match=rf"{name}"):
            loader(d)
    finally:
        monkeypatch.delenv("WBG_VERIFY_CHECKSUMS")
        get_settings.cache_clear()
