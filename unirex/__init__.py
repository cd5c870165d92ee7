"""UNIREX Workbench core library: data, models, extractors, losses, metrics and engine.

This package never imports ``ui`` or ``store`` (see DESIGN.md, "Layers").
"""

from unirex.errors import UnirexError

__all__ = ["UnirexError"]
__version__ = "0.1.0"
