"""Screening 1,000,000 generated candidates end to end: generate -> decode -> structure
filters -> de-duplicate -> formulas and novelty -> oracle -> window -> SMACT.

The generator is the shipped GAN (the screening default). Run in a child process so that its
peak resident memory is the pipeline's own. Baseline in the same run: the obvious path (the
same GAN samples, a formula string for every sample, oracle.predict on the strings, SMACT on
all) on a 20,000-sample slice, extrapolated to 1M; and the cost of decoding 1M points with the
autoencoder generator instead, through its ConvTranspose2d layers and the GEMM form.
"""
from __future__ import annotations

import multiprocessing as mp
import resource
import time

N = 1_000_000
TARGET_S = 120.0
TARGET_GB = 4.0


def _child(n: int, queue) -> None:
    from wbg_core.engine.screening import ScreenConfig, screen
    from wbg_core.models import load_gan, load_oracle
    from wbg_core.settings import set_torch_threads

    set_torch_threads()
    t = time.perf_counter()
    gan, oracle = load_gan(), load_oracle()
    from wbg_core.data import load_bandgaps

    load_bandgaps()
    load_s = time.perf_counter() - t
    res = screen(ScreenConfig(min_gap=5.0, pool=n, seed=0), oracle, gan)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    queue.put({"stage_s": res.stage_s, "funnel": res.funnel, "peak_gb": peak_gb, "load_s": load_s,
               "passed": len(res), "top": res.candidates.head(5)[["formula", "band_gap_mean"]].to_dict(orient="records")})


def _naive(n: int) -> float:
    """The obvious path, seconds per sample: the same GAN samples, then a formula string for
    every sample, oracle.predict on the strings and the compound rule on all (no funnel)."""
    import numpy as np

    from wbg_core.composition import compound_valid, counts_to_formulas
    from wbg_core.models import load_gan, load_oracle

    gen, oracle = load_gan(), load_oracle()
    t = time.perf_counter()
    counts, valid = gen.sample_counts(n, seed=1)
    f = counts_to_formulas(counts[valid])
    oracle.predict(list(f))  # a Prediction per formula string: the slow path measured
    compound_valid(np.array(f, dtype=object))
    return (time.perf_counter() - t) / n


def _autoencoder_generation(n: int) -> dict:
    """The other generator (decoded latent-box points), seconds per 1M samples: the decoder's
    ConvTranspose2d layers as trained vs the GEMM form screening uses."""
    import numpy as np
    import torch

    from wbg_core.models.autoencoder import LatentSampler

    gen = LatentSampler.shipped()
    z = np.random.default_rng(1).uniform(gen.lo, gen.hi, (n, len(gen.lo))).astype(np.float32)
    t = time.perf_counter()
    with torch.no_grad():
        gen.ae.net.decode_logits(torch.from_numpy(z))
    conv = time.perf_counter() - t
    t = time.perf_counter()
    gen.ae.decode_logits(torch.from_numpy(z))
    gemm = time.perf_counter() - t
    return {"conv_transpose_s_per_1M": round(conv * N / n, 1), "gemm_s_per_1M": round(gemm * N / n, 1)}


def run(repeats: int = 1) -> dict:
    ctx = mp.get_context("spawn")
    results = []
    for _ in range(max(1, min(repeats, 3))):
        q = ctx.Queue()
        p = ctx.Process(target=_child, args=(N, q))
        p.start()
        results.append(q.get())
        p.join()
    # the median run (the upper one of two); every run's total is reported beside it
    best = sorted(results, key=lambda r: r["stage_s"]["total"])[len(results) // 2]
    per_naive = _naive(20_000)
    ae_gen = _autoencoder_generation(20_000)
    st, fn = best["stage_s"], best["funnel"]
    total = st["total"]
    runs_text = ", ".join(f"{r['stage_s']['total']:.1f}" for r in results)
    return {
        "title": "Screening 1,000,000 generated candidates (window >= 5 eV)",
        "target": f"< {TARGET_S:.0f} s end to end, < {TARGET_GB:.0f} GB",
        "passed": total < TARGET_S and best["peak_gb"] < TARGET_GB,
        "total_s": total,
        "runs_total_s": [r["stage_s"]["total"] for r in results],
        "stage_s": st,
        "funnel": fn,
        "peak_gb": round(best["peak_gb"], 2),
        "naive_s_per_1M": round(per_naive * N, 1),
        "autoencoder_generation": ae_gen,
        "markdown": (
            "| stage | seconds |\n|---|---|\n" + "".join(f"| {k} | {v:.2f} |\n" for k, v in st.items() if k != "total")
            + f"| **total, median of {len(results)} runs** | **{total:.1f} s** (runs: {runs_text}) |\n| peak resident memory (child process, models loaded) | {best['peak_gb']:.2f} GB |\n"
            f"| baseline: strings + oracle.predict + SMACT on every sample, same run (20k slice x 50) | {per_naive * N:.0f} s |\n"
            f"| the autoencoder as generator instead (`--generator ae`), decoding 1M points: ConvTranspose2d / GEMM form | "
            f"{ae_gen['conv_transpose_s_per_1M']:.0f} s / {ae_gen['gemm_s_per_1M']:.0f} s |\n\n"
            "Funnel: " + " -> ".join(f"{k} {v:,}" for k, v in fn.items()) + f". Model load time {best['load_s']:.1f} s (not counted).\n"
        ),
    }
