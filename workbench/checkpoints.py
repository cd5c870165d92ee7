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
class LoadedCheckpoint:
    """A model ready to explain text: ``model`` (eval mode), its ``tokenizer``, label names, max length."""

    folder: Path
    model: Any
    tokenizer: Any
    config: Any  # the run config it was trained with (unirex.config.RunConfig)
    info: dict
    labels: list[str]
    max_length: int
    run_id: str | None
    lock: threading.Lock  # one request at a time per model (autograd state is not thread-safe to share)


def cache_size() -> int:
    raw = os.environ.get(ENV_CACHE_SIZE)
    if raw is None:
        return DEFAULT_CACHE_SIZE
    try:
        return max(1, int(raw))
    except ValueError:
        raise UnirexError(f"{ENV_CACHE_SIZE}={raw!r} is not a number of checkpoints") from None


class CheckpointCache:
    """LRU cache of :class:`LoadedCheckpoint` keyed by folder (thread-safe)."""

    def __init__(self, runs_root: Path, size: int | None = None):
        self.runs_root = Path(runs_root)
        self.size = size or cache_size()
        self._items: OrderedDict[tuple[str, int], LoadedCheckpoint] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, ref: str) -> Path:
        from unirex.checkpoint import resolve_checkpoint

        if not str(ref or "").strip():
            raise UnirexError("choose a checkpoint: a run id, a checkpoint folder or a Hugging Face repo id")
        return resolve_checkpoint(str(ref), self.runs_root)

    def get(self, ref: str, device: str = "auto") -> LoadedCheckpoint:
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


def load(folder: Path, device: str = "auto") -> LoadedCheckpoint:
    from unirex.arch import load_tokenizer
    from unirex.checkpoint import TASK_LM_DIR, load_checkpoint
    from unirex.engine import pick_device

    model, cfg, info = load_checkpoint(folder)
    model.to(pick_device(device)).eval()
    tokenizer = load_tokenizer(str(Path(folder) / TASK_LM_DIR))
    labels = list(info.get("labels") or [str(i) for i in range(model.num_classes)])
    return LoadedCheckpoint(folder=Path(folder), model=model, tokenizer=tokenizer, config=cfg, info=info,
                            labels=labels, max_length=int(cfg.data.max_length), run_id=info.get("run_id"),
                            lock=threading.Lock())


__all__ = ["CheckpointCache", "DEFAULT_CACHE_SIZE", "ENV_CACHE_SIZE", "LoadedCheckpoint", "cache_size", "load"]
