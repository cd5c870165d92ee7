"""User-facing errors.

A ``UnirexError`` is a problem with the user's input (a file, a setting, an arch). The CLI prints its
message on one line and exits non-zero without a traceback; the app shows it in the page.

:func:`scrub_secrets` removes secrets (the Hugging Face token, the app's login) from a message; every place
where an error becomes a message a user sees applies it. :func:`did_you_mean` is the one "did you mean"
hint of every message that refuses an unknown name.
"""

import difflib
import os
import sys
from collections.abc import Callable, Iterable, Sequence


class UnirexError(Exception):
    """An error whose message is written for the user: it names the file, line and problem."""


class DiskFullError(UnirexError):
    """The disk (or the user's quota) filled up while writing: not the user's input, so the CLI exits 1, as for a
    failed run. The message is one line naming what was being written, the folder and the file system it lies
    on (:func:`unirex.fsutil.disk_full_error` makes it); ``path`` is that folder."""

    def __init__(self, message: str, path=None):
        super().__init__(message)
        self.path = path


def close_matches(value, choices: Iterable, n: int = 1, cutoff: float = 0.6) -> list[str]:
    """The (at most ``n``) ``choices`` closest to ``value``, best first (difflib, both as text)."""
    return difflib.get_close_matches(str(value), [str(c) for c in choices], n=n, cutoff=cutoff)


def quoted(name: str) -> str:
    """``'name'`` (single quotes around the text as it is, unlike ``repr``)."""
    return f"'{name}'"


def suggest(close: Sequence[str], form: str = "; did you mean {}?", quote: Callable[[str], str] = repr) -> str:
    """``form`` with the suggestions ``close`` joined by "or" (each through ``quote``); "" when there are none."""
    return form.format(" or ".join(quote(c) for c in close)) if close else ""


def did_you_mean(value, choices: Iterable, n: int = 1, cutoff: float = 0.6, form: str = "; did you mean {}?",
                 quote: Callable[[str], str] = repr) -> str:
    """The hint for an unknown ``value``: ``form`` naming the :func:`close_matches` among ``choices``
    (``"; did you mean 'x'?"`` by default; ``" (did you mean {}?)"``, ``quote=str``, ... as a message reads);
    "" when none is close."""
    return suggest(close_matches(value, choices, n, cutoff), form, quote)


def where(path, line: int | None = None) -> str:
    """Format a location as ``path:line`` (or just ``path``)."""
    return f"{path}:{line}" if line is not None else str(path)


#: environment variables whose values are secrets (the Hub token under its names, the app's login)
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACEHUB_API_TOKEN", "UNIREX_APP_AUTH")
#: secrets shorter than this are not scrubbed (replacing every "ab" would garble messages; such a secret is
#: no secret anyway)
MIN_SECRET_CHARS = 4
SCRUBBED = "***"
_registered: set[str] = set()


def register_secret(value: str | None) -> None:
    """Add a secret that is not in :data:`SECRET_ENV` (the app's ``--auth`` login) to what
    :func:`scrub_secrets` removes."""
    if value:
        _registered.update(_forms(str(value)))


def _forms(value: str) -> list[str]:
    """A secret and the parts of a ``user:password`` login that are secret (the password alone)."""
    out = [value]
    user, sep, password = value.partition(":")
    if sep and user and password:
        out.append(password)
    return out


def _hub_token() -> str | None:
    """The Hub token huggingface_hub would use (``hf auth login``'s file), when that package is loaded."""
    hub = sys.modules.get("huggingface_hub")
    if hub is None:
        return None
    try:
        return hub.get_token()
    except Exception:  # noqa: BLE001 - no token, an unreadable file: nothing to scrub
        return None


def secrets() -> list[str]:
    """Every secret known now, longest first (a password inside a ``user:password`` login comes after it)."""
    found = set(_registered)
    for name in SECRET_ENV:
        if os.environ.get(name):
            found.update(_forms(os.environ[name]))
    token = _hub_token()
    if token:
        found.add(token)
    return sorted((s for s in found if len(s) >= MIN_SECRET_CHARS), key=len, reverse=True)


def scrub_secrets(text: str) -> str:
    """``text`` with every secret (:func:`secrets`: the Hub token, the app's login) replaced by ``***``: applied
    wherever an error becomes a message (the CLI's line, a run's recorded error, the app's pages)."""
    text = str(text)
    for s in secrets():
        if s in text:
            text = text.replace(s, SCRUBBED)
    return text
