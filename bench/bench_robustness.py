"""Safe on a shared server (issue #16): the parser's worst case, campaigns under kills and a
second runner, and every bundled file corrupted three ways.

Targets:
  - parser: worst time over 10,000 adversarial inputs of at most 1,000 characters < 50 ms,
    and no exception other than FormulaError;
  - campaigns: at most 1 round lost per kill over 20 random kills of a 20-round run, the final
    state equal to an uninterrupted run, and a second concurrent runner refused;
  - corruption: every bundled data file and checkpoint file, truncated, garbled and emptied,
    gives an error naming the file or a rebuild, never a wrong answer or a traceback.
Baseline in the same run: the parser's median time on the same inputs (its typical cost),
and the uninterrupted campaign's wall time.
The public mode's refusal is a browser test (tests/test_browser.py), not timed here.
"""
from __future__ import annotations

import statistics
import time


def run(repeats: int = 3) -> dict:
    import robust_campaigns
    import robust_corruption
    import robust_parser

    parser_runs = [robust_parser.measure(n=10_000, seed=rep) for rep in range(max(1, repeats))]
    parser = dict(parser_runs[0])
    parser["worst_ms"] = statistics.median(r["worst_ms"] for r in parser_runs)
    parser["median_ms"] = statistics.median(r["median_ms"] for r in parser_runs)
    parser["errors_other_than_FormulaError"] = sum(r["errors_other_than_FormulaError"] for r in parser_runs)
    t = time.perf_counter()
    campaigns = robust_campaigns.measure(kills=20, rounds=20)
    campaigns.setdefault("seconds", time.perf_counter() - t)
    corruption = robust_corruption.measure()

    parser_ok = parser["worst_ms"] < 50 and parser["errors_other_than_FormulaError"] == 0
    camp_ok = (campaigns["max_rounds_lost_per_kill"] <= 1 and campaigns["final_equal_to_uninterrupted"]
               and campaigns["concurrent_refused"])
    corr_fail = corruption["failures"]
    corr_ok = not corr_fail
    md = [
        "| measure | result | target |", "|---|---|---|",
        f"| parser: worst time, {parser['n']:,} adversarial inputs of <= 1,000 characters (median of "
        f"{len(parser_runs)} input sets) | {parser['worst_ms']:.1f} ms (median input {parser['median_ms']:.3f} ms; "
        f"worst: `{parser['worst_input']}`) | < 50 ms |",
        f"| parser: exceptions other than FormulaError | {parser['errors_other_than_FormulaError']} | 0 |",
        f"| campaign: rounds lost per kill, {campaigns['kills']} SIGKILLs during a "
        f"{campaigns.get('rounds', 20)}-round run | at most {campaigns['max_rounds_lost_per_kill']} | <= 1 |",
        f"| campaign: final state equal to an uninterrupted run | {campaigns['final_equal_to_uninterrupted']} | yes |",
        f"| campaign: a second concurrent runner refused, no round lost | {campaigns['concurrent_refused']} | yes |",
        f"| corruption: every bundled file x (truncated, garbled, emptied; the cache also well-formed but wrong) "
        f"| {corruption['cases_run']} cases: " + ", ".join(f"{k} {v}" for k, v in corruption["counts"].items())
        + f"; wrong answers or tracebacks: {len(corr_fail)} | 0 |",
    ]
    if corruption.get("not_covered"):
        md.append("\nNot corrupted here: " + "; ".join(f"{k} ({v})" for k, v in corruption["not_covered"].items()) + ".")
    if corr_fail:
        md.append("\nFailures: " + "; ".join(str(f) for f in corr_fail[:20]))
    return {
        "title": "Robustness on a shared server: parser, campaigns, corrupt files",
        "target": "parser < 50 ms worst case; <= 1 round lost per kill; every corrupt file named or rebuilt",
        "passed": parser_ok and camp_ok and corr_ok,
        "parser": parser, "campaigns": campaigns, "corruption": corruption,
        "markdown": "\n".join(md) + "\n",
    }
