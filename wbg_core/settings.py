"""One settings object for the whole package, overridable by WBG_* environment variables."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WBG_")

    data_dir: Path = _ROOT / "data"
    models_dir: Path = _ROOT / "models"
    campaigns_dir: Path = _ROOT / "campaigns"
    # Derived data (parsed formulas, count matrices) kept between processes; "" turns it off.
    cache_dir: str = str(_ROOT / ".cache")
    # torch threads: the target machine has 2 cores; more threads than cores slows torch 5-30x.
    torch_threads: int = 2
    split_seed: int = 0
    verify_checksums: bool = True


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def set_torch_threads(n: int | None = None) -> int:
    """Set torch's CPU threads (default: the setting) and return the number, for other libraries too."""
    import torch

    n = n or get_settings().torch_threads
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
