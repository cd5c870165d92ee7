"""Is the Hugging Face Hub reachable? Clear messages instead of a minute of retries when it is not.

Used wherever the core may fetch from the Hub: an ``arch`` given as a Hub id, Hugging Face copies of the
ERASER datasets, checkpoints shared on the Hub.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from unirex.errors import UnirexError
from unirex.safeload import first_line

#: the files a UNIREX checkpoint is fetched with: weights as safetensors, JSON and text only (never pickles)
ALLOW_PATTERNS = ["*.safetensors", "*.json", "*.txt"]
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
        # lazy: huggingface_hub is heavy: loaded only when a Hub id is looked up
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except Exception:  # noqa: BLE001 - a malformed id is simply not cached
        return False


__all__ = ["endpoint", "hub_offline", "is_cached", "is_unreachable", "unreachable_reason"]


def _network_error_types() -> tuple[type, ...]:
    types: list[type] = [ConnectionError, TimeoutError]
    try:
        # lazy: the HTTP client huggingface_hub uses, if installed
        import httpx2

        types.append(httpx2.TransportError)
    except ImportError:  # pragma: no cover - huggingface_hub's own HTTP client
        pass
    try:
        import httpx

        types.append(httpx.TransportError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def hub_error(e: BaseException, action: str, repo_id: str, revision: str | None = None) -> UnirexError | None:
    """A one-line UnirexError for a failure of the Hub client, or None for anything else (a bug: re-raise)."""
    # lazy: huggingface_hub is heavy: loaded only when a Hub call failed
    from huggingface_hub import constants
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, HFValidationError, LocalEntryNotFoundError,
                                        OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError)

    what = f"{repo_id}" + (f"@{revision}" if revision else "")
    msg = first_line(e)
    try:
        from huggingface_hub import get_token

        token = get_token()
        if token:
            msg = msg.replace(token, "***")
    except Exception:  # noqa: BLE001 - scrubbing is best effort
        pass
    if isinstance(e, OfflineModeIsEnabled) or (isinstance(e, LocalEntryNotFoundError) and constants.HF_HUB_OFFLINE):
        return UnirexError(f"cannot {action} '{what}': offline mode (HF_HUB_OFFLINE is set) and nothing cached; "
                           "unset HF_HUB_OFFLINE to reach the Hugging Face Hub")
    if isinstance(e, LocalEntryNotFoundError):
        return UnirexError(f"cannot {action} '{what}': the Hugging Face Hub is unreachable (network failure) and the "
                           "repo is not in the local cache; check the connection (or HF_ENDPOINT)")
    if isinstance(e, GatedRepoError):
        return UnirexError(f"cannot {action} '{what}': the repo is gated; accept its terms on the Hub with this account")
    if isinstance(e, RepositoryNotFoundError):
        return UnirexError(f"cannot {action} '{what}': no such Hub repo, or it is private and this token cannot see it")
    if isinstance(e, RevisionNotFoundError):
        return UnirexError(f"cannot {action} '{what}': no revision '{revision}' in that repo")
    if isinstance(e, HFValidationError):
        return UnirexError(f"cannot {action} '{what}': {msg}")
    if isinstance(e, HfHubHTTPError):
        code = getattr(getattr(e, "response", None), "status_code", None)
        if code == 401:
            return UnirexError(f"cannot {action} '{what}': the Hub rejected the token (HTTP 401); log in again with "
                               "`hf auth login` or set a valid HF_TOKEN")
        if code == 403:
            return UnirexError(f"cannot {action} '{what}': this token may not write there (HTTP 403); use a token with "
                               "write access to that namespace")
        return UnirexError(f"cannot {action} '{what}': the Hub answered HTTP {code}: {msg}")
    if isinstance(e, _network_error_types()):
        return UnirexError(f"cannot {action} '{what}': network failure ({msg}); check the connection (or HF_ENDPOINT)")
    return None
