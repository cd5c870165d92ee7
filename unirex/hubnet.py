"""Is the Hugging Face Hub reachable? Clear messages instead of a minute of retries when it is not.

Used wherever the core may fetch from the Hub: an ``arch`` given as a Hub id, Hugging Face copies of the
ERASER datasets, checkpoints shared on the Hub.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
_UNREACHABLE = {"ConnectionError", "OfflineModeIsEnabled", "LocalEntryNotFoundError", "ConnectError", "ConnectTimeout",
                "TimeoutException", "NetworkError", "ReadTimeout", "Timeout", "MaxRetryError", "NameResolutionError"}


def hub_offline() -> bool:
    """Whether offline mode is switched on (``HF_HUB_OFFLINE=1`` or its siblings)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARS)


def is_unreachable(e: BaseException | None) -> bool:
    """Whether an exception (or one it was raised from) says the Hub could not be reached."""
    while e is not None:
        if any(c.__name__ in _UNREACHABLE for c in type(e).__mro__):
            return True
        e = e.__cause__ or e.__context__
    return False


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def unreachable_reason(timeout_s: float = 3.0) -> str | None:
    """Why the Hub cannot be reached now (offline mode, a failed name lookup or connection), or None
    when a TCP connection to it opens within ``timeout_s``."""
    if hub_offline():
        return "offline mode is on (HF_HUB_OFFLINE=1)"
    url = urlparse(endpoint())
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as e:
        return f"no connection to {host}:{port}: {e.strerror or e}"


def is_cached(repo_id: str, filename: str = "config.json") -> bool:
    """Whether the Hugging Face cache holds ``filename`` of ``repo_id`` (no network access)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except Exception:  # noqa: BLE001 - a malformed id is simply not cached
        return False


__all__ = ["endpoint", "hub_offline", "is_cached", "is_unreachable", "unreachable_reason"]
