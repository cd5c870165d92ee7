"""UNIREX Workbench core library: data, models, extractors, losses, metrics and engine.

This package never imports ``ui`` or ``store`` (README, "Layout": the import contract in .importlinter checks it). Importing it stays light:
``unirex.load_checkpoint`` (= :func:`unirex.checkpoint.open_checkpoint`: a checkpoint folder, a run id or a
Hugging Face Hub repo id -> a model that predicts and explains text) is imported on first use.
"""

from unirex.errors import UnirexError

__all__ = ["UnirexError", "load_checkpoint"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "load_checkpoint":
        from unirex.checkpoint import open_checkpoint

        return open_checkpoint
    raise AttributeError(f"module 'unirex' has no attribute {name!r}")
