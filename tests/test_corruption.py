"""Damaged bundled files are named, never a traceback or a wrong answer (#16.4).

Copies of the shipped files in tmp_path, truncated, garbled or emptied, loaded through the
real loaders; bench/robust_corruption.py runs the same over every file.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wbg_core.models.errors import ModelError
from wbg_core.models.latent_map import FILE, LatentMap
from wbg_core.models.oracle_head import CALIBRATION_FILE, booster_files
from wbg_core.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import robust_corruption  # noqa: E402

# the shipped head's booster files (one gap regressor or k cross-fitted ones, any stacked classifiers)
_SHIPPED_HEAD = booster_files(json.loads((get_settings().models_dir / "oracle" / CALIBRATION_FILE).read_text()))


@pytest.fixture
def map_copy(tmp_path):
    d = tmp_path / "autoencoder"
    d.mkdir()
    shutil.copy(get_settings().models_dir / "autoencoder" / FILE, d / FILE)
    return d


@pytest.mark.parametrize("how", robust_corruption.CORRUPTIONS)
def test_a_damaged_latent_map_is_a_model_error_naming_it(map_copy, how):
    robust_corruption.corrupt(map_copy / FILE, how)
    with pytest.raises(ModelError, match=rf"latent map .*{FILE} is corrupt .*wbg map build"):
        LatentMap.load(map_copy)


def test_one_flipped_byte_in_the_map_is_caught(map_copy):
    """zip's CRC-32 catches it (np.load raised BadZipFile, which escaped unnamed); every member is read whole."""
    data = bytearray((map_copy / FILE).read_bytes())
    data[len(data) // 3] ^= 0x01
    (map_copy / FILE).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=rf"{FILE} is corrupt"):
        LatentMap.load(map_copy)


def test_a_map_holding_a_pickle_is_refused_not_unpickled(map_copy):
    arrays = dict(np.load(map_copy / FILE, allow_pickle=False))
    arrays["settings"] = np.array([{"n_neighbors": 15}], dtype=object)  # np.savez pickles object arrays
    np.savez_compressed(map_copy / FILE, **arrays)
    with pytest.raises(ModelError, match=rf"{FILE} is corrupt .*allow_pickle"):
        LatentMap.load(map_copy)


@pytest.mark.parametrize("key, value", [("latent_lo", np.zeros(3, np.float32)),
                                        ("xy", "nan"),
                                        ("formula", "numbers")])
def test_a_well_formed_but_inconsistent_map_is_refused(map_copy, key, value):
    arrays = dict(np.load(map_copy / FILE, allow_pickle=False))
    if isinstance(value, str) and value == "nan":
        arrays[key] = arrays[key].copy()
        arrays[key][7, 1] = np.nan
    elif isinstance(value, str):
        arrays[key] = np.arange(len(arrays[key]))
    else:
        arrays[key] = value
    np.savez_compressed(map_copy / FILE, **arrays)
    with pytest.raises(ModelError, match=rf"{FILE} is inconsistent"):
        LatentMap.load(map_copy)


@pytest.mark.parametrize("name", [*_SHIPPED_HEAD["regressor"][:1], *_SHIPPED_HEAD["stack"][:1], "head_nonmetal.lgb.txt.gz"])
@pytest.mark.parametrize("how", ["truncated gzip", "truncated text, gzipped again"])
def test_a_truncated_booster_is_named_even_without_checksums(tmp_path, name, how):
    """LightGBM aborts the process on a truncated model string: checked before it sees one
    (in a child process, so a regression fails this test instead of killing the run)."""
    import gzip

    d = tmp_path / "oracle"
    shutil.copytree(get_settings().models_dir / "oracle", d)
    if how == "truncated gzip":
        robust_corruption.corrupt(d / name, "truncated")
    else:  # a whole gzip stream around half a model
        text = gzip.decompress((d / name).read_bytes())
        (d / name).write_bytes(gzip.compress(text[: len(text) // 2]))
    env = {**os.environ, "WBG_VERIFY_CHECKSUMS": "0", "WBG_TORCH_THREADS": "1"}
    code = ("from wbg_core.models.oracle import load\nfrom wbg_core.models.errors import ModelError\n"
            f"try:\n    load({str(d)!r})\nexcept ModelError as e:\n    print('ModelError:', e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.startswith("ModelError:") and f"{name} is corrupt" in out.stdout


def test_the_corruption_benchmark_finds_no_failures_on_a_sample_of_files():
    """The benchmark's own machinery on a few files (the whole run is bench/robust_corruption.py)."""
    files = ["models/gan/model.safetensors", "models/gan/config.json", "models/gan/card.json",
             "models/autoencoder/latent_map.npz", "data/registry.json", "data/matscholar-embedding.json"]
    res = robust_corruption.measure(files)
    assert res["failures"] == []
    assert res["counts"] == {"named error": 3 * len(files)}
    assert {c["file"] for c in res["cases"]} == set(files)


def test_without_checksums_garbled_weights_are_still_named_by_the_finite_checks():
    """Settings.verify_checksums off: the garbled generator loads, and its NaN outputs are refused by name."""
    res = robust_corruption.measure(["models/gan/model.safetensors"], checksums=False)
    assert res["verify_checksums"] is False and res["failures"] == []
    garbled = next(c for c in res["cases"] if c["corruption"] == "garbled")
    assert garbled["outcome"] == "named error" and "non-finite outputs" in garbled["detail"]


def test_the_benchmark_counts_wrong_answers_unnamed_errors_and_tracebacks_as_failures():
    from wbg_core.data.registry import DataError

    classify = robust_corruption._classify

    def raise_(exc):
        def run():
            raise exc
        return run

    assert classify(lambda: {"gap": np.array([5.1])}, {"gap": np.array([5.1])}, "a.json")[0] == "no effect"
    assert classify(lambda: {"gap": np.array([5.3])}, {"gap": np.array([5.1])}, "a.json")[0] == "wrong answer"
    assert classify(lambda: {"gap": np.array([np.nan])}, {"gap": np.array([5.1])}, "a.json")[0] == "wrong answer"
    assert classify(raise_(ModelError("/x/a.json is corrupt")), None, "a.json")[0] == "named error"
    assert classify(raise_(DataError("/x/b.json is corrupt")), None, "a.json")[0] == "unnamed error"
    assert classify(raise_(KeyError("kwargs")), None, "a.json")[0] == "traceback"


@pytest.mark.parametrize("content", [b"", b'{"edges": [0.0, 1.0', b"[1, 2, 3]"])
def test_a_damaged_calibration_is_named_even_without_checksums(tmp_path, monkeypatch, content):
    from wbg_core.models.oracle import load
    from wbg_core.models.oracle_head import CALIBRATION_FILE

    d = tmp_path / "oracle"
    shutil.copytree(get_settings().models_dir / "oracle", d)
    (d / CALIBRATION_FILE).write_bytes(content)
    monkeypatch.setenv("WBG_VERIFY_CHECKSUMS", "0")
    get_settings.cache_clear()
    try:
        with pytest.raises(ModelError, match=rf"oracle head file .*{CALIBRATION_FILE} is corrupt"):
            load(d)
    finally:
        monkeypatch.delenv("WBG_VERIFY_CHECKSUMS")
        get_settings.cache_clear()
