"""What every tab shares: error reporting, escaping of user values, small formatters, the app's defaults.

Every value a user or a run folder controls (run ids, methods, datasets, archs, commands, error messages,
docids, annotation ids, labels, file names, typed text) reaches a page through one of the escaping helpers
below, one per context it lands in: :func:`md` (text in Markdown), :func:`code` (inline code in Markdown),
:func:`html_text` (HTML: ``gr.HTML``, the ``gr.Info``/``gr.Warning``/``gr.Error`` toasts, which Gradio
renders as HTML) and :func:`plot_text` (Plotly's labels, legends and hover text). Each shows the value on
one line (a line break can end neither an inline code span nor a paragraph) and cuts a value longer than
:data:`MAX_SHOWN` characters. Dataframe cells, dropdown choices, labels, ``gr.Label``, ``gr.JSON``,
``gr.Code`` and ``gr.HighlightedText`` show their strings as text and need none.

Every callback is a :class:`Handlers` method decorated with :func:`handler`: a
:class:`~unirex.errors.UnirexError` shows its whole message (escaped for HTML, server paths outside the
workspace removed), any other exception a message naming its type, so no action fails silently and no
traceback reaches a page. On the page a failure is one toast and every field keeps its content and stays
usable; an API caller gets the ``gr.Error``.
"""

from __future__ import annotations

import functools
import html
import logging
import re
import string
from dataclasses import dataclass

import gradio as gr

from unirex.errors import UnirexError

log = logging.getLogger("unirex.app")
#: the longest part of a value shown (a megabyte-long run command or error leaves the page readable)
MAX_SHOWN = 2000
#: what ends a line for Markdown or a browser: CR LF, LF, CR, VT, FF, the file/group/record separators, NEL, and
#: Unicode's line and paragraph separators
_LINE_BREAK = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
#: the other control characters (NUL, ESC, DEL, C1, tab): a space
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\t]")
#: Markdown: every ASCII punctuation character backslashed (none starts emphasis, a link, an image, a heading,
#: a list, a table or a bare-URL link), ``&<>`` as HTML entities (no tag, no entity of the value's), each ``$``
#: in an element of its own: Gradio typesets ``$$...$$`` found in one text node of the rendered page as LaTeX
#: (KaTeX's auto-render, outside ``code``) whenever the Markdown holds ``$$`` anywhere, an entity too
_MD_TABLE = str.maketrans({**{c: "\\" + c for c in string.punctuation},
                          "&": "&amp;", "<": "&lt;", ">": "&gt;", "$": "<span>$</span>"})
_BACKTICKS = re.compile(r"`+")


@dataclass(frozen=True)
class AppDefaults:
    """What a fresh machine gets in the forms (``python app.py --help`` lists the flags that change it).

    The training defaults finish on a CPU in a few minutes with the bundled MiniLM: two epochs on a
    1,000-example subsample of the demo's train split (batches of 8, learning rate 5e-5: enough steps for the
    model to learn the task and be confident on short typed reviews; the demo's reviews are short, so two
    epochs cost about what one epoch of the former long reviews did), inputs of at most 128 subwords."""

    arch: str = "default"
    dataset: str = "demo"
    max_length: int = 128
    num_train: int | None = 1000
    epochs: int = 2
    train_batch_size: int = 8
    eval_batch_size: int = 32
    lr: float = 5e-5
    method: str = "slm_plaus_linear"
    seeds: str = "0"


def _shown(value: object, line_break: str = " ") -> tuple[str, str]:
    """``(the value's text on one line, what was cut)``: line breaks become ``line_break``, other control
    characters a space; past :data:`MAX_SHOWN` characters, a note of how many more there were."""
    text = str(value)
    more = f"… ({len(text) - MAX_SHOWN:,} more characters)" if len(text) > MAX_SHOWN else ""
    text = _LINE_BREAK.sub(line_break, text[:MAX_SHOWN])
    return _CONTROL.sub(" ", text), more


def md(value: object) -> str:
    """``value`` as text in Markdown: shown as it is (``<data_dir>`` stays text), never as markup."""
    text, more = _shown(value)
    return (text + more).translate(_MD_TABLE)


def code(value: object) -> str:
    """``value`` as one inline code span, exactly (backticks too; a line break shows as ``␤``): the
    fence is longer than any run of backticks inside; a space pads a value that starts or ends with a
    backtick or with spaces on both ends (CommonMark takes one off each side)."""
    text, more = _shown(value, "␤")
    if not text.strip(" "):
        return "` `" + md(more)  # CommonMark keeps an all-space span as it is; nothing at all is no span
    fence = "`" * (max((len(m) for m in _BACKTICKS.findall(text)), default=0) + 1)
    pad = " " if text[0] == "`" or text[-1] == "`" or (text[0] == " " and text[-1] == " ") else ""
    return f"{fence}{pad}{text}{pad}{fence}" + md(more)


def html_text(value: object) -> str:
    """``value`` as text in HTML (an element's text or a quoted attribute's value)."""
    text, more = _shown(value)
    return html.escape(text + more, quote=True)


def plot_text(value: object) -> str:
    """``value`` as a Plotly label, legend entry or hover text: Plotly reads a few tags (``<a href>``,
    ``<br>``, ``<b>``, styles) and ``$...$`` as LaTeX in those, and decodes ``&lt;``, ``&gt;``, ``&amp;`` and
    numeric references (not ``&quot;``)."""
    text, more = _shown(value)
    return html.escape(text + more, quote=False).replace("$", "&#36;")


class Handlers:
    """Base of a tab's event handlers: methods over one workbench (``self.wb``), defined at module level
    beside the tab's ``build_tab`` (which only lays the blocks out and wires them), as Gradio's demos keep
    their handlers. Decorate each with :func:`handler`."""

    def __init__(self, wb):
        self.wb = wb


def _from_page() -> bool:
    """Whether the running event came from the app's page in a browser: Gradio's page marks its calls
    ``x-gradio-user: app`` (the Python client's say ``api``, an MCP client's ``mcp``, a raw HTTP call nothing)."""
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    headers = getattr(request, "headers", None) if request is not None else None
    return bool(headers) and headers.get("x-gradio-user") == "app"


def _failed(message: str):
    """A failed action: on the page, the message once (a toast) and every output left as it was (``gr.skip()``):
    a raised ``gr.Error`` marks every output of the event with a red "Error" badge that covers the field and
    takes its clicks; for the API (the Python client, HTTP) the ``gr.Error`` its caller reads."""
    if _from_page():
        gr.Warning(message, duration=20, title="Error")
        return gr.skip()
    raise gr.Error(message, print_exception=False, duration=20)


def handler(fn):
    """Run a :class:`Handlers` method; a failure shows its message on the page and leaves the event's outputs
    as they were (:func:`_failed`; an API caller gets a ``gr.Error``). A :class:`~unirex.errors.UnirexError`
    shows its whole message, any other exception its type. The bound method keeps the function's name and
    signature (less ``self``), which Gradio reads."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except gr.Error as e:
            return _failed(e.message)
        except UnirexError as e:
            return _failed(html_text(self.wb.public_message(e)))
        except Exception as e:  # noqa: BLE001 - shown in the page, logged with its traceback here
            log.exception("callback %s failed", getattr(fn, "__name__", fn))
            return _failed(html_text(f"unexpected error ({type(e).__name__}): {self.wb.public_message(e)}"))

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


__all__ = ["MAX_SHOWN", "AppDefaults", "Handlers", "choice_or_none", "code", "fmt_bytes", "fmt_num", "fmt_seconds",
           "handler", "html_text", "md", "plot_text"]
