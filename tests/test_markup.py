"""User values shown by the app stay text: the escaping helpers of ``ui.common`` over hostile strings
(newlines that would end an inline code span, backticks, HTML, Markdown links and images, LaTeX, bare
URLs, control and Unicode line separators, very long values), rendered by a CommonMark parser, and the
tabs' display functions fed hostile run records, dataset examples and explanations. The same values in
a real browser: tests/test_app_markup_browser.py."""

from __future__ import annotations

import html
import re
import string
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from ui.common import MAX_SHOWN, code, html_text, md, plot_text

TRACKER = "http://127.0.0.1:9/t.png"
HOSTILE = [
    f"a\n\n<h1>x</h1><img src={TRACKER}>",
    "`; rm -rf / #`",
    "a ` b `` c ``` d",
    "`",
    "``",
    " ` ",
    "<img src=x onerror=alert(1)>",
    "[link](javascript:alert(1))",
    f"![]({TRACKER})",
    f"<{TRACKER}>",
    f"see {TRACKER} and www.evil.example and me@evil.example",
    "a\r<h2>cr</h2>",
    "a\r\n\r\n<h2>crlf</h2>",
    "a\u2028\u2028<h2>ls</h2>\u2029<h3>ps</h3>",
    "a\x85\x0b\x0c<h2>nel</h2>",
    "nul\x00<b>x</b>\x1b[31m",
    "$$\\href{javascript:alert(1)}{x}$$ and $x^2$",
    "line\n===",
    "# heading\n- item\n1. one\n> quote\n    indented\n| a | b |\n|---|---|",
    "*em* **strong** _u_ ~~del~~ \\*escaped\\*",
    "&lt;h1&gt;entity&lt;/h1&gt; &amp; &#60;b&#62;",
    "<script>alert(1)</script><style>*{color:red}</style>",
    "<a href='javascript:alert(1)'>click</a>",
    "\"quoted\" 'single' <x a=\"1\">",
    "x" * (MAX_SHOWN + 5000),
    "",
    "   ",
]
MD = MarkdownIt("commonmark")


class _Tags(HTMLParser):
    """The tags of a piece of HTML and its text (entities decoded)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text = ""
        self.code_text: list[str] = []
        self._in_code = False

    def handle_starttag(self, tag, attrs):
        if tag == "span":  # md's element around each "$" (checked in test_md_is_plain_text_in_a_paragraph)
            return
        self.tags.append(tag)
        if tag == "code":
            self._in_code = True
            self.code_text.append("")

    def handle_endtag(self, tag):
        if tag == "code":
            self._in_code = False

    def handle_data(self, data):
        self.text += data
        if self._in_code:
            self.code_text[-1] += data


def render(markdown: str) -> _Tags:
    p = _Tags()
    p.feed(MD.render(markdown))
    p.close()
    p.text = p.text.rstrip("\n")  # the newline after </p>
    return p


def one_line(value: str, mark: str) -> str:
    """What a value shows as: line breaks marked, other control characters a space."""
    value = value[:MAX_SHOWN]
    value = re.sub(r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]", mark, value)
    return re.sub(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\t]", " ", value)


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_code_is_one_inline_code_span_holding_the_value(value):
    out = code(value)
    assert not re.search(r"[\n\r\x0b\x0c\x85\u2028\u2029]", out)  # nothing can end the span or the paragraph
    doc = render(f"Reproduce: {out} · after")
    assert doc.tags == ["p", "code"], doc.tags  # one code span, no other element
    shown = one_line(value, "␤")
    assert doc.code_text == [shown if shown.strip() else " "]
    assert doc.text.endswith(" · after")
    if len(value) > MAX_SHOWN:
        assert f"{len(value) - MAX_SHOWN:,} more characters" in doc.text


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_md_is_plain_text_in_a_paragraph(value):
    out = md(value)
    assert out.count("$") == value[:MAX_SHOWN].count("$") == out.count("<span>$</span>")  # no $$ in one text node
    rest = out.replace("<span>$</span>", "")
    assert not re.search(r"[\n\r\x0b\x0c\x85\u2028\u2029<>]", rest)  # no line break or tag
    bare = rest.replace("\\\\", "").replace("&lt;", "").replace("&gt;", "").replace("&amp;", "")
    assert not re.search(r"(?<!\\)[`*_\[\]()!#|~:.@&;]", bare)  # every Markdown character escaped
    doc = render(f"**Error:** {out}")
    assert doc.tags == ["p", "strong"], doc.tags
    shown = one_line(value, " ")
    more = f"… ({len(value) - MAX_SHOWN:,} more characters)" if len(value) > MAX_SHOWN else ""
    assert doc.text == ("Error: " + shown + more).rstrip(" ")  # (Markdown ends a paragraph's line at its text)


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_html_text_and_plot_text_hold_no_tag(value):
    for out in (html_text(value), plot_text(value)):
        assert "<" not in out and ">" not in out
        assert not re.search(r"[\n\r\u2028\u2029]", out)
    assert "'" not in html_text(value) and '"' not in html_text(value)  # safe inside an attribute too
    assert "$" not in plot_text(value)  # Plotly typesets a label between $ signs
    assert html.unescape(html_text("<b>x</b> & y")) == "<b>x</b> & y"
    # Plotly decodes &lt; &gt; &amp; and numeric references only (not &quot;)
    assert "&quot;" not in plot_text('"a"') and html.unescape(plot_text('"$a"')) == '"$a"'


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(string.punctuation + " \n\r\tab\u2028\u00e9")), max_size=40))
def test_any_punctuation_stays_text(value):
    doc = render(f"x {code(value)} y")
    assert doc.tags == ["p", "code"]
    shown = one_line(value, "␤")
    assert doc.code_text == [shown if shown.strip() else " "]
    doc = render(f"x {md(value)} y")
    assert doc.tags == ["p"] and doc.text == f"x {one_line(value, ' ')} y"


# --- the tabs' display functions over hostile records ------------------------------------------------

EVIL = f"x\n\n<h1>EVIL</h1><img src={TRACKER}>`[a](javascript:alert(1))`$$x$$"


def _no_markup(markdown: str) -> _Tags:
    doc = render(markdown)
    assert set(doc.tags) <= {"p", "code", "strong", "h3"}, doc.tags  # what the app's own text uses
    assert "<h1>EVIL</h1>" in doc.text
    return doc


class _Wb:
    def public_message(self, e):
        return str(e)


def test_run_detail_shows_hostile_run_values_as_text():
    from ui.runs import detail_md, queued

    s = SimpleNamespace(run_id=EVIL, status=EVIL, method=EVIL, dataset=EVIL, arch=EVIL, seed=EVIL, mode="evaluate",
                        duration_s=None, command=EVIL, error=EVIL, debug=True, tags=(EVIL, EVIL))
    ck = SimpleNamespace(epoch=EVIL, monitor=EVIL, value=EVIL)
    d = SimpleNamespace(summary=s, path=EVIL, checkpoint=ck, outputs=[SimpleNamespace(name=EVIL)],
                        meta={"parent_run": EVIL})
    doc = _no_markup(detail_md(d, _Wb()))
    assert doc.tags.count("h3") == 1 and doc.text.count("<h1>EVIL</h1>") == 16
    job = SimpleNamespace(job_id=EVIL, run_id=EVIL)
    with pytest.MonkeyPatch.context() as mp:
        import gradio as gr

        shown = []
        mp.setattr(gr, "Info", lambda m, **k: shown.append(m))
        _no_markup(queued(job, EVIL))
    assert "<" not in shown[0]  # the toast renders HTML: the value is escaped for it


def test_dataset_example_title_and_explanation_show_hostile_values_as_text():
    from ui.datasets import example_title
    from ui.explain import summary_md

    ex = SimpleNamespace(index=EVIL, split=EVIL, annotation_id=EVIL, label=EVIL, query=EVIL, has_rationale=False,
                         truncated=True, read_words=EVIL, words=[EVIL])
    _no_markup(example_title(ex, 0, 1, True))
    e = SimpleNamespace(labels=[EVIL], probs=[0.5], predicted=EVIL, extractor=EVIL, top_k=10.0,
                        rationale_words=[EVIL, EVIL], comprehensiveness=0.1, sufficiency=0.2, seconds=0.01,
                        words=[EVIL], rationale=[True], truncated=True, n_subwords=64)
    _no_markup(summary_md(e, [True]))


def test_explain_example_info_shows_hostile_values_as_text():
    from ui.explain import ExplainHandlers

    ex = {"words": [EVIL, "b"], "word_document": [0, 0], "gold": [True, False], "annotation_id": EVIL,
          "label": EVIL, "query": EVIL}
    *_, info = ExplainHandlers(_Wb()).on_pick(0, [ex])
    _no_markup(info)


def test_compare_note_and_charts_escape_group_labels():
    from ui import figures
    from ui.compare import label_of

    rows = [{"method": EVIL, "dataset": "d", "arch": "a", "nrg_faithfulness": 0.1, "nrg_plausibility": 0.2,
             "comp_aopc_mean": 0.3, "comp_aopc_std": 0.0, **{f"comp_k{k}_mean": 0.1 for k in (1, 5, 10, 20, 50)}}]
    lab = label_of(("method", "dataset", "arch"))
    for fig in (figures.scatter(rows, "nrg_faithfulness", "nrg_plausibility", lab, "t"),
                figures.bars(rows, ["comp_aopc"], lab), figures.bin_curves(rows, lab)):
        for trace in fig.data:
            for text in [trace.name, *(trace.text or [])]:
                if text and "EVIL" in text:
                    assert "<" not in text and "$" not in text and "\n" not in text


def test_train_progress_escapes_job_values():
    from ui.train import progress_html

    p = SimpleNamespace(fraction=0.5, phase="evaluating", eval_split=EVIL, eval_done=1, eval_total=2, status=EVIL,
                        eta_s=None, elapsed_s=None, message=EVIL, epoch=0, epochs=1, step=0, total_steps=1)
    out = progress_html(p, EVIL)
    assert "<h1>" not in out and "<img" not in out and "data-status='x" in out
