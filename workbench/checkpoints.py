"""Loaded checkpoints, kept in a small LRU cache so explaining one text after another costs one forward.

A checkpoint reference is what a user types: a run id, a run folder or checkpoint folder, or (once the
Hub is wired) a Hugging Face repo id; :func:`unirex.checkpoint.resolve_checkpoint` turns it into a folder.
The cache holds :data:`DEFAULT_CACHE_SIZE` models (``UNIREX_CHECKPOINT_CACHE`` changes it); an entry is
reloaded when its folder's ``checkpoint.json`` changed (a run saved a better epoch).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unirex.errors import UnirexError

DEFAULT_CACHE_SIZE = 2
ENV_CACHE_SIZE = "UNIREX_CHECKPOINT_CACHE"


@dataclass
class CachedCheckpoint:
    """A loaded checkpoint (:class:`unirex.checkpoint.LoadedCheckpoint`: model in eval mode, tokenizer,
    labels, config) with the lock that lets one request at a time use it."""

    loaded: Any
    run_id: str | None
    lock: threading.Lock

    def __getattr__(self, name):
        return getattr(self.loaded, name)


def cache_size() -> int:
    raw = os.environ.get(ENV_CACHE_SIZE)
    if raw is None:
        return DEFAULT_CACHE_SIZE
    try:
        return max(1, int(raw))
    except ValueError:
        raise UnirexError(f"{ENV_CACHE_SIZE}={raw!r} is not a number of checkpoints") from None


class CheckpointCache:
    """LRU cache of :class:`CachedCheckpoint` keyed by folder (thread-safe)."""

    def __init__(self, runs_root: Path, size: int | None = None):
        self.runs_root = Path(runs_root)
        self.workspace = self.runs_root.parent
        self.size = size or cache_size()
        self._items: OrderedDict[tuple[str, int], CachedCheckpoint] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, ref: str) -> Path:
        # lazy: unirex.checkpoint pulls torch; the workbench stays torch-free until a checkpoint is used
        from unirex.checkpoint import resolve_checkpoint

        if not str(ref or "").strip():
            raise UnirexError("choose a checkpoint: a run id, a checkpoint folder or a Hugging Face repo id")
        return resolve_checkpoint(str(ref), self.runs_root)

    def get(self, ref: str, device: str = "auto") -> CachedCheckpoint:
        folder = self.resolve(ref)
        stamp = folder / "checkpoint.json"
        key = (str(folder.resolve()), stamp.stat().st_mtime_ns if stamp.exists() else 0)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        loaded = load(folder, device)
        with self._lock:
            for k in [k for k in self._items if k[0] == key[0]]:
                del self._items[k]  # an older save of the same folder
            self._items[key] = loaded
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return loaded

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def load(folder: Path, device: str = "auto") -> CachedCheckpoint:
    # lazy: unirex.checkpoint and the engine pull torch; loaded with the first checkpoint
    from unirex.checkpoint import open_checkpoint
    from unirex.device import pick_device

    loaded = open_checkpoint(folder, map_location=pick_device(device))
    return CachedCheckpoint(loaded=loaded, run_id=loaded.info.get("run_id"), lock=threading.Lock())


__all__ = ["CachedCheckpoint", "CheckpointCache", "DEFAULT_CACHE_SIZE", "ENV_CACHE_SIZE", "cache_size", "load"]
