import os

import pytest

os.environ.setdefault("WBG_TORCH_THREADS", "2")


@pytest.fixture(scope="session")
def bandgaps():
    from wbg_core.data import load_bandgaps

    return load_bandgaps()
