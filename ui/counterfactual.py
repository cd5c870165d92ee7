"""Counterfactuals in the Explain tab: pin the explained text as the original, edit the text in place and see
what the edit did (prediction and probabilities before/after, each word's score change, the words inserted,
deleted and changed), and search for the fewest words whose removal (or masking) flips the prediction, in
the extractor's order and in a random order as the control.

Every word and label reaches the page as text (``gr.HighlightedText``, ``gr.Dataframe``) or through
:func:`ui.common.md` / :func:`ui.common.code`."""

from __future__ import annotations

import gradio as gr

from ui.common import Handlers, code, handler, md
from unirex.flipspec import EDITS, FlipOptions
from workbench import Workbench
from workbench.counterfactual import CHANGED, DELETED, INSERTED, EditDiff, FlipOutcome, FlipPath

OWN = "own"
DIFF_COLORS = {INSERTED: "#2e9d4f", DELETED: "#d9534f", CHANGED: "#e89a2c"}
EDITED = "edited"
DIFF_COLUMNS = ["change", "before", "after", "score before", "score after", "score change"]
PROB_COLUMNS = ["label", "before", "after", "change"]


def diff_pieces(d: EditDiff) -> list[tuple[str, str | None]]:
    """The edit, word by word: unchanged words plain, inserted / deleted / changed ones by their kind (a
    changed word shows ``before→after``)."""
    out: list[tuple[str, str | None]] = []
    for c in d.changes:
        word = f"{c.before}→{c.after}" if c.op == CHANGED else (c.after if c.before is None else c.before)
        label = None if c.op == "same" else c.op
        if label is None and out and out[-1][1] is None:
            out[-1] = (out[-1][0] + word + " ", None)
        else:
            out.append((word + " ", label))
    return out


def delta_pieces(d: EditDiff) -> list[tuple[str, float | None]]:
    """The edited text's words with their score change (after - before) scaled to [-1, 1]; inserted words
    have none."""
    deltas = [c.delta for c in d.changes if c.after is not None]
    top = max((abs(x) for x in deltas if x is not None), default=0.0) or 1.0
    return [(c.after + " ", None if c.delta is None else round(c.delta / top, 3))
            for c in d.changes if c.after is not None]


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:+.4f}" if v else "0"


def diff_rows(d: EditDiff) -> list[list[str]]:
    """One row per word of either text (the Dataframe shows its cells as text)."""
    return [[c.op, c.before or "", c.after or "", "" if c.score_before is None else f"{c.score_before:.4f}",
             "" if c.score_after is None else f"{c.score_after:.4f}", _num(c.delta)] for c in d.changes]


def prob_rows(d: EditDiff) -> list[list[str]]:
    return [[p.label, f"{p.before:.4f}", f"{p.after:.4f}", f"{p.delta:+.4f}"] for p in d.probs]


def edit_summary_md(d: EditDiff) -> str:
    b, a = d.before, d.after
    verdict = "**the prediction flipped**" if d.prediction_changed else "the prediction held"
    return (f"Prediction **{md(b.predicted)}** → **{md(a.predicted)}**: {verdict} · {d.n_edited} word(s) "
            f"inserted, deleted or changed · extractor {code(a.extractor)}")


def flip_pieces(p: FlipPath) -> list[tuple[str, str | None]]:
    """The text after one order's edits, the edited words marked (a removed word struck through by its
    category, a masked one shown as the mask token)."""
    out: list[tuple[str, str | None]] = []
    for w, edited in p.words:
        label = EDITED if edited else None
        if label is None and out and out[-1][1] is None:
            out[-1] = (out[-1][0] + w + " ", None)
        else:
            out.append((w + " ", label))
    return out


def _path_md(name: str, p: FlipPath, before: str) -> str:
    if p.flipped:
        what = (f"{md(before)} → **{md(p.label)}** after **{p.n_edits}** of {p.n_words} words "
                f"({p.fraction:.0%})")
    else:
        what = f"**no flip** within {p.cap} of {p.n_words} words"
    return f"{name}: {what}; edited " + (", ".join(code(w) for w in p.edited) or "(none)")


def flip_md(f: FlipOutcome) -> str:
    lines = [f"Prediction **{md(f.predicted)}** · {f.edit} edits, at most {f.max_fraction:g} of the words and "
             f"{f.max_words} words · {f.seconds * 1000:.0f} ms",
             _path_md(f"**Extractor's order** ({code(f.extractor)})", f.guided, f.predicted),
             _path_md(f"**Random order** (seed {f.seed}, the control)", f.random, f.predicted)]
    if f.truncated:
        lines.append("The text was cut to the model's max length: later words were not searched.")
    return "\n\n".join(lines)


class CounterfactualHandlers(Handlers):
    """The counterfactual panel's event handlers."""

    @staticmethod
    def on_pin(text, second):
        return text or "", second or ""

    @handler
    def on_edit(self, ck, ex, original, original_second, text, q, second, k):
        if not ck:
            raise gr.Error("Choose a checkpoint first.")
        if not (original or "").strip():
            raise gr.Error("Pin the original text first (the button above), then edit the text in place.")
        d = self.wb.explain_edit(ck, original, text, query=q or None, extractor=None if ex == OWN else ex,
                                 top_k=float(k), second_text=original_second or None,
                                 edited_second_text=second or "")
        return (edit_summary_md(d), prob_rows(d), diff_pieces(d), delta_pieces(d), diff_rows(d))

    @handler
    def on_flip(self, ck, ex, text, q, second, edit, fraction, max_words, seed):
        if not ck:
            raise gr.Error("Choose a checkpoint first.")
        opts = FlipOptions(max_fraction=float(fraction), max_words=int(max_words), seed=int(seed), edit=edit)
        f = self.wb.flip(ck, text, query=q or None, extractor=None if ex == OWN else ex, second_text=second or None,
                         options=opts)
        return flip_md(f), flip_pieces(f.guided), flip_pieces(f.random)


def build_counterfactuals(wb: Workbench, checkpoint, extractor, text, query, second, top_k) -> None:
    """The panel, under the Explain tab's results; reads the tab's checkpoint, extractor, text, query, second
    document and top-k."""
    h = CounterfactualHandlers(wb)
    private = {"api_visibility": "private"}  # the page's own callbacks, not endpoints of the app's API
    with gr.Accordion("Counterfactuals: edit the text and compare, or find the fewest words that flip the "
                      "prediction", open=False, elem_id="counterfactuals"):
        gr.Markdown("**Edit.** Pin the text as the original, edit the text above in place, then compare: the "
                    "prediction, probabilities and every word's score before and after.")
        with gr.Row():
            pin_btn = gr.Button("Pin the current text as the original", size="sm")
            edit_btn = gr.Button("Explain the edit against the original", variant="primary", size="sm")
        original = gr.Textbox(lines=2, label="Original text (pinned)", elem_id="cf-original")
        original_second = gr.State("")
        edit_md = gr.Markdown()
        probs = gr.Dataframe(headers=PROB_COLUMNS, label="Class probabilities before and after", interactive=False)
        diff = gr.HighlightedText(label="The edit (inserted, deleted, changed words)", color_map=DIFF_COLORS,
                                  show_legend=True, show_inline_category=False)
        deltas = gr.HighlightedText(label="Score change of each word of the edited text (scaled to the largest)",
                                    show_legend=False, show_inline_category=False)
        rows = gr.Dataframe(headers=DIFF_COLUMNS, label="Per-word scores", interactive=False)
        gr.Markdown("**Minimal flip.** Edit words of the text above one by one in the extractor's order (highest "
                    "score first) until the prediction changes, and in a random order as the control.")
        with gr.Row():
            edit = gr.Radio(list(EDITS), value=EDITS[0], label="Edit (remove the word, or mask each of its subwords)")
            fraction = gr.Slider(0.05, 1.0, value=0.5, step=0.05, label="At most this fraction of the words")
            max_words = gr.Number(value=64, precision=0, minimum=1, label="At most this many words")
            seed = gr.Number(value=0, precision=0, label="Seed of the random order")
        flip_btn = gr.Button("Find the minimal flip", variant="primary", size="sm")
        flip_out = gr.Markdown()
        guided = gr.HighlightedText(label="Extractor's order: the text after its edits",
                                    color_map={EDITED: "#d9534f"}, show_legend=False, show_inline_category=False)
        rnd = gr.HighlightedText(label="Random order: the text after its edits", color_map={EDITED: "#d9534f"},
                                 show_legend=False, show_inline_category=False)
    pin_btn.click(h.on_pin, [text, second], [original, original_second], **private)
    edit_btn.click(h.on_edit, [checkpoint, extractor, original, original_second, text, query, second, top_k],
                   [edit_md, probs, diff, deltas, rows], **private)
    flip_btn.click(h.on_flip, [checkpoint, extractor, text, query, second, edit, fraction, max_words, seed],
                   [flip_out, guided, rnd], **private)


__all__ = ["build_counterfactuals", "delta_pieces", "diff_pieces", "diff_rows", "edit_summary_md", "flip_md",
           "flip_pieces", "prob_rows"]
