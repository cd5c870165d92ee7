"""Paths that come from data (a dataset name, a docid, an annotation id) stay inside their folder.

One rule for every such path: it is resolved (``..`` and symbolic links followed) and refused unless the
result lies inside the folder it was meant for. The messages name the offending value and the folder it
had to stay in, never the place it resolved to.
"""

from __future__ import annotations

from pathlib import Path

from unirex.errors import UnirexError


def resolve_inside(root: Path, relative: str | Path, what: str, inside: str | None = None) -> Path:
    """``root / relative`` with links and ``..`` resolved; a :class:`UnirexError` when it is not inside ``root``.

    ``what`` names the value in the message (``"document 'x'"``); ``inside`` names the folder (default:
    ``root``). An absolute ``relative`` is refused like any other path outside ``root``.
    """
    try:
        root_r = Path(root).resolve()
        target = (root_r / relative).resolve()
    except (OSError, RuntimeError, ValueError):  # a NUL byte, a link loop, a name too long
        raise UnirexError(f"{what} is not a usable path inside {inside or root}") from None
    if target != root_r and not target.is_relative_to(root_r):
        raise UnirexError(f"{what} points outside {inside or root}: refused (paths in datasets must stay inside "
                          "their folder; links out of it are not followed)")
    return target


def check_folder_name(name: str, what: str = "dataset") -> str:
    """``name`` if it names one folder directly below another: not empty, no path separator, not ``.``
    or ``..``, not hidden (names starting with ``.`` are the workbench's temporary folders), no control
    character."""
    if not isinstance(name, str) or not name.strip():
        raise UnirexError(f"{what} name is empty")
    bad = None
    if "/" in name or "\\" in name:
        bad = "has a path separator"
    elif name in (".", "..") or name.startswith("."):
        bad = "starts with '.'"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        bad = "has a control character"
    elif len(name.encode()) > 200:
        bad = "is longer than 200 bytes"
    if bad:
        raise UnirexError(f"{what} name {name[:80]!r} {bad}: a {what} is a folder directly under the data folder, "
                          "named without a path (to use a folder elsewhere, set data_dir= to the folder that holds it)")
    return name


def dataset_path(data_dir: Path, name: str) -> Path:
    """The folder of dataset ``name`` under ``data_dir``: the name is checked (:func:`check_folder_name`) and
    the folder, resolved, must lie inside ``data_dir`` (a link to elsewhere is refused)."""
    check_folder_name(name)
    resolve_inside(data_dir, name, f"dataset '{name}'", inside=f"the data folder {data_dir}")
    return Path(data_dir) / name


__all__ = ["check_folder_name", "dataset_path", "resolve_inside"]
