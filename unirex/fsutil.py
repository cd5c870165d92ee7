"""Atomic file writes: write beside the target, then rename, so readers never see half a file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable


def atomic_write(path: Path, writer: Callable[[str], None]) -> None:
    """Call ``writer(tmp_path)`` on a temporary file in ``path``'s folder, then rename it to ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2, default=str)))


def replace_dir(src: Path, target: Path) -> None:
    """Move the finished folder ``src`` to ``target`` (same file system), replacing an existing one: the
    old folder is renamed aside first and removed only after the new one is in place."""
    src, target = Path(src), Path(target)
    if target.exists():
        old = target.with_name(f".{target.name}-tmp-old-{os.getpid()}-{time.time_ns()}")
        os.replace(target, old)
        os.replace(src, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, target)


@contextmanager
def atomic_dir(target: Path, prefix: str | None = None):
    """Yield a temporary folder beside ``target``; when the block succeeds it replaces ``target``
    (:func:`replace_dir`), when it fails it is removed and ``target`` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix or f".{target.name}-tmp-", dir=target.parent))
    try:
        yield tmp
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
