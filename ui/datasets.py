"""Datasets tab: build an ERASER dataset for an arch, see its summary, browse examples with their gold
rationale, upload an archive of your own, and fetch the ERASER datasets of the catalog."""

from __future__ import annotations

import dataclasses

import gradio as gr

from ui import annotate
from ui.common import AppDefaults, Handlers, code, fmt_bytes, handler, md
from workbench import DatasetExample, Workbench

SPLITS = ["train", "dev", "test"]
SUMMARY_HEADERS = ["arch", "max length", "split", "examples", "labels", "mean subwords", "truncated", "with rationale",
                   "rationale coverage (words)", "cache"]
CATALOG_HEADERS = ["name", "task type", "labels", "examples train / val / test", "archive", "status"]
GOLD, NOT_READ, GOLD_NOT_READ, CUT = "gold rationale", "not read (past max length)", "gold, not read", "input ends"
COLORS = {GOLD: "#2e9d4f", NOT_READ: "#d0d0d0", GOLD_NOT_READ: "#9fd3a8", CUT: "#e0413a"}


def summary_rows(summaries, built=()) -> list[list]:
    """The built splits' table; its "cache" column says, for the splits of the build just made (``built``),
    whether each was built or taken from the cache, and "on disk" for the others."""
    fresh = {(b.arch, b.max_length, b.split): b.cache_hit for b in built}
    rows = []
    for s in summaries:
        s = dataclasses.replace(s, cache_hit=fresh.get((s.arch, s.max_length, s.split), s.cache_hit))
        rows.append([s.arch, s.max_length, s.split, s.count,
                     ", ".join(f"{k}: {v}" for k, v in s.label_distribution.items()), round(s.mean_subwords, 1),
                     s.truncated, s.with_rationale,
                     None if s.rationale_coverage is None else round(s.rationale_coverage, 3),
                     "on disk" if s.cache_hit is None else ("cache hit" if s.cache_hit else "built")])
    return rows


def example_pieces(ex: DatasetExample) -> list[tuple[str, str | None]]:
    """HighlightedText pieces: the gold rationale, the words past the model's input, a marker where the
    input ends; one piece per plain word so lines wrap between words."""
    pieces: list[tuple[str, str | None]] = []
    last_doc = ex.word_document[0] if ex.word_document else 0
    for i, (w, g, d) in enumerate(zip(ex.words, ex.gold, ex.word_document)):
        if d != last_doc:
            pieces.append(("| ", None))
            last_doc = d
        if i == ex.read_words and ex.truncated:
            pieces.append((f"⟂ model input ends here ({ex.max_length} subwords) ", CUT))
        read = i < ex.read_words or not ex.truncated
        label = (GOLD if read else GOLD_NOT_READ) if g else (None if read else NOT_READ)
        if label is not None and pieces and pieces[-1][1] == label:
            pieces[-1] = (pieces[-1][0] + w + " ", label)
        else:
            pieces.append((w + " ", label))
    return pieces


def example_title(ex: DatasetExample, pos: int, n: int, filtered: bool) -> str:
    head = (f"**Example {pos + 1} of {n}**" + (" (filtered)" if filtered else "")
            + f" · row {md(ex.index)} of {md(ex.split)}")
    parts = [f"{code(ex.annotation_id)}", f"label **{md(ex.label)}**"]
    if ex.query:
        parts.append(f"query: {md(ex.query)}")
    if not ex.has_rationale:
        parts.append("no gold rationale")
    if ex.truncated:
        parts.append(f"truncated: the model reads the first {md(ex.read_words)} of {len(ex.words)} words")
    return head + "\n\n" + " — ".join(parts)


def catalog_rows(rows) -> list[list]:
    out = []
    for r in rows:
        size = fmt_bytes(r.archive_bytes) if r.archive_bytes is not None else "unknown"
        if r.archive_bytes is not None and r.archive_size_source == "server":
            size += " (host)"
        size += f"; unpacks to ≤ {fmt_bytes(r.unpacked_limit_bytes)}"
        out.append([r.name, r.task_type, r.labels, " / ".join(f"{n:,}" for n in r.sizes), size, r.status])
    return out


def _filters(label, rationale, truncated):
    return (None if label in (None, "", "any") else label,
            None if rationale == "any" else rationale == "with gold rationale",
            None if truncated == "any" else truncated == "truncated")


def _ml(ml) -> int | None:
    return int(ml) if ml else None


class DatasetsHandlers(Handlers):
    """The Datasets tab's event handlers."""

    def catalog_note(self) -> str:
        rows = self.wb.catalog()
        base = rows[0].source_url.rsplit("/", 1)[0] if rows else ""
        return (f"Archives come from {code(base)} (`UNIREX_ERASER_BASE_URL` points at a mirror); they are "
                "verified and unpacked safely into the data folder on first use.")

    @handler
    def on_load(self, ds):
        """The page opens: the datasets on disk (uploaded, built or downloaded since the app started too), the
        chosen one's summary, the catalog."""
        wb = self.wb
        return (gr.update(choices=wb.dataset_names()), summary_rows(wb.dataset_summaries(ds)) if ds else [],
                catalog_rows(wb.catalog()), self.catalog_note())

    def on_show(self):
        return gr.update(choices=self.wb.dataset_names())  # datasets added from another page or the CLI

    @handler
    def on_build(self, ds, a, ml, progress=gr.Progress()):
        def step(i, n, what):
            progress((i, n), desc=what)

        wb = self.wb
        rows = wb.build_dataset(ds, a, _ml(ml), on_progress=step)
        built = sum(1 for s in rows if not s.cache_hit)
        msg = (f"Built **{md(ds)}** for arch {code(a)}: {built} split(s) built, {len(rows) - built} from the cache.")
        return (msg, summary_rows(wb.dataset_summaries(ds), rows), gr.update(choices=wb.dataset_names()),
                gr.update(choices=["any", *wb.dataset_labels(ds, a, _ml(ml), "train")]))

    @handler
    def on_dataset(self, ds):
        if not ds:
            return [], gr.update()
        return summary_rows(self.wb.dataset_summaries(ds)), gr.update(value="any")

    def _show(self, ds, a, ml, sp, idx, p, filters):
        if not idx:
            return [], 0, "No example matches this filter.", []
        p = max(0, min(int(p), len(idx) - 1))
        ex = self.wb.example(ds, a, _ml(ml), sp, idx[p])
        filtered = any(v is not None for v in _filters(*filters))
        return idx, p, example_title(ex, p, len(idx), filtered), example_pieces(ex)

    @handler
    def on_filter(self, ds, a, ml, sp, lab, rat, trunc):
        idx = self.wb.find_examples(ds, a, _ml(ml), sp, *_filters(lab, rat, trunc))
        labels = ["any", *self.wb.dataset_labels(ds, a, _ml(ml), sp)]
        return (*self._show(ds, a, ml, sp, idx, 0, (lab, rat, trunc)), gr.update(choices=labels), 1)

    @handler
    def on_move(self, ds, a, ml, sp, idx, p, delta, lab, rat, trunc):
        if not idx:
            raise gr.Error("Press 'Show examples' first (or no example matches the filter).")
        out = self._show(ds, a, ml, sp, idx, int(p) + delta, (lab, rat, trunc))
        return (*out, out[1] + 1)

    @handler
    def on_goto(self, ds, a, ml, sp, idx, n, lab, rat, trunc):
        if not idx:
            raise gr.Error("Press 'Show examples' first (or no example matches the filter).")
        n = int(n or 1)
        if not 1 <= n <= len(idx):
            raise gr.Error(f"example {n} is out of range: 1 to {len(idx)}")
        return self._show(ds, a, ml, sp, idx, n - 1, (lab, rat, trunc))

    @handler
    def on_upload(self, path, nm):
        if not path:
            raise gr.Error("Choose an archive to upload first.")
        n, folder, desc = self.wb.upload_dataset(path, nm or None)
        return (f"Unpacked into {code(folder)}: {md(desc)}. Choose **{md(n)}** above and build it.",
                gr.update(choices=self.wb.dataset_names(), value=n))

    @handler
    def on_download(self, n, src, progress=gr.Progress()):
        def on_progress(done: int, total: int | None) -> None:
            progress((done, total) if total else None, desc=f"downloading {n}: {done / 1e6:.1f} MB", unit="bytes")

        path = self.wb.download_dataset(n, src, on_progress)
        return (f"**{md(n)}** is in {code(path)}; build it above.", catalog_rows(self.wb.catalog()),
                gr.update(choices=self.wb.dataset_names()))

    @handler
    def on_sizes(self):
        rows, failures = self.wb.check_archive_sizes()
        msg = "Archive sizes updated from the host." if not failures else (
            f"The host did not answer for {len(failures)} of {len(rows)} archives: " + md("; ".join(failures[:3])))
        if failures:
            gr.Warning(f"{len(failures)} archive size(s) unknown: the host could not be reached")
        return catalog_rows(rows), msg


def _upload_blocks():
    """The upload accordion: ``(file, name, button, status)``."""
    with gr.Accordion("Upload an ERASER dataset (.zip or .tar.gz)", open=False):
        gr.Markdown("The archive holds `train.jsonl`, `val.jsonl` (or `dev.jsonl`), `test.jsonl` and `docs/` (or "
                    "`docs.jsonl`), at its top or in one folder. It is unpacked safely (no `..`, absolute paths, "
                    "links or devices; a size limit; the layout checked) into the workspace's data folder.")
        with gr.Row():
            upload_file = gr.File(label="Archive", file_types=[".zip", ".gz", ".tgz", ".tar", ".bz2", ".xz"],
                                  type="filepath", scale=3, elem_id="ds-upload")
            upload_name = gr.Textbox(label="Dataset name (default: the archive's name)", scale=2)
            upload_btn = gr.Button("Upload and unpack", scale=1)
        upload_status = gr.Markdown()
    return upload_file, upload_name, upload_btn, upload_status


def _catalog_blocks(wb: Workbench):
    """The ERASER catalog: ``(note, table, name, source, download button, sizes button, status)``."""
    gr.Markdown("### ERASER catalog")
    catalog_note = gr.Markdown()
    catalog = gr.Dataframe(headers=CATALOG_HEADERS, label="Catalog", interactive=False, wrap=True,
                           column_widths=["12%", "11%", "22%", "19%", "24%", "12%"])
    with gr.Row():
        name = gr.Dropdown([r.name for r in wb.catalog()], value="movies", label="Dataset to download")
        source = gr.Radio(["eraser", "hf"], value="eraser", label="Source (ERASER archive or Hugging Face copy)")
        dl_btn = gr.Button("Download")
        sizes_btn = gr.Button("Ask the host for archive sizes")
    dl_status = gr.Markdown()
    return catalog_note, catalog, name, source, dl_btn, sizes_btn, dl_status


def build_tab(wb: Workbench, defaults: AppDefaults = AppDefaults()):
    """Build the tab's blocks; returns the load event ``(fn, inputs, outputs)`` that fills it for the page and the
    refresh ``(fn, inputs, outputs)`` run when the tab is shown."""
    h = DatasetsHandlers(wb)
    with gr.Row():
        dataset = gr.Dropdown(wb.dataset_names(), value=defaults.dataset, label="Dataset", allow_custom_value=True,
                              scale=2, elem_id="ds-name")
        arch = gr.Textbox(value=defaults.arch, label="Arch (default = bundled MiniLM, a HF id, or a folder in the "
                                                     "workspace)", scale=3)
        max_length = gr.Number(value=defaults.max_length, precision=0, scale=2,
                               label="Max length (subwords; 0 = the arch's maximum, at most 512)")
    build_btn = gr.Button("Build dataset", variant="primary")
    status = gr.Markdown()
    summary = gr.Dataframe(headers=SUMMARY_HEADERS, label="Built splits (every arch and max length)", interactive=False,
                           wrap=True, elem_id="ds-summary")
    upload_file, upload_name, upload_btn, upload_status = _upload_blocks()

    gr.Markdown("### Examples")
    with gr.Row():
        split = gr.Dropdown(SPLITS, value="train", label="Split", scale=1)
        label_f = gr.Dropdown(["any"], value="any", label="Label", scale=1)
        rationale_f = gr.Radio(["any", "with gold rationale", "without"], value="any", label="Gold rationale", scale=2)
        truncated_f = gr.Radio(["any", "truncated", "not truncated"], value="any", label="Truncated", scale=2)
    with gr.Row():
        prev_btn = gr.Button("◀ Previous", size="sm")
        show_btn = gr.Button("Show examples", size="sm", variant="secondary")
        next_btn = gr.Button("Next ▶", size="sm")
        goto = gr.Number(value=1, precision=0, label="Go to example", min_width=100)
    indices = gr.State([])
    pos = gr.State(0)
    title = gr.Markdown(elem_id="ds-title")
    highlighted = gr.HighlightedText(label="Document (gold rationale highlighted; grey: past the model's input)",
                                     color_map=COLORS, show_inline_category=False, show_legend=True, elem_id="ds-doc")
    annotate.datasets_panel(wb, [dataset, arch, max_length, split, indices, pos])
    catalog_note, catalog, name, source, dl_btn, sizes_btn, dl_status = _catalog_blocks(wb)

    private = {"api_visibility": "private"}
    filters = [label_f, rationale_f, truncated_f]
    filt_inputs = [dataset, arch, max_length, split, *filters]
    filt_outputs = [indices, pos, title, highlighted, label_f, goto]
    build_btn.click(h.on_build, [dataset, arch, max_length], [status, summary, dataset, label_f],
                    api_name="build_dataset")
    dataset.change(h.on_dataset, [dataset], [summary, label_f], **private)
    show_btn.click(h.on_filter, filt_inputs, filt_outputs, api_name="find_examples")
    for comp in (split, label_f, rationale_f, truncated_f):
        comp.input(h.on_filter, filt_inputs, filt_outputs, **private)
    move_inputs = [dataset, arch, max_length, split, indices, pos]
    prev_btn.click(lambda *a: h.on_move(*a[:6], -1, *a[6:]), move_inputs + filters,
                   [indices, pos, title, highlighted, goto], **private)
    next_btn.click(lambda *a: h.on_move(*a[:6], 1, *a[6:]), move_inputs + filters,
                   [indices, pos, title, highlighted, goto], **private)
    goto.submit(h.on_goto, [dataset, arch, max_length, split, indices, goto, *filters],
                [indices, pos, title, highlighted], **private)
    upload_btn.click(h.on_upload, [upload_file, upload_name], [upload_status, dataset], api_name="upload_dataset")
    dl_btn.click(h.on_download, [name, source], [dl_status, catalog, dataset], api_name="download_dataset")
    sizes_btn.click(h.on_sizes, None, [catalog, dl_status], **private)
    return h.on_load, [dataset], [dataset, summary, catalog, catalog_note], (h.on_show, None, [dataset])


__all__ = ["build_tab", "catalog_rows", "example_pieces", "summary_rows"]
