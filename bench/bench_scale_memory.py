"""Ray's memory with the pool, alone (issue #15): `wbg bench scale` measures it beside the local
engine, the kill and the restart in one 35-minute run; this is the 12-minute part that says
whether the peak of all Ray processes is flat from 10^6 to 10^7 samples, and which role (shard
workers, labelling actors, driver, Ray's own processes) holds the memory. Baseline: the same
engine at 10^6 in the same run.
"""
from __future__ import annotations

from bench_scale import FLAT_TARGET, MEMORY_TARGET_GB, SIZES, memory_run


def run(repeats: int = 1) -> dict:
    res = memory_run(SIZES)
    rows = res["rows"]
    roles = sorted({k for r in rows for k in r["peak_gb_by_role"]})
    table = ("| samples | Ray time | peak, all Ray processes | " + " | ".join(f"peak: {k}" for k in roles) + " |\n"
             "|---|---|---|" + "---|" * len(roles) + "\n"
             + "".join(f"| {r['samples']:,} | {r['ray_s']:.0f} s | {r['ray_peak_gb']:.2f} GB | "
                       + " | ".join(f"{r['peak_gb_by_role'].get(k, 0.0):.2f} GB" for k in roles) + " |\n"
                       for r in rows))
    ok = res["ray_peak_growth"] <= FLAT_TARGET and all(r["ray_peak_gb"] < MEMORY_TARGET_GB for r in rows)
    return {
        "title": "Ray's peak memory from 10^6 to 10^7 samples (local Ray, 2 CPUs), by role",
        "target": f"peak of all Ray processes < {MEMORY_TARGET_GB} GB and flat: largest <= {FLAT_TARGET}x smallest",
        "passed": bool(ok), **res,
        "markdown": table + f"\nGrowth from the smallest to the largest pool: {res['ray_peak_growth']:.2f}x. A role's "
                            "peak is the most its processes held together at one sample (every 0.5 s); the roles "
                            "peak at different moments, so they do not add up to the total.\n",
    }
