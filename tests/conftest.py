import os

import pytest

os.environ.setdefault("WBG_TORCH_THREADS", "2")

BROWSER_INSTALL = "sudo apt-get install -y --no-install-recommends chromium fonts-dejavu-core"


@pytest.fixture(scope="session")
def bandgaps():
    from wbg_core.data import load_bandgaps

    return load_bandgaps()


@pytest.fixture(scope="session")
def oracle_test_sample(bandgaps):
    """The shipped oracle on one random sample of 3,000 test formulas (no model saw them), by the one
    evaluation function: (metrics, frame, its own P(in window) as a function of the window)."""
    from wbg_core.models import load_oracle
    from wbg_core.models.oracle_eval import evaluate_model, model_predictor

    oracle = load_oracle()
    base, seen = model_predictor(oracle), {}

    def predict(formulas):
        out = base(formulas)
        seen["p_window"] = out[2]
        return out

    metrics, frame = evaluate_model(predict, bandgaps, split_seed=oracle.card["seed"], n=3000, sample_seed=1)
    return metrics, frame, seen["p_window"]


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's potentials: relaxations are held to one thread anyway, and
    the static energies then match the benchmarks' (run at one thread)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """A skipped browser test is a test that did not run: say so in a block nobody scrolls past."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "browser" in getattr(r, "keywords", {})]
    if not skipped:
        return
    tr = terminalreporter
    tr.write_sep("!", f"{len(skipped)} browser test{'s' if len(skipped) != 1 else ''} NOT RUN (skipped)",
                 red=True, bold=True)
    reasons = [(r.longrepr[2] if isinstance(r.longrepr, tuple) else str(r.longrepr)).removeprefix("Skipped: ")
               for r in skipped]
    for r, reason in zip(skipped, reasons):
        tr.write_line(f"SKIPPED {r.nodeid}: {reason}", red=True)
    if any("chromium" in reason for reason in reasons):
        tr.write_line(f"`make test` installs chromium when run as root; otherwise run: {BROWSER_INSTALL}", bold=True)
    tr.write_sep("!", red=True, bold=True)
