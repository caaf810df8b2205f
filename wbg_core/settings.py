"""One settings object for the whole package, overridable by WBG_* environment variables.

This module is the only reader of the environment: every other module asks `get_settings()`.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WBG_")

    data_dir: Path = Field(_ROOT / "data", description="bundled, compacted data files (registered in data/REGISTRY)")
    models_dir: Path = Field(_ROOT / "models", description="the shipped checkpoints, one folder per model")
    campaigns_dir: Path = Field(_ROOT / "campaigns", description="where the app keeps campaigns, one folder each")
    app_runs_dir: Path = Field(_ROOT / "runs" / "app_train",
                               description="where retraining jobs started from the Models page write their checkpoints")
    runs_dir: Path = Field(_ROOT / "runs", description="where long runs write and resume from, e.g. "
                                                       "`wbg screen --engine ray` shards (runs/screen_<seed>_<pool>)")
    cache_dir: str = Field(str(_ROOT / ".cache"),
                           description="derived data (parsed formulas, count matrices) kept between processes; '' turns it off")
    torch_threads: int = Field(2, ge=1, description="torch CPU threads: more threads than cores slows torch 5-30x")
    potential: str = Field("chgnet", description="the interatomic potential that relaxes structures and gives their energies "
                                                 "unless a command or the page picks another: a key of "
                                                 "wbg_core.structures.potentials.POTENTIALS (chgnet, sevennet-0)")
    split_seed: int = Field(0, description="seed of the train/val/test split every model and benchmark shares")
    verify_checksums: bool = Field(True, description="check data files and weights against their recorded sha256 on load")
    public: bool = Field(False, description="public mode (WBG_PUBLIC=1) for a shared server: retraining and "
                                            "checkpoint switching are hidden in the app and refused server-side")
    train_max_epochs: int = Field(50, ge=1, description="the most epochs a retraining job started from the app may ask for")
    train_max_rows: int = Field(100_000, ge=100, description="the most training rows a retraining job from the app may use")
    upload_max_unpacked_mb: float = Field(50.0, gt=0, description="the most a campaign zip upload may unpack to, in MB")
    upload_max_files: int = Field(500, ge=1, description="the most files a campaign zip upload may hold")


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
