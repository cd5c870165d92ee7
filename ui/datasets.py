"""Datasets tab: build an ERASER dataset for an arch, see its summary and browse gold rationales."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from unirex.data import build_split, ensure_source, load_built
from unirex.data.catalog import catalog_rows
from unirex.data.download import ensure_downloaded
from unirex.data.eraser import DocumentStore
from unirex.errors import UnirexError

SPLITS = ["train", "dev", "test"]


def list_datasets(data_dir: Path) -> list[str]:
    found = sorted(p.name for p in Path(data_dir).iterdir() if p.is_dir() and not p.name.startswith(".")) if Path(data_dir).is_dir() else []
    return sorted(set(found) | {"demo"})


def build_all(data_dir: Path, dataset: str, arch: str, max_length: int | None, progress=None):
    """Build every split; returns the summaries as rows for a table."""
    ensure_source(data_dir, dataset)
    rows = []
    for i, split in enumerate(SPLITS):
        if progress is not None:
            progress((i, len(SPLITS)), desc=f"building {dataset}/{split}")
        built = build_split(data_dir, dataset, split, arch=arch or "default", max_length=max_length or None)
        s = built.summary
        rows.append([split, s["count"], ", ".join(f"{k}: {v}" for k, v in s["label_distribution"].items()),
                     round(s["mean_subwords"], 1), s["truncated"], s["with_rationale"],
                     None if s["rationale_coverage_word"] is None else round(s["rationale_coverage_word"], 3),
                     "cache hit" if built.cache_hit else "built"])
    return rows


def example_highlight(data_dir: Path, dataset: str, arch: str, max_length: int | None, split: str, index: int):
    """An example's document words with its gold rationale marked, for gr.HighlightedText."""
    built = build_split(data_dir, dataset, split, arch=arch or "default", max_length=max_length or None)
    table = load_built(built.path)
    if not 0 <= index < table.height:
        raise UnirexError(f"example {index} is out of range: {split} has {table.height} examples")
    row = table.row(index, named=True)
    source = Path(data_dir) / dataset
    docs = DocumentStore(source)
    words = [w for d in row["docids"] for w in docs.get(d).words]
    marks = row["rationale_words"]
    title = f"{row['annotation_id']} — label {row['label_name']}" + (f" — query: {row['query']}" if row["query"] else "")
    return title, rationale_pieces(words, marks)


def rationale_pieces(words: list[str], marks: list[int], label: str = "rationale") -> list[tuple[str, str | None]]:
    """HighlightedText pieces: one per plain word (so lines wrap between words), one per rationale span."""
    pieces: list[tuple[str, str | None]] = []
    for w, m in zip(words, marks):
        if m and pieces and pieces[-1][1] == label:
            pieces[-1] = (pieces[-1][0] + " " + w, label)
        else:
            pieces.append((w, label if m else None))
    return [(text + " ", lab) for text, lab in pieces]


CATALOG_HEADERS = ["name", "task type", "labels", "train / val / test", "status", "source"]


def catalog_table(data_dir: Path) -> list[list]:
    return [[r["name"], r["task_type"], r["labels"], r["sizes"], r["status"], r["source_url"]]
            for r in catalog_rows(data_dir)]


def download(data_dir: Path, name: str, source: str, progress=None) -> str:
    """Fetch a catalog dataset into the data dir (progress in bytes)."""
    def on_progress(done: int, total: int | None) -> None:
        if progress is not None:
            progress((done, total) if total else None, desc=f"downloading {name}: {done / 1e6:.1f} MB", unit="bytes")

    path = ensure_downloaded(data_dir, name, progress=False, source=source, on_progress=on_progress)
    return f"**{name}** is in `{path}`; build it above."


def build_tab(data_dir: Path) -> None:
    headers = ["split", "examples", "labels", "mean subwords", "truncated", "with rationale", "rationale coverage (words)", "cache"]
    with gr.Row():
        dataset = gr.Dropdown(list_datasets(data_dir), value="demo", label="Dataset", allow_custom_value=True)
        arch = gr.Textbox(value="default", label="Arch (default = bundled MiniLM, or a HF id / local path)")
        max_length = gr.Number(value=0, label="Max length (subwords; 0 = the arch's maximum, at most 512)", precision=0)
    build_btn = gr.Button("Build dataset", variant="primary")
    status = gr.Markdown()
    summary = gr.Dataframe(headers=headers, label="Summary", interactive=False)
    with gr.Row():
        split = gr.Dropdown(SPLITS, value="train", label="Split")
        index = gr.Number(value=0, label="Example", precision=0)
        show_btn = gr.Button("Show example")
    title = gr.Markdown()
    highlighted = gr.HighlightedText(label="Document (gold rationale highlighted)", color_map={"rationale": "green"},
                                    show_inline_category=False, show_legend=True)

    def on_build(ds, a, ml, progress=gr.Progress()):
        try:
            rows = build_all(data_dir, ds, a, int(ml) if ml else None, progress)
        except UnirexError as e:
            return f"**Error:** {e}", gr.update()
        return f"Built **{ds}** for arch `{a}`.", rows

    def on_show(ds, a, ml, sp, i):
        try:
            return example_highlight(data_dir, ds, a, int(ml) if ml else None, sp, int(i or 0))
        except UnirexError as e:
            return f"**Error:** {e}", []

    build_btn.click(on_build, [dataset, arch, max_length], [status, summary])
    show_btn.click(on_show, [dataset, arch, max_length, split, index], [title, highlighted])

    gr.Markdown("### ERASER catalog\nDownloaded on first use, verified and unpacked safely into the data folder "
                "(`UNIREX_ERASER_BASE_URL` points at a mirror).")
    rows = catalog_table(data_dir)
    catalog = gr.Dataframe(value=rows, headers=CATALOG_HEADERS, label="Catalog", interactive=False)
    with gr.Row():
        name = gr.Dropdown([r[0] for r in rows], value="movies", label="Dataset to download")
        source = gr.Radio(["eraser", "hf"], value="eraser", label="Source (ERASER archive or Hugging Face copy)")
        dl_btn = gr.Button("Download")
    dl_status = gr.Markdown()

    def on_download(n, src, progress=gr.Progress()):
        try:
            msg = download(data_dir, n, src, progress)
        except UnirexError as e:
            msg = f"**Error:** {e}"
        return msg, catalog_table(data_dir), gr.update(choices=list_datasets(data_dir))

    dl_btn.click(on_download, [name, source], [dl_status, catalog, dataset])
