"""A typed text to explain and the checks it must pass, kept free of the model code (and torch), so that the
workbench can read and check a file of texts before any model loads (:mod:`unirex.inference` explains them)."""

from __future__ import annotations

from dataclasses import dataclass

from unirex.errors import UnirexError

#: longest text :func:`unirex.inference.explain_text` accepts (characters over all documents and the query);
#: the model reads at most its max length in subwords anyway, the rest is reported as truncated
MAX_TEXT_CHARS = 20_000


@dataclass(frozen=True)
class TextInput:
    """One text to explain: its documents (one, or several for multi-document tasks such as e-SNLI's premise
    and hypothesis) and the query of query tasks (multiple choice: the choices, separated by ``' [sep] '``)."""

    documents: tuple[str, ...]
    query: str = ""


def check_text(documents: list[str] | tuple[str, ...] | str, query: str = "") -> None:
    """Raise :class:`UnirexError` for a text that cannot be explained: empty, or over :data:`MAX_TEXT_CHARS`."""
    docs = [documents] if isinstance(documents, str) else list(documents)
    size = sum(len(d or "") for d in docs) + len(query or "")
    if not any((d or "").split() for d in docs):
        raise UnirexError("nothing to explain: the text is empty")
    if size > MAX_TEXT_CHARS:
        raise UnirexError(f"the text has {size:,} characters; at most {MAX_TEXT_CHARS:,} can be explained at once")


def check_top_k(top_k: float) -> None:
    """Raise :class:`UnirexError` unless ``top_k`` (the rationale's size in percent) is in (0, 100]."""
    if not 0 < float(top_k) <= 100:
        raise UnirexError(f"top-k must be a percentage in (0, 100], got {top_k}")


__all__ = ["MAX_TEXT_CHARS", "TextInput", "check_text", "check_top_k"]
