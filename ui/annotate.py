"""Annotate: mark and unmark words as the rationale of a text, set its label and save it, with the
annotator's name and the time, into a named annotation set (a dataset in the workspace's data folder,
:mod:`workbench.annotations`). One panel sits in the Explain tab (the typed text or dataset example
explained there; it starts from the model's rationale or the gold one) and one in the Datasets browser
(the example shown; it starts from the gold rationale), where the set's annotator agreement is shown too,
and where a set is merged into a dataset's train split: a new dataset, the base left as it is
(:meth:`workbench.annotations.AnnotationService.merge`, as ``python -m unirex annotations merge`` does).

**Why a CheckboxGroup of words.** A ``gr.HighlightedText`` shows words but cannot be clicked; the
interactive one lets a mouse drag select characters (not words) and hands back text pieces that must be
aligned to words again, and it cannot be driven from a keyboard. A ``gr.HTML`` with one button per word
would put the user's text into markup. A ``gr.CheckboxGroup`` whose choices are the words (shown as text,
valued by position) is clicked word by word, works from the keyboard, hands back word positions, and
shows every word as text. A span is marked (or unmarked) at once by its first and last word's numbers
(drag-selecting is not available in Gradio's components); a highlighted preview shows the result.

The annotator's name is typed once per browser visit: it is kept in a state both panels share, and a panel
whose name box is empty takes it when a text is loaded into it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import gradio as gr
from gradio.context import Context

from ui.common import Handlers, code, handler, md
from workbench import Workbench

RATIONALE = "rationale"
COLORS = {RATIONALE: "#2e9d4f"}
SPLITS = ["train", "dev", "test", "auto"]
DEFAULT_SET = "annotations"
AGREEMENT_HEADERS = ["example", "kappa", "F1", "annotators", "labels", "first words"]
PRIVATE = {"api_visibility": "private"}
_SHARED_NAME: list = []  # [the root Blocks, its gr.State of the annotator's name] of the app being built


@dataclass
class Item:
    """What a panel annotates: the words (over the documents), their document, the query, the gold and the
    model's rationale where known, the labels to choose from and the label to start from."""

    words: list[str]
    word_document: list[int]
    query: str = ""
    gold: list[bool] | None = None
    model: list[bool] | None = None
    labels: list[str] = field(default_factory=list)
    label: str | None = None
    source: str = ""


def word_choices(item: Item) -> list[tuple[str, int]]:
    """``(shown, position)`` per word; the first word of a second document is shown after a ``|``."""
    out = []
    for i, w in enumerate(item.words):
        new_doc = i and item.word_document[i] != item.word_document[i - 1]
        out.append((("| " if new_doc else "") + w, i))
    return out


def preview_pieces(item: Item, marked: list[int]) -> list[tuple[str, str | None]]:
    on = set(int(i) for i in marked or [])
    out: list[tuple[str, str | None]] = []
    for i, w in enumerate(item.words):
        if i and item.word_document[i] != item.word_document[i - 1]:
            out.append(("| ", None))
        label = RATIONALE if i in on else None
        if out and out[-1][1] == label and label is not None:
            out[-1] = (out[-1][0] + w + " ", label)
        else:
            out.append((w + " ", label))
    return out


def _item(state) -> Item:
    if not state:
        raise gr.Error("Load a text first (the button above).")
    return Item(**state)


def agreement_rows(ag) -> list[list]:
    return [[e.example_id, round(e.kappa, 3), round(e.f1, 3), ", ".join(e.annotators), ", ".join(e.labels), e.preview]
            for e in ag.examples]


def agreement_md(name: str, ag) -> str:
    if not ag.n_examples:
        return (f"Set {code(name)}: no example has two annotators yet ({len(ag.annotators)} annotator(s): "
                + ", ".join(code(a) for a in ag.annotators) + ").")
    pairs = "; ".join(f"{code(p.a)} / {code(p.b)}: kappa {p.kappa:.3f}, F1 {p.f1:.3f}" for p in ag.pairs)
    return (f"Set {code(name)}: token-level Cohen's kappa **{ag.kappa:.3f}**, pairwise F1 **{ag.f1:.3f}** over "
            f"{ag.n_examples} examples with two or more annotators. {pairs}. Most disagreement first:")


class AnnotateHandlers(Handlers):
    """The panels' event handlers."""

    def _loaded(self, item: Item, start: list[bool] | None, note: str):
        marked = [i for i, m in enumerate(start or []) if m]
        label = item.label if item.label in item.labels else (item.labels[0] if item.labels else None)
        where = f" · {md(item.source)}" if item.source else ""
        info = f"**{len(item.words)} words** loaded{where}. {note}"
        return (asdict(item), info, gr.update(choices=word_choices(item), value=marked),
                gr.update(choices=item.labels, value=label), preview_pieces(item, marked))

    def _set_labels(self, set_name) -> list[str]:
        try:
            return list(self.wb.annotations.load(set_name).labels) if set_name in self.wb.annotations.sets() else []
        except Exception:  # noqa: BLE001 - the label choices only
            return []

    @handler
    def on_load_explain(self, ck, extractor, text, query, second, top_k, gold, set_name):
        if not (text or "").strip():
            raise gr.Error("Type a text (or pick a dataset example) first.")
        if ck:
            e = self.wb.explain(ck, text, query=query or None, extractor=None if extractor == "own" else extractor,
                                top_k=float(top_k), second_text=second or None)
            gold = gold if gold is not None and len(gold) == len(e.words) else None
            item = Item(list(e.words), list(e.word_document), query or "", gold, list(e.rationale), list(e.labels),
                        e.predicted, f"explain {e.run_id or ck}")
            start, note = item.model, "Starting from the model's rationale" + (" (the gold one is a click away)."
                                                                                 if gold else ".")
        else:
            words, docs = self.wb.annotations.words([text] + ([second] if (second or "").strip() else []))
            item = Item(words, docs, query or "", None, None, self._set_labels(set_name), None, "typed text")
            start, note = None, "No checkpoint chosen: no model rationale to start from."
        return self._loaded(item, start, note)

    @handler
    def on_load_example(self, ds, arch, ml, split, indices, pos):
        if not indices:
            raise gr.Error("Press 'Show examples' first (or no example matches the filter).")
        ml = int(ml) if ml else None
        ex = self.wb.example(ds, arch, ml, split, indices[max(0, min(int(pos), len(indices) - 1))])
        labels = self.wb.dataset_labels(ds, arch, ml, "train")
        item = Item(list(ex.words), list(ex.word_document), ex.query, list(ex.gold), None, labels, ex.label,
                    f"{ds}/{split} {ex.annotation_id}")
        return self._loaded(item, item.gold, "Starting from the gold rationale." if ex.has_rationale
                            else "It has no gold rationale: mark the words yourself.")

    @handler
    def on_start(self, state, which):
        item = _item(state)
        start = item.model if which == "model" else item.gold
        if start is None:
            raise gr.Error(f"This text has no {'model' if which == 'model' else 'gold'} rationale.")
        marked = [i for i, m in enumerate(start) if m]
        return marked, preview_pieces(item, marked)

    @handler
    def on_span(self, state, marked, first, last, on):
        item = _item(state)
        if first is None or last is None:
            raise gr.Error("Give the span's first and last word numbers.")
        a, b = sorted((int(first), int(last)))
        if a < 1 or b > len(item.words):
            raise gr.Error(f"Word numbers run from 1 to {len(item.words)}.")
        span = set(range(a - 1, b))
        now = set(int(i) for i in marked or [])
        now = (now | span) if on else (now - span)
        out = sorted(now)
        return out, preview_pieces(item, out)

    @handler
    def on_marked(self, state, marked):
        return preview_pieces(_item(state), marked) if state else []

    @handler
    def on_save(self, state, marked, label, set_name, annotator, split):
        item = _item(state)
        if not (annotator or "").strip():
            raise gr.Error("Type your name first (once per visit).")
        if not (label or "").strip():
            raise gr.Error("Choose the class label.")
        on = set(int(i) for i in marked or [])
        res = self.wb.annotations.save(set_name or DEFAULT_SET, item.words, item.word_document, item.query, label,
                                       [i in on for i in range(len(item.words))], annotator, split or "train",
                                       item.source)
        notes = "".join(f"\n\n- {md(n)}" for n in res.notes)
        msg = (f"Saved into {code(res.name)} as version **{res.version}** by {code(annotator.strip())}: "
               f"{len(on)} words marked, label {code(label)}. The set holds {res.n_annotations} annotations of "
               f"{res.n_examples} examples by {len(res.annotators)} annotator(s); it is a dataset: build, browse "
               f"and train on {code(res.name)} as any other.{notes}")
        return msg, gr.update(choices=self.wb.annotations.sets(), value=res.name)

    def merge_targets(self) -> list[str]:
        """The datasets a set can be merged into: the workspace's datasets that are not annotation sets."""
        sets = set(self.wb.annotations.sets())
        return [n for n in self.wb.dataset_names() if n not in sets]

    @handler
    def on_merge(self, set_name, base, new_name):
        """Merge set ``set_name`` into a copy of ``base``'s train split named ``new_name``; returns the message,
        then the refreshed choices of the tab's dataset picker and of the merge's base picker."""
        if not (set_name or "").strip():
            raise gr.Error("Choose an annotation set.")
        if not (base or "").strip():
            raise gr.Error("Choose the dataset to merge the set into.")
        if not (new_name or "").strip():
            raise gr.Error("Type a name for the new dataset.")
        r = self.wb.annotations.merge(set_name, base, new_name.strip())
        msg = (f"Made {code(r.name)}: {code(r.base)} with the **{r.n_added}** annotations of {code(r.set_name)} "
               f"(version {r.set_version}) added to its train split ({r.n_train} train examples); {code(r.base)} "
               f"is unchanged. Choose {code(r.name)} in the Dataset picker above and build it.")
        return msg, gr.update(choices=self.wb.dataset_names()), gr.update(choices=self.merge_targets())

    @handler
    def on_agreement(self, set_name):
        if not set_name:
            raise gr.Error("Choose an annotation set.")
        ag = self.wb.annotations.agreement(set_name)
        return agreement_md(set_name, ag), agreement_rows(ag)


def _shared_name() -> gr.State:
    """The annotator's name for the visit, one state shared by every panel of the app being built: a panel's
    name box writes it, and loading a text into a panel fills that panel's box from it (a box in a tab not
    yet shown cannot be updated reliably, so the name is handed over when the panel is used)."""
    root = Context.root_block
    if not _SHARED_NAME or _SHARED_NAME[0] is not root:  # another app: a state of its own
        _SHARED_NAME[:] = [root, gr.State("")]
    return _SHARED_NAME[1]


def _name_for(shared: str, current: str):
    """The panel's name box after a load: what it holds, else the name typed elsewhere in the visit."""
    return gr.update() if (current or "").strip() or not (shared or "").strip() else shared


def _merge_blocks(h: AnnotateHandlers, prefix: str, set_name, dataset) -> None:
    """Merging the chosen set into a dataset's train split (a new dataset); ``dataset``: the tab's dataset
    picker, whose choices are refreshed after a merge (as the merge's own base picker's are)."""
    gr.Markdown("**Merge the annotation set chosen above into a dataset's train split**: a new dataset is made "
                "(the base's files, the set's annotations appended to train); the base is not changed.")
    with gr.Row():
        targets = h.merge_targets()
        base = gr.Dropdown(targets, value=targets[0] if targets else None, label="Into dataset",
                           elem_id=f"{prefix}-merge-base")
        new_name = gr.Textbox(label="New dataset's name", placeholder="e.g. demo_plus_annotations",
                              elem_id=f"{prefix}-merge-name")
        merge_btn = gr.Button("Merge into a new dataset", size="sm")
    merge_status = gr.Markdown(elem_id=f"{prefix}-merge-status")
    merge_btn.click(h.on_merge, [set_name, base, new_name], [merge_status, dataset, base], **PRIVATE)


def _panel(wb: Workbench, prefix: str, load_label: str, with_model: bool, with_agreement: bool,
           dataset=None):
    """The panel's blocks and the events inside it; returns ``(load button, state, outputs of a load, set)``.
    ``dataset``: the tab's dataset picker; given, the panel merges sets too and refreshes it after a merge."""
    h = AnnotateHandlers(wb)
    sets = wb.annotations.sets()
    with gr.Accordion("Annotate: mark the rationale, set the label, save into an annotation set", open=False,
                      elem_id=f"{prefix}-annotate"):
        with gr.Row():
            load_btn = gr.Button(load_label, size="sm", variant="secondary")
            model_btn = gr.Button("Start from the model's rationale", size="sm", visible=with_model)
            gold_btn = gr.Button("Start from the gold rationale", size="sm")
            clear_btn = gr.Button("Clear the marks", size="sm")
        info = gr.Markdown(elem_id=f"{prefix}-ann-info")
        words = gr.CheckboxGroup([], label="Rationale: click a word to mark or unmark it", elem_id=f"{prefix}-ann-words")
        with gr.Row():
            first = gr.Number(label="Span: first word (1 = the first)", precision=0, minimum=1, scale=2)
            last = gr.Number(label="last word", precision=0, minimum=1, scale=2)
            mark_btn = gr.Button("Mark the span", size="sm", scale=1)
            unmark_btn = gr.Button("Unmark the span", size="sm", scale=1)
        preview = gr.HighlightedText(label="Marked words", color_map=COLORS, show_inline_category=False,
                                     show_legend=False, elem_id=f"{prefix}-ann-preview")
        with gr.Row():
            label = gr.Dropdown([], label="Class label", allow_custom_value=True, elem_id=f"{prefix}-ann-label")
            set_name = gr.Dropdown(sets, value=sets[0] if sets else DEFAULT_SET, allow_custom_value=True,
                                   label="Annotation set (a new name starts one)", elem_id=f"{prefix}-ann-set")
            annotator = gr.Textbox(label="Your name (asked once per visit)", elem_id=f"{prefix}-ann-name")
            split = gr.Radio(SPLITS, value="train", label="Split of a new example (auto: 80/10/10)")
        save_btn = gr.Button("Save the annotation", variant="primary")
        status = gr.Markdown(elem_id=f"{prefix}-ann-status")
        if with_agreement:
            agree_btn = gr.Button("Agreement between the set's annotators", size="sm")
            agree_md = gr.Markdown(elem_id=f"{prefix}-ann-agreement")
            agree_table = gr.Dataframe(headers=AGREEMENT_HEADERS, interactive=False, wrap=True,
                                       label="Per example (most disagreement first)")
            agree_btn.click(h.on_agreement, [set_name], [agree_md, agree_table], **PRIVATE)
        if dataset is not None:
            _merge_blocks(h, prefix, set_name, dataset)
    state = gr.State(None)
    shared = _shared_name()
    annotator.input(lambda v: v, [annotator], [shared], **PRIVATE)
    model_btn.click(lambda s: h.on_start(s, "model"), [state], [words, preview], **PRIVATE)
    gold_btn.click(lambda s: h.on_start(s, "gold"), [state], [words, preview], **PRIVATE)
    clear_btn.click(lambda s: ([], h.on_marked(s, [])), [state], [words, preview], **PRIVATE)
    mark_btn.click(lambda s, m, a, b: h.on_span(s, m, a, b, True), [state, words, first, last], [words, preview],
                   **PRIVATE)
    unmark_btn.click(lambda s, m, a, b: h.on_span(s, m, a, b, False), [state, words, first, last], [words, preview],
                     **PRIVATE)
    words.input(h.on_marked, [state, words], [preview], **PRIVATE)
    # private: its inputs are the page's state (scripts use wb.annotations or `python -m unirex annotations`)
    save_btn.click(h.on_save, [state, words, label, set_name, annotator, split], [status, set_name], **PRIVATE).then(
        lambda v: v, [annotator], [shared], **PRIVATE)
    # loading a text also hands this panel the name typed in the other panel during the visit
    return h, load_btn, state, [state, info, words, label, preview, annotator], set_name, shared


def explain_panel(wb: Workbench, inputs: list) -> None:
    """The Explain tab's panel; ``inputs``: checkpoint, extractor, text, query, second document, top-k, gold."""
    h, load_btn, state, outs, set_name, shared = _panel(wb, "explain", "Annotate this text", True, False)
    ck, extractor, text, query, second, top_k, gold = inputs
    load_btn.click(lambda a, b, c, d, e, f, g, s, name, now: (*h.on_load_explain(a, b, c, d, e, f, g, s),
                                                                _name_for(name, now)),
                   [ck, extractor, text, query, second, top_k, gold, set_name, shared, outs[-1]], outs, **PRIVATE)


def datasets_panel(wb: Workbench, inputs: list) -> None:
    """The Datasets browser's panel; ``inputs``: dataset, arch, max length, split, shown rows, position."""
    ds, arch, ml, split, indices, pos = inputs
    h, load_btn, state, outs, _, shared = _panel(wb, "ds", "Annotate this example", False, True, ds)
    load_btn.click(lambda a, b, c, d, e, f, name, now: (*h.on_load_example(a, b, c, d, e, f), _name_for(name, now)),
                   [ds, arch, ml, split, indices, pos, shared, outs[-1]], outs, **PRIVATE)


__all__ = ["Item", "agreement_md", "agreement_rows", "datasets_panel", "explain_panel", "preview_pieces",
           "word_choices"]
