"""User-facing errors.

A ``UnirexError`` is a problem with the user's input (a file, a setting, an arch). The CLI prints its
message on one line and exits non-zero without a traceback; the app shows it in the page.
"""


class UnirexError(Exception):
    """An error whose message is written for the user: it names the file, line and problem."""


def where(path, line: int | None = None) -> str:
    """Format a location as ``path:line`` (or just ``path``)."""
    return f"{path}:{line}" if line is not None else str(path)
