"""What every tab shares: error reporting, escaping for Markdown, small formatters, the app's defaults.

Every callback is a :class:`Handlers` method decorated with :func:`handler`: a
:class:`~unirex.errors.UnirexError` becomes a ``gr.Error`` with its whole message (HTML-escaped, server paths outside the workspace removed), any other
exception a ``gr.Error`` naming its type, so no action fails silently and no traceback reaches a page.
"""

from __future__ import annotations

import functools
import html
import logging
import re
from dataclasses import dataclass

import gradio as gr

from unirex.errors import UnirexError

log = logging.getLogger("unirex.app")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


@dataclass(frozen=True)
class AppDefaults:
    """What a fresh machine gets in the forms (``python app.py --help`` lists the flags that change it).

    The training defaults finish on a CPU in a few minutes with the bundled MiniLM: one epoch on a
    1,000-example subsample of the demo's train split (batches of 8, learning rate 5e-5: enough steps for the
    model to learn the task), inputs of at most 128 subwords."""

    arch: str = "default"
    dataset: str = "demo"
    max_length: int = 128
    num_train: int | None = 1000
    epochs: int = 1
    train_batch_size: int = 8
    eval_batch_size: int = 32
    lr: float = 5e-5
    method: str = "slm_plaus_linear"
    seeds: str = "0"


def md(text: object) -> str:
    """``text`` safe to put in Markdown: HTML escaped (``<data_dir>`` stays text) and Markdown's
    special characters backslashed."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))


def code(text: object) -> str:
    """``text`` as inline code (backticks inside it are replaced)."""
    return "`" + str(text).replace("`", "'") + "`"


class Handlers:
    """Base of a tab's event handlers: methods over one workbench (``self.wb``), defined at module level
    beside the tab's ``build_tab`` (which only lays the blocks out and wires them), as Gradio's demos keep
    their handlers. Decorate each with :func:`handler`."""

    def __init__(self, wb):
        self.wb = wb


def handler(fn):
    """Run a :class:`Handlers` method, turning every failure into a ``gr.Error`` shown in the page. The
    bound method keeps the function's name and signature (less ``self``), which Gradio reads."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except gr.Error:
            raise
        except UnirexError as e:
            raise gr.Error(html.escape(self.wb.public_message(e), quote=False), print_exception=False,
                           duration=20) from None
        except Exception as e:  # noqa: BLE001 - shown in the page, logged with its traceback here
            log.exception("callback %s failed", getattr(fn, "__name__", fn))
            raise gr.Error(html.escape(f"unexpected error ({type(e).__name__}): {self.wb.public_message(e)}",
                                       quote=False), print_exception=False, duration=20) from None

    return wrapper


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return ""
    s = float(s)
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{int(s // 60)}m {int(s % 60):02d}s"
    return f"{int(s // 3600)}h {int(s % 3600 // 60):02d}m"


def fmt_num(v, digits: int = 3) -> str:
    if v is None:
        return ""
    try:
        return f"{float(v):.{digits}f}"
    except (TypeError, ValueError):
        return str(v)


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def choice_or_none(value):
    """Dropdown value -> filter value (``"any"`` and empty mean no filter)."""
    return None if value in (None, "", "any") else value


__all__ = ["AppDefaults", "Handlers", "choice_or_none", "code", "fmt_bytes", "fmt_num", "fmt_seconds", "handler", "md"]
