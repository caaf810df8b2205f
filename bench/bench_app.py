"""The web app in a real browser (Debian chromium + Playwright): cold start to a usable home
page, and switching pages once warm.

Cold start: from `streamlit run` (a fresh server process, nothing cached) to the home page
fully rendered (title drawn, the script finished). Page switch: clicking a sidebar link to
the page rendered, after every page was opened once (models cached). Medians of `repeats`.
Baseline in the same run: the time to import streamlit and wbg_core's models in a bare
Python process, the floor any server start pays.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

TARGET_COLD_S = 15.0
TARGET_SWITCH_S = 2.0
SWITCH_PAGES = ["Oracle", "Models", "Active learning", "Band gap window", "Latent explorer"]


def _cold(pw) -> float:
    from test_browser import _free_port, launch_browser, start_server, wait_idle

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    browser = launch_browser(pw)
    page = browser.new_page()
    t0 = time.perf_counter()
    proc = start_server(port, Path("/tmp") / f"bench_app_{port}.log")
    try:
        while True:
            try:
                page.goto(url, timeout=5000)
                break
            except Exception:  # noqa: BLE001 - server not listening yet
                if time.perf_counter() - t0 > 120:
                    raise
                time.sleep(0.1)
        wait_idle(page, '[data-testid="stMain"] h1')
        page.wait_for_selector('[data-testid="stMetricValue"], [data-testid="stAlert"]', timeout=120_000)
        wait_idle(page)
        return time.perf_counter() - t0
    finally:
        browser.close()
        proc.terminate()
        proc.wait(10)


def _switches(pw, repeats: int) -> dict[str, list[float]]:
    from test_browser import _free_port, launch_browser, start_server, wait_healthy, wait_idle

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(port, Path("/tmp") / f"bench_app_{port}.log")
    browser = launch_browser(pw)
    out: dict[str, list[float]] = {p: [] for p in SWITCH_PAGES}
    try:
        wait_healthy(url, proc)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, timeout=120_000)
        wait_idle(page, '[data-testid="stMain"] h1')
        for name in SWITCH_PAGES:  # warm: every page once
            page.locator('[data-testid="stSidebarNav"] a', has_text=name).first.click()
            wait_idle(page, f'[data-testid="stMain"] h1')
        for _ in range(repeats):
            for name in SWITCH_PAGES:
                link = page.locator('[data-testid="stSidebarNav"] a', has_text=name).first
                t0 = time.perf_counter()
                link.click()
                page.wait_for_url(f"**/{name.replace(' ', '_')}*", timeout=60_000)
                wait_idle(page, '[data-testid="stMain"] h1')
                out[name].append(time.perf_counter() - t0)
    finally:
        browser.close()
        proc.terminate()
        proc.wait(10)
    return out


def _import_floor() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import streamlit, wbg_core.models, wbg_core.app_support"], check=True)
    return time.perf_counter() - t0


def run(repeats: int = 3) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        colds = [_cold(pw) for _ in range(repeats)]
        sw = _switches(pw, repeats)
    floor = statistics.median(_import_floor() for _ in range(repeats))
    cold = statistics.median(colds)
    per_page = {k: round(statistics.median(v), 2) for k, v in sw.items() if v}
    switch = statistics.median([x for v in sw.values() for x in v])
    worst = max(per_page.values()) if per_page else float("nan")
    passed = cold < TARGET_COLD_S and switch < TARGET_SWITCH_S
    rows = "\n".join(f"| {k} | {v:.2f} |" for k, v in per_page.items())
    md = (f"Cold start to a usable home page (fresh `streamlit run`, measured in chromium): median **{cold:.1f} s** "
          f"over {repeats} starts (target < {TARGET_COLD_S:.0f} s; runs: {', '.join(f'{c:.1f}' for c in colds)}). "
          f"Baseline: importing streamlit and the models package in a bare process takes {floor:.1f} s.\n\n"
          f"Page switch once warm (sidebar click to the page rendered): median **{switch:.2f} s**, slowest page "
          f"median {worst:.2f} s (target < {TARGET_SWITCH_S:.0f} s).\n\n| page | median switch (s) |\n|---|---|\n{rows}\n")
    return {"title": "Web app: cold start and page switch (browser)",
            "target": f"cold start < {TARGET_COLD_S:.0f} s, page switch < {TARGET_SWITCH_S:.0f} s",
            "passed": passed, "cold_start_s": round(cold, 2), "cold_runs_s": [round(c, 2) for c in colds],
            "switch_median_s": round(switch, 2), "switch_per_page_s": per_page, "import_floor_s": round(floor, 2),
            "markdown": md}


if __name__ == "__main__":
    import json

    r = run(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
    print(json.dumps({k: v for k, v in r.items() if k != "markdown"}, indent=2))
    print(r["markdown"])
