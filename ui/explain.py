"""Explain tab: type or paste a text (with a query, or a second document, where the task has them), pick a
checkpoint and an extractor, and see the prediction, the words highlighted by their score, the top-k%
rationale beside the gold one (for a dataset example), and the comprehensiveness and sufficiency of that
rationale; a second checkpoint or extractor side by side on the same text."""

from __future__ import annotations

import gradio as gr

from ui import annotate
from ui import scores as score_colours
from ui.common import AppDefaults, Handlers, code, handler, md
from ui.counterfactual import build_counterfactuals
from workbench import Workbench

BOTH, PRED, GOLD = "predicted and gold", "predicted only", "gold only"
COLORS = {BOTH: "#2e9d4f", PRED: "#e89a2c", GOLD: "#7aa6e0"}
OWN = "own"


def checkpoint_choices(wb: Workbench) -> list[tuple[str, str]]:
    return [(f"{r.run_id} · {r.method} · {r.dataset}" + (f" · seed {r.seed}" if r.seed is not None else ""), r.run_id)
            for r in wb.checkpoint_runs()]


def scores_html(wb: Workbench, ex, checkpoint: str, extractor: str | None, norm: str, progress=None) -> str:
    """The words coloured by score (diverging for signed scores, sequential otherwise) with the legend, under
    normalisation ``norm``; per dataset, the checkpoint's test-split scores of this extractor (computed once,
    ``progress(done, total)`` told after each example)."""
    dataset = (wb.score_scale(checkpoint, extractor, progress=progress) if norm == score_colours.PER_DATASET
               else None)
    return score_colours.score_html(ex.words, ex.word_scores, ex.word_document, ex.extractor, ex.predicted,
                                    norm, dataset)


def rationale_pieces(ex, gold: list[bool] | None) -> list[tuple[str, str | None]]:
    """The top-k% rationale, and where the example's gold rationale is known, which words they share."""
    gold = gold if gold is not None and len(gold) == len(ex.words) else None
    out: list[tuple[str, str | None]] = []
    for i, (w, r) in enumerate(zip(ex.words, ex.rationale)):
        if i and ex.word_document[i] != ex.word_document[i - 1]:
            out.append(("| ", None))
        g = bool(gold[i]) if gold is not None else False
        label = BOTH if (r and g) else PRED if r else GOLD if g else None
        if label is not None and out and out[-1][1] == label:
            out[-1] = (out[-1][0] + w + " ", label)
        else:
            out.append((w + " ", label))
    return out


def summary_md(ex, gold: list[bool] | None) -> str:
    probs = " · ".join(f"{md(lab)} {p:.3f}" for lab, p in zip(ex.labels, ex.probs))
    lines = [f"**Prediction: {md(ex.predicted)}** ({probs})",
             f"Extractor {code(ex.extractor)}, top {ex.top_k:g}% rationale: "
             + (", ".join(code(w) for w in ex.rationale_words) or "(none)"),
             f"Comprehensiveness **{ex.comprehensiveness:.4f}** (↑ better) · sufficiency **{ex.sufficiency:.4f}** "
             f"(↓ better) · {ex.seconds * 1000:.0f} ms"]
    if gold is not None and len(gold) == len(ex.words) and any(gold):
        both = sum(1 for r, g in zip(ex.rationale, gold) if r and g)
        p = both / max(1, sum(ex.rationale))
        rc = both / max(1, sum(gold))
        lines.append(f"Against the gold rationale: precision {p:.2f}, recall {rc:.2f}")
    if ex.truncated:
        lines.append(f"The text was cut to the model's max length ({ex.n_subwords} subwords); later words score 0.")
    return "\n\n".join(lines)


def on_text_edit():
    return None  # a typed text has no gold rationale


class ExplainHandlers(Handlers):
    """The Explain tab's event handlers."""

    def _one(self, ck, ex, t, q, s, k, gold_marks, norm=score_colours.PER_TEXT, progress=None):
        extractor = None if ex == OWN else ex
        e = self.wb.explain(ck, t, query=q or None, extractor=extractor, top_k=float(k), second_text=s or None)

        def told(done, total):
            if progress is not None:
                progress((done, total), desc="per-dataset colour scale: scoring test examples (once)")

        return (summary_md(e, gold_marks), e.probabilities, scores_html(self.wb, e, ck, extractor, norm, told),
                rationale_pieces(e, gold_marks))

    @handler
    def on_explain(self, cka, exa, both, ckb, exb, t, q, s, k, gold_marks, norm=score_colours.PER_TEXT,
                   progress=gr.Progress()):
        if not cka:
            raise gr.Error("Choose a checkpoint first (train a run with save_checkpoint=True in the Train tab).")
        progress(0, desc="loading the checkpoint (a few seconds on its first use), then explaining…")
        a = self._one(cka, exa, t, q, s, k, gold_marks, norm, progress)
        b = self._one(ckb or cka, exb, t, q, s, k, gold_marks, norm, progress) if both else (gr.update(),) * 4
        return (*a, *b)

    def on_norm(self, cka, exa, both, ckb, exb, t, q, s, k, gold_marks, norm, progress=gr.Progress()):
        """A new normalisation redraws what is explained (nothing when there is no text or checkpoint yet)."""
        if not cka or not (t or "").strip():
            return (gr.update(),) * 8
        return self.on_explain(cka, exa, both, ckb, exb, t, q, s, k, gold_marks, norm, progress)

    @handler
    def on_load_examples(self, ck):
        if not ck:
            raise gr.Error("Choose a checkpoint first.")
        exs = self.wb.checkpoint_examples(ck, "test", 30)
        opts = [(f"{i + 1}. {e.annotation_id} · {e.label} · {' '.join(e.words[:8])}…", i) for i, e in enumerate(exs)]
        return [e.__dict__ for e in exs], gr.update(choices=opts, value=None), f"{len(exs)} examples of the test split."

    @handler
    def on_pick(self, i, exs):
        if i is None or not exs:
            return gr.update(), gr.update(), gr.update(), None, ""
        e = exs[int(i)]
        docs: dict[int, list[str]] = {}
        for w, d in zip(e["words"], e["word_document"]):
            docs.setdefault(d, []).append(w)
        texts = [" ".join(docs[d]) for d in sorted(docs)]
        gold_words = [w for w, m in zip(e["words"], e["gold"]) if m]
        info = (f"{code(e['annotation_id'])} · gold label **{md(e['label'])}** · gold rationale: "
                + (", ".join(code(w) for w in gold_words) or "(none)"))
        return texts[0], e["query"], texts[1] if len(texts) > 1 else "", list(e["gold"]), info

    @handler
    def on_refresh(self, a, b):
        ch = checkpoint_choices(self.wb)
        first = ch[0][1] if ch else None
        return gr.update(choices=ch, value=a or first), gr.update(choices=ch, value=b or first)


def _norm_radio():
    """The colour normalisation of the word scores (LIT's choice): per text, per dataset, none."""
    return gr.Radio(list(score_colours.NORMALISATIONS), value=score_colours.PER_TEXT, scale=2,
                    label="Colour normalisation of the scores", elem_id="explain-norm",
                    info="per dataset: over 50 test examples of the checkpoint, computed once")


def _result_columns():
    """The two result columns (B hidden until side by side is chosen): ``[(column, summary, probabilities,
    scores, rationale), ...]``."""
    outs = []
    with gr.Row():
        for side in ("A", "B"):
            with gr.Column(visible=side == "A", elem_id=f"explain-{side}") as col:
                summary = gr.Markdown()
                probs = gr.Label(label="Class probabilities")
                scores = gr.HTML(label="Words by score (the legend below says what the colours mean)",
                                 show_label=True, elem_classes=["explain-scores"])
                rationale = gr.HighlightedText(label="Top-k% rationale (beside the gold one for dataset examples)",
                                               color_map=COLORS, show_legend=True, show_inline_category=False)
            outs.append((col, summary, probs, scores, rationale))
    return outs


def build_tab(wb: Workbench, defaults: AppDefaults = AppDefaults()):
    """Build the tab; returns the refresh event ``(fn, inputs, outputs)`` run when the tab is shown."""
    h = ExplainHandlers(wb)
    extractors = [OWN, *wb.extractors()]
    choices = checkpoint_choices(wb)
    with gr.Row():
        with gr.Column():
            ck_a = gr.Dropdown(choices, value=choices[0][1] if choices else None, allow_custom_value=True,
                               label="Checkpoint (a run with a checkpoint, or a folder in the workspace / Hub id)")
            ex_a = gr.Dropdown(extractors, value=OWN, label="Extractor")
        with gr.Column():
            compare = gr.Checkbox(value=False, label="Side by side with a second checkpoint or extractor")
            ck_b = gr.Dropdown(choices, value=choices[0][1] if choices else None, allow_custom_value=True,
                               label="Second checkpoint")
            ex_b = gr.Dropdown(extractors, value=extractors[1], label="Second extractor")
    with gr.Row():
        top_k = gr.Slider(1, 100, value=10, step=1, label="Rationale size: top-k% of the words' subwords", scale=3)
        norm = _norm_radio()
    text = gr.Textbox(lines=5, label=f"Text (at most {wb.max_text_chars():,} characters)",
                      placeholder="the plot was thin but the acting was wonderful .", elem_id="explain-text")
    with gr.Row():
        query = gr.Textbox(label="Query (query tasks: MultiRC, BoolQ, FEVER; CoS-E: the choices joined by ' [sep] ')")
        second = gr.Textbox(label="Second document (two-document tasks: e-SNLI's hypothesis)")
    with gr.Row():
        explain_btn = gr.Button("Explain", variant="primary", scale=2)
        refresh_btn = gr.Button("Refresh checkpoints", size="sm", scale=1)
    with gr.Accordion("Dataset examples of this checkpoint (one click away, with their gold rationale)", open=False):
        with gr.Row():
            example_pick = gr.Dropdown([], label="Example (test split)", scale=3)
            load_btn = gr.Button("Load examples", size="sm", scale=1)
        example_md = gr.Markdown()
    gold = gr.State(None)
    outs = _result_columns()
    col_b = outs[1][0]
    build_counterfactuals(wb, ck_a, ex_a, text, query, second, top_k)
    examples = gr.State([])
    annotate.explain_panel(wb, [ck_a, ex_a, text, query, second, top_k, gold])

    private = {"api_visibility": "private"}
    side_outputs = [o for side in outs for o in side[1:]]
    explain_inputs = [ck_a, ex_a, compare, ck_b, ex_b, text, query, second, top_k, gold, norm]
    explain_btn.click(h.on_explain, explain_inputs, side_outputs, api_name="explain")
    norm.input(h.on_norm, explain_inputs, side_outputs, **private)
    text.submit(h.on_explain, explain_inputs, side_outputs, **private)
    compare.change(lambda c: gr.update(visible=bool(c)), [compare], [col_b], **private)
    load_btn.click(h.on_load_examples, [ck_a], [examples, example_pick, example_md], **private)
    example_pick.input(h.on_pick, [example_pick, examples], [text, query, second, gold, example_md], **private)
    text.input(on_text_edit, None, [gold], **private)
    refresh_btn.click(h.on_refresh, [ck_a, ck_b], [ck_a, ck_b], **private)
    return h.on_refresh, [ck_a, ck_b], [ck_a, ck_b]


__all__ = ["build_tab", "rationale_pieces", "scores_html", "summary_md"]
