"""Every bundled file, damaged three ways, loaded through the real loaders: is the damage named?

For each data file (data/, as registered) and each file of each checkpoint under models/
(weights, config, card, the oracle head's files, the autoencoder's latent_map.npz), and for
the parsed-data cache, a copy in a temporary directory is truncated (half its bytes), garbled
(up to 2,000 bytes in its middle changed) or emptied (0 bytes), then loaded through the loader
that reads it, pointed at the copy by its directory argument. Outcomes:

- "named error": a ModelError or DataError whose message names the damaged file;
- "rebuilt": the cache was rebuilt and the answer is the one a fresh parse gives;
- "no effect": loaded, and the answer equals the undamaged file's (reported, not a failure);
- failures: "wrong answer" (loaded, and a probe differs from the undamaged file's), "unnamed
  error" (ModelError/DataError not naming the file), "traceback" (any other exception).

A probe is a quick use of the loaded model: the oracle predicts SrYF5, NaCl and Si; the
autoencoder encodes and decodes three formulas; the generator samples 64 points; the map's
arrays and lift are compared; data loaders' tables are compared. Runs in one child process
(Settings read from the environment there; the caller's caches and settings are untouched),
single-threaded, in about two minutes. `measure()` returns the counts and the failures.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORRUPTIONS = ("truncated", "garbled", "emptied")
FAILURES = ("wrong answer", "unnamed error", "traceback")
GARBLE_BYTES = 2000
PROBE_FORMULAS = ["SrYF5", "NaCl", "Si"]


def measure(only: list[str] | None = None, checksums: bool = True, timeout_s: float = 900) -> dict:
    """{counts: {outcome: n}, failures: [...], cases: [...], ...}; `only`: files (as 'models/gan/config.json',
    or 'cache') to restrict the run to (tests); `checksums=False`: with Settings.verify_checksums off, what
    the loaders' own checks catch (a garbled weight that stays finite is then a wrong answer by design)."""
    env = {**os.environ, "WBG_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    for var in ("WBG_MODELS_DIR", "WBG_DATA_DIR", "WBG_VERIFY_CHECKSUMS"):  # the shipped files, default checks
        env.pop(var, None)
    if not checksums:
        env["WBG_VERIFY_CHECKSUMS"] = "0"
    with tempfile.TemporaryDirectory(prefix="wbg-corruption-") as tmp:
        env["WBG_CACHE_DIR"] = str(Path(tmp) / "cache")  # never the repository's .cache
        result_file = Path(tmp) / "result.json"  # not stdout: LightGBM prints there, garbled bytes included
        code = (f"import sys, json; sys.path.insert(0, {str(ROOT / 'bench')!r}); import robust_corruption as r; "
                f"open({str(result_file)!r}, 'w').write(json.dumps(r._run_all({tmp!r}, {only!r})))")
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, timeout=timeout_s)
        if out.returncode != 0:
            err = out.stderr.decode("utf-8", "replace")[-2000:]
            raise RuntimeError(f"the corruption run failed (exit {out.returncode}): {err}")
        result = json.loads(result_file.read_text())
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


# ------------------------------------------------------------------ in the child process

def corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "emptied":
        path.write_bytes(b"")
    elif how == "garbled":
        import numpy as np

        n = min(GARBLE_BYTES, max(1, len(data) // 4))
        start = max(0, len(data) // 2 - n // 2)
        noise = np.random.default_rng(len(data)).integers(1, 256, n, dtype=np.uint8)  # never 0: every byte changes
        mid = (np.frombuffer(data[start : start + n], np.uint8) ^ noise[: len(data[start : start + n])]).tobytes()
        path.write_bytes(data[:start] + mid + data[start + n :])
    else:
        raise ValueError(how)


def _same(a, b) -> bool:
    import numpy as np
    import pandas as pd

    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, pd.DataFrame):
        return a.equals(b)
    if isinstance(a, np.ndarray):
        if a.dtype.kind in "fc":
            return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=False))
        return a.shape == b.shape and bool((a == b).all())
    return a == b


def _probe_models(kind: str, directory: Path):
    """Load one checkpoint directory through its loaders and use it a little."""
    import numpy as np

    if kind == "oracle":
        from wbg_core.models.oracle import load

        pred = load(directory).predict(PROBE_FORMULAS).frame()
        return {c: pred[c].to_numpy(np.float64) for c in ("band_gap_mean", "band_gap_std", "p_nonmetal")}
    if kind == "autoencoder":
        from wbg_core.models.autoencoder import load
        from wbg_core.models.latent_map import LatentMap

        ae = load(directory)
        z, ok, _ = ae.encode_formulas(PROBE_FORMULAS + ["Ac2S3"], refine=False)
        lm = LatentMap.load(directory)
        pts = lm.xy[:: max(1, len(lm.xy) // 5)][:5]
        return {"z": z, "decoded": [str(f) for f in ae.decode(z)], "map_formula": lm.formula[:1000],
                "map_xy": lm.xy, "map_z": lm.z, "box": np.r_[lm.latent_lo, lm.latent_hi],
                "lift": lm.lift(pts), "settings": lm.settings.__dict__, "metrics": lm.metrics}
    if kind == "gan":
        from wbg_core.models.gan import load

        g = load(directory)
        return {"probs": g.sample_probs(64, seed=0), "drop": g.compound_max_drop}
    raise ValueError(kind)


def _probe_data(name: str, data_dir: Path):
    from wbg_core.data.loaders import (BANDGAP_FILE, EMBEDDING_FILE, STRUCTURES_FILE, STRUCTURES_META_FILE,
                                       load_bandgaps, load_element_embedding, load_structures)
    from wbg_core.data.registry import REGISTRY_FILE, load_registry

    out = {}
    if name in (BANDGAP_FILE, REGISTRY_FILE):
        out["bandgaps"] = load_bandgaps(data_dir).drop(columns=["encode_error"])
    if name in (STRUCTURES_FILE, STRUCTURES_META_FILE, REGISTRY_FILE):
        pool = load_structures(data_dir)
        out["structures"] = [pool.meta, pool.cell, pool.offsets, pool.numbers, pool.frac]
    if name in (EMBEDDING_FILE, REGISTRY_FILE):
        out["embedding"] = load_element_embedding(data_dir)
    if name == REGISTRY_FILE:
        out["registry"] = load_registry(data_dir)
    return out


def _classify(run, reference, file_name: str) -> tuple[str, str]:
    from wbg_core.data.registry import DataError
    from wbg_core.models.errors import ModelError

    try:
        got = run()
    except (ModelError, DataError) as exc:
        return ("named error" if file_name in str(exc) else "unnamed error"), f"{type(exc).__name__}: {exc}"[:300]
    except Exception as exc:  # noqa: BLE001 (what we are counting)
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return "traceback", tb[:300]
    return ("no effect", "") if _same(reference, got) else ("wrong answer", "loaded, and the probe differs")


def _run_all(tmp: str, only: list[str] | None = None) -> dict:
    from wbg_core.data.registry import REGISTRY_FILE, load_registry
    from wbg_core.settings import get_settings, set_torch_threads

    set_torch_threads(1)
    tmp = Path(tmp)
    settings = get_settings()
    cases, t0 = [], time.perf_counter()

    def want(rel: str) -> bool:
        return only is None or rel in only

    # -------- checkpoints
    models_dir = Path(settings.models_dir)
    for model_dir in sorted(p for p in models_dir.iterdir() if (p / "config.json").is_file()):
        kind = model_dir.name
        files = sorted(f.name for f in model_dir.iterdir() if f.is_file())
        if not any(want(f"models/{kind}/{f}") for f in files):
            continue
        pristine = tmp / "pristine" / kind
        shutil.copytree(model_dir, pristine)
        reference = _probe_models(kind, pristine)
        for name in files:
            if not want(f"models/{kind}/{name}"):
                continue
            for how in CORRUPTIONS:
                d = tmp / f"case{len(cases)}" / kind  # no file name in the path: the message must name it
                shutil.copytree(pristine, d)
                corrupt(d / name, how)
                outcome, detail = _classify(lambda: _probe_models(kind, d), reference, name)
                cases.append({"file": f"models/{kind}/{name}", "corruption": how, "outcome": outcome, "detail": detail})
                shutil.rmtree(d.parent)

    # -------- data files (as registered) and the registry itself
    data_dir = Path(settings.data_dir)
    names = sorted(load_registry(data_dir)["files"]) + [REGISTRY_FILE]
    if any(want(f"data/{n}") for n in names):
        pristine = tmp / "pristine-data"
        shutil.copytree(data_dir, pristine)
        for name in names:
            if not want(f"data/{name}"):
                continue
            reference = _probe_data(name, pristine)
            for how in CORRUPTIONS:
                d = tmp / f"case{len(cases)}" / "data"
                shutil.copytree(pristine, d)
                corrupt(d / name, how)
                outcome, detail = _classify(lambda: _probe_data(name, d), reference, name)
                cases.append({"file": f"data/{name}", "corruption": how, "outcome": outcome, "detail": detail})
                shutil.rmtree(d.parent)

    # -------- the parsed-data cache (derived: rebuilt, never an error)
    if want("cache"):
        cases += _cache_cases(tmp / "cache-runs", data_dir)

    counts: dict[str, int] = {}
    for c in cases:
        counts[c["outcome"]] = counts.get(c["outcome"], 0) + 1
    failures = [c for c in cases if c["outcome"] in FAILURES]
    return {"counts": counts, "cases_run": len(cases), "failures": failures, "passed": not failures,
            "verify_checksums": settings.verify_checksums, "cases": cases,
            "not_covered": {"data/SOURCES.md": "documentation: no loader reads it",
                            "models/chgnet_element_refs.json": "not a checkpoint (structures.stability reads it; "
                                                               "a damaged one is named: tests/test_structures_stability.py)",
                            "models/sevennet-0_element_refs.json": "the same, for SevenNet-0"},
            "child_seconds": round(time.perf_counter() - t0, 1)}


def _cache_cases(tmp: Path, data_dir: Path) -> list[dict]:
    import numpy as np
    import pandas as pd

    from wbg_core.data.loaders import BANDGAP_FILE, _read_parse_cache, parsed_formulas
    from wbg_core.data.registry import data_path

    path = data_path(BANDGAP_FILE, data_dir)
    formulas = pd.read_csv(path, keep_default_na=False, dtype={"formula": str})["formula"].tolist()
    cache_dir = tmp / "cache"
    fresh = parsed_formulas(path, formulas, cache_dir=cache_dir)
    (cache,) = cache_dir.glob("parsed-*.npz")
    good = cache.read_bytes()
    key = cache.stem.rsplit("-", 1)[1]
    out = []
    for how in (*CORRUPTIONS, "well-formed but wrong"):
        cache.write_bytes(good)
        if how == "well-formed but wrong":  # a valid npz of the right shapes whose rows are another order
            with np.load(cache, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            perm = np.random.default_rng(0).permutation(len(formulas))
            for k in ("formula", "encodable", "encode_error", "counts"):
                arrays[k] = arrays[k][perm]
            with open(cache, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        else:
            corrupt(cache, how)
        try:
            got = parsed_formulas(path, formulas, cache_dir=cache_dir)
            right = _same(list(fresh[0]), list(got[0])) and _same(fresh[1:], got[1:])
            rewritten = _read_parse_cache(cache, key, len(formulas)) is not None
            outcome = "rebuilt" if right and rewritten else "wrong answer"
            detail = "" if outcome == "rebuilt" else f"same answer: {right}, cache rewritten: {rewritten}"
        except Exception as exc:  # noqa: BLE001
            outcome, detail = "traceback", traceback.format_exception_only(type(exc), exc)[-1].strip()[:300]
        out.append({"file": f".cache/{cache.name}", "corruption": how, "outcome": outcome, "detail": detail})
    return out


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--no-checksums"]
    res = measure(args or None, checksums="--no-checksums" not in sys.argv)
    print(json.dumps({k: v for k, v in res.items() if k != "cases"}, indent=2))
