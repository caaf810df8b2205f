"""Models by name: the names a checkpoint set holds, and one object that loads them from a directory.

Why: the CLI, the job runner, the Models page and the engine each kept their own list of
model names, and the engine loaded "the shipped one" when handed nothing, so a page that had
switched checkpoint sets still screened with the shipped oracle. Now whoever starts the work
(a page, a CLI command, a benchmark) picks a CheckpointSet and hands its models down; an
unknown name is a clear error (as CHGNet's `load(model_name)`). Importing this module does not
import torch: the models load on first use, each once per process (their loaders cache).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path


class ModelName(str, Enum):
    AUTOENCODER = "autoencoder"
    ORACLE = "oracle"
    GAN = "gan"


MODEL_NAMES = tuple(m.value for m in ModelName)
GENERATORS = {"gan": "the GAN", "ae": "uniform samples of the autoencoder's latent box"}


def model_name(name: str | ModelName) -> ModelName:
    try:
        return ModelName(name)
    except ValueError:
        raise ValueError(f"Unknown model_name={str(name)!r}: a checkpoint set holds {', '.join(MODEL_NAMES)}") from None


@dataclass(frozen=True)
class CheckpointSet:
    """A directory with one sub-directory per model (models/, or a training run's output)."""

    directory: Path

    @classmethod
    def shipped(cls) -> "CheckpointSet":
        from ..settings import get_settings

        return cls(Path(get_settings().models_dir))

    def path(self, name: str | ModelName) -> Path:
        return Path(self.directory) / model_name(name).value

    def load(self, name: str | ModelName):
        """The model of that name; a missing or damaged checkpoint is a ModelError naming its file."""
        name = model_name(name)
        if name is ModelName.ORACLE:
            return self.oracle()
        if name is ModelName.GAN:
            return self.gan()
        return self.autoencoder()

    def oracle(self):
        from .oracle import load_oracle

        return load_oracle(str(self.path(ModelName.ORACLE)))

    def gan(self):
        from .gan import load_gan

        return load_gan(str(self.path(ModelName.GAN)))

    def autoencoder(self):
        from .autoencoder import load_autoencoder

        return load_autoencoder(str(self.path(ModelName.AUTOENCODER)))

    def generator(self, kind: str = "gan"):
        """The sampler screening draws its pool from: 'gan', or 'ae' (the latent box, decoded as the map decodes)."""
        if kind == "gan":
            return self.gan()
        if kind == "ae":
            from .autoencoder import LatentSampler

            return LatentSampler.shipped(str(self.path(ModelName.AUTOENCODER)))
        raise ValueError(f"Unknown generator {kind!r}: use {' or '.join(GENERATORS)}")
