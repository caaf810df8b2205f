"""The web app in a real browser (Debian chromium + Playwright): cold start to a usable home
page, and switching pages once warm.

Cold start: from `streamlit run` (a fresh server process, nothing cached) to the home page
fully rendered (title drawn, the script finished). Page switch: clicking a sidebar link to
the page rendered (its own title shown, the script finished, every plotly chart drawn), after
every page was opened once (models cached). Medians of `repeats`.
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
# (sidebar label, URL path) of the pages switched between
SWITCH_PAGES = [("Oracle", "Oracle"), ("Models", "Models"), ("Active learning", "Active_learning"),
                ("Band-gap window", "Band_gap_window"), ("Latent explorer", "Latent_explorer")]


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


_H1 = "document.querySelector('[data-testid=\"stMain\"] h1')"


def _rendered(page, h1: str | None = None, not_h1: str | None = None) -> None:
    """The new page is on screen: its own title (h1, or any title but not_h1), the script run
    over, every visible plotly chart drawn."""
    from test_browser import wait_idle

    page.wait_for_function(
        f"([t, n]) => {{ const h = {_H1}; if (!h) return false; const s = h.innerText.trim();"
        " return t === null ? s !== n : s === t; }", arg=[h1, not_h1], timeout=120_000, polling="raf")
    wait_idle(page, '[data-testid="stMain"] h1')
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')]"
        ".every(c => c.offsetParent === null || c.querySelector('.main-svg'))", timeout=60_000, polling="raf")


def _switches(pw, repeats: int) -> dict[str, list[float]]:
    from test_browser import _free_port, launch_browser, start_server, wait_healthy, wait_idle

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(port, Path("/tmp") / f"bench_app_{port}.log")
    browser = launch_browser(pw)
    out: dict[str, list[float]] = {label: [] for label, _ in SWITCH_PAGES}
    try:
        wait_healthy(url, proc)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, timeout=120_000)
        wait_idle(page, '[data-testid="stMain"] h1')
        titles = {}
        for name, path in SWITCH_PAGES:  # warm: every page once (and learn its title)
            before = page.locator('[data-testid="stMain"] h1').first.inner_text().strip()
            page.locator(f'[data-testid="stSidebarNav"] a[href$="/{path}"]').first.click()
            page.wait_for_url(f"**/{path}*", timeout=60_000)
            _rendered(page, not_h1=before)
            titles[name] = page.locator('[data-testid="stMain"] h1').first.inner_text().strip()
        for _ in range(repeats):
            for name, path in SWITCH_PAGES:
                link = page.locator(f'[data-testid="stSidebarNav"] a[href$="/{path}"]').first
                t0 = time.perf_counter()
                link.click()
                page.wait_for_url(f"**/{path}*", timeout=60_000)
                _rendered(page, titles[name])
                out[name].append(time.perf_counter() - t0)
    finally:
        browser.close()
        proc.terminate()
        proc.wait(10)
    return out


def _import_floor() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import streamlit, wbg_core.models, wbg_core.services.status"], check=True)
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
    passed = cold < TARGET_COLD_S and worst < TARGET_SWITCH_S  # every page, not only the median one
    rows = "\n".join(f"| {k} | {v:.2f} |" for k, v in per_page.items())
    md = (f"Cold start to a usable home page (fresh `streamlit run`, measured in chromium): median **{cold:.1f} s** "
          f"over {repeats} starts (target < {TARGET_COLD_S:.0f} s; runs: {', '.join(f'{c:.1f}' for c in colds)}). "
          f"Baseline: importing streamlit and the models package in a bare process takes {floor:.1f} s.\n\n"
          f"Page switch once warm (sidebar click to the page rendered): median **{switch:.2f} s**, slowest page "
          f"median {worst:.2f} s (target < {TARGET_SWITCH_S:.0f} s).\n\n| page | median switch (s) |\n|---|---|\n{rows}\n")
    return {"title": "Web app: cold start and page switch (browser)",
            "target": f"cold start < {TARGET_COLD_S:.0f} s, every page switch < {TARGET_SWITCH_S:.0f} s",
            "passed": passed, "cold_start_s": round(cold, 2), "cold_runs_s": [round(c, 2) for c in colds],
            "switch_median_s": round(switch, 2), "switch_per_page_s": per_page, "import_floor_s": round(floor, 2),
            "markdown": md}


if __name__ == "__main__":
    import json

    r = run(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
    print(json.dumps({k: v for k, v in r.items() if k != "markdown"}, indent=2))
    print(r["markdown"])
