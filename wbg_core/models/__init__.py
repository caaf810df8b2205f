"""Pretrained models shipped in models/: autoencoder, oracle (ensemble), generator, random forest.

Each model's module holds its config, network and loading; its training and evaluation sit
beside it in `<model>_training.py` (so loading a checkpoint never imports training code).
Checkpoints are rebuilt from their directory alone (config.json holds the constructor arguments).
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import ModelError
from .registry import MODEL_NAMES, CheckpointSet, ModelName


def load_autoencoder(directory: str | None = None):
    from .autoencoder import load_autoencoder as _load

    return _load(directory)


def load_oracle(directory: str | None = None):
    from .oracle import load_oracle as _load

    return _load(directory)


def load_gan(directory: str | None = None):
    from .gan import load_gan as _load

    return _load(directory)


def model_cards(models_dir: Path | None = None) -> dict[str, dict]:
    """card.json of each shipped model ({'error': ...} where missing or unreadable)."""
    from ..settings import get_settings

    root = Path(models_dir or get_settings().models_dir)
    cards = {}
    for name in MODEL_NAMES:
        path = root / name / "card.json"
        try:
            cards[name] = json.loads(path.read_text())
        except FileNotFoundError:
            cards[name] = {"error": f"{path} is missing"}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            cards[name] = {"error": f"{path} is corrupt: {exc}"}
    return cards


__all__ = ["MODEL_NAMES", "CheckpointSet", "ModelError", "ModelName", "load_autoencoder", "load_gan", "load_oracle", "model_cards"]
