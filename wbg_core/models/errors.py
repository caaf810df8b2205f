"""The models' error type, in a module without torch so that the CLI and the app's home page
can name it (and catch it) without paying torch's import."""
from __future__ import annotations


class ModelError(RuntimeError):
    """A checkpoint is missing or corrupt, or a model cannot serve a request; names the file."""
