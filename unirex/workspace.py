"""The workspace: one folder that holds everything a user makes (``runs/``, ``data/``, the DuckDB file).

``./workspace`` by default, or what ``UNIREX_WORKSPACE`` (or ``--workspace``) names.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "UNIREX_WORKSPACE"


def workspace_dir(explicit: str | os.PathLike | None = None) -> Path:
    return Path(explicit or os.environ.get(ENV_VAR) or "workspace").expanduser()


def data_dir(workspace: str | os.PathLike | None = None) -> Path:
    return workspace_dir(workspace) / "data"
