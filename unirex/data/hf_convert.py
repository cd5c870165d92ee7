"""Hugging Face copies of the ERASER tasks, converted to the on-disk ERASER layout.

``python -m unirex download-dataset movies --source hf`` loads the catalog's Hugging Face dataset with the
``datasets`` library (imported only here, only when asked for), converts every split and writes
``<data_dir>/<name>/`` with ``train.jsonl``, ``val.jsonl``, ``test.jsonl`` and ``docs.jsonl``, which
:mod:`unirex.data.eraser` reads like the official archives. The folder is written beside the target and
renamed at the end.

Supported forms (``hf_format`` in the catalog):

- ``movie_rationales``: ``review`` (tokenised text, one sentence a line), ``label`` (NEG/POS),
  ``evidences`` (rationale snippets as text).
- ``eraser_multi_rc``: ``passage``, ``query_and_answer`` (the ERASER query), ``label`` (False/True),
  ``evidences`` (snippets).
- ``esnli``: ``premise``, ``hypothesis``, ``label`` (entailment/neutral/contradiction); free-text
  explanations only, so no gold rationale.
- ``cos_e``: ``question``, ``choices``, ``answer``, ``extractive_explanation`` (a snippet of the question);
  label = the letter (A-E) of the answer among the choices, query = the choices joined by ``' [sep] '``.

Snippet evidences become token offsets by searching the snippet's tokens in the document (exact, then
case-insensitive); a snippet that is not found is counted in the report, never guessed. A source without a
test split (cos_e) uses its validation split as test and every tenth train example as val. Datasets on the
Hub that still ship a loading script (which ``datasets`` >= 4 no longer runs) are read from the Hub's
Parquet export (``revision="refs/convert/parquet"``).

When the Hub is unreachable (no network, or ``HF_HUB_OFFLINE=1``), a :class:`UnirexError` says so and how
to place the folder by hand.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Mapping

from tqdm import tqdm

from unirex.data.catalog import CatalogEntry
from unirex.data.install import SOURCE_MARKER, _clear_leftovers, check_layout, dataset_lock, install_tree
from unirex.errors import UnirexError
from unirex.fsutil import tmp_prefix, write_json_atomic
from unirex.hubnet import hub_offline
from unirex.hubnet import is_unreachable as _is_unreachable
from unirex.safepath import dataset_path

DATASETS_PIN = "datasets==5.2.0"
PARQUET_REVISION = "refs/convert/parquet"
HF_SPLITS = {"train": "train", "validation": "val", "val": "val", "dev": "val", "test": "test"}
_WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Words and punctuation marks (for raw text; pre-tokenised text is split on whitespace instead)."""
    return _WORD.findall(text)


def find_span(words: list[str], needle: list[str]) -> tuple[int, int] | None:
    """First ``(start, end)`` where ``needle`` occurs in ``words``: exact, else ignoring case; None if absent."""
    if not needle or len(needle) > len(words):
        return None
    for fold in (False, True):
        hay = [w.lower() for w in words] if fold else words
        ndl = [w.lower() for w in needle] if fold else needle
        first = ndl[0]
        for s in range(len(hay) - len(ndl) + 1):
            if hay[s] == first and hay[s : s + len(ndl)] == ndl:
                return s, s + len(ndl)
    return None


def _evidence(docid: str, sentences: list[list[str]], span: tuple[int, int]) -> dict:
    words = [w for s in sentences for w in s]
    start, end = span
    bounds, acc = [], 0
    for s in sentences:
        bounds.append(acc)
        acc += len(s)
    sent_of = lambda t: max(i for i, b in enumerate(bounds) if b <= t)  # noqa: E731
    return {"docid": docid, "start_token": start, "end_token": end, "start_sentence": sent_of(start),
            "end_sentence": sent_of(end - 1) + 1, "text": " ".join(words[start:end])}


def _lines_to_sentences(text: str) -> list[list[str]]:
    return [line.split() for line in str(text).splitlines() if line.split()]


class _Report:
    def __init__(self):
        self.counts: dict[str, int] = {}
        self.unmatched_evidences = 0
        self.skipped: dict[str, int] = {}

    def as_dict(self) -> dict:
        return {"annotations": self.counts, "unmatched_evidences": self.unmatched_evidences, "skipped": self.skipped}


def _snippet_evidences(docid, sentences, snippets, report: _Report, raw: bool = False) -> list[list[dict]]:
    words = [w for s in sentences for w in s]
    groups = []
    for snip in snippets or []:
        span = find_span(words, tokenize(snip) if raw else str(snip).split())
        if span is None:
            report.unmatched_evidences += 1
            continue
        groups.append([_evidence(docid, sentences, span)])
    return groups


# A converter: (row, annotation_id, label name, report) -> (annotation dict, {docid: sentences}) or None (skip)
Converter = Callable[[dict, str, str, _Report], "tuple[dict, dict[str, list[list[str]]]] | None"]


def _movie_rationales(row, ann_id, label, report):
    sentences = _lines_to_sentences(row["review"])
    if not sentences:
        return None
    ev = _snippet_evidences(ann_id, sentences, row.get("evidences"), report)
    return ({"annotation_id": ann_id, "classification": label, "evidences": ev, "docids": [ann_id],
             "query": "", "query_type": None}, {ann_id: sentences})


def _eraser_multi_rc(row, ann_id, label, report):
    sentences = _lines_to_sentences(row["passage"])
    if not sentences:
        return None
    docid = "passage_" + hashlib.sha1(row["passage"].encode("utf-8")).hexdigest()[:16]  # shared by questions
    ev = _snippet_evidences(docid, sentences, row.get("evidences"), report)
    return ({"annotation_id": ann_id, "classification": label, "evidences": ev, "docids": [docid],
             "query": str(row["query_and_answer"]), "query_type": None}, {docid: sentences})


def _esnli(row, ann_id, label, report):
    premise, hypothesis = tokenize(row["premise"]), tokenize(row["hypothesis"])
    if not premise or not hypothesis:
        return None
    p, h = f"{ann_id}_premise", f"{ann_id}_hypothesis"
    return ({"annotation_id": ann_id, "classification": label, "evidences": [], "docids": [p, h],
             "query": "", "query_type": None}, {p: [premise], h: [hypothesis]})


def _cos_e(row, ann_id, label, report):
    choices = [str(c) for c in row["choices"]]
    if row["answer"] not in choices or len(choices) > 26:
        return None
    question = tokenize(row["question"])
    if not question:
        return None
    letter = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[choices.index(row["answer"])]
    expl = row.get("extractive_explanation")
    ev = _snippet_evidences(ann_id, [question], [expl] if expl else [], report, raw=True)
    return ({"annotation_id": ann_id, "classification": letter, "evidences": ev, "docids": [ann_id],
             "query": " [sep] ".join(choices), "query_type": None}, {ann_id: [question]})


CONVERTERS: dict[str, Converter] = {
    "movie_rationales": _movie_rationales, "eraser_multi_rc": _eraser_multi_rc, "esnli": _esnli, "cos_e": _cos_e,
}


def _label_names(ds) -> list[str] | None:
    feature = getattr(ds, "features", {}).get("label") if hasattr(ds, "features") else None
    return list(feature.names) if getattr(feature, "names", None) else None


def _arrange_splits(source: Mapping[str, Iterable[dict]]) -> dict[str, tuple[str, Iterable[dict], Callable[[int], bool]]]:
    """ERASER split -> (source split name, its rows, which row indices to keep). Without a test split,
    validation becomes test and every tenth train example (index % 10 == 9) val; without a validation
    split, that tenth is val."""
    by_name = {HF_SPLITS[k]: (k, v) for k, v in source.items() if k in HF_SPLITS}
    if "train" not in by_name:
        raise UnirexError(f"the Hugging Face dataset has no train split (splits: {', '.join(source) or 'none'})")
    held_out = lambda i: i % 10 == 9  # noqa: E731
    everything = lambda i: True  # noqa: E731
    if "val" in by_name and "test" in by_name:
        return {s: (*by_name[s], everything) for s in ("train", "val", "test")}
    if "val" not in by_name and "test" not in by_name:
        raise UnirexError("the Hugging Face dataset has neither a validation nor a test split")
    return {"train": (*by_name["train"], lambda i: not held_out(i)), "val": (*by_name["train"], held_out),
            "test": by_name.get("test", by_name.get("val")) + (everything,)}


def convert_to_eraser(source: Mapping[str, Iterable[dict]], hf_format: str, out_dir: Path,
                      label_names: list[str] | None = None, progress: bool = False) -> dict:
    """Write the splits of a Hugging Face dataset (a ``DatasetDict`` or any mapping split -> rows) to
    ``out_dir`` in ERASER layout (``<split>.jsonl`` + ``docs.jsonl``); return a report (counts per split,
    unmatched evidences, skipped rows).

    ``label`` values that are integers are mapped through ``label_names`` (by default the ``ClassLabel``
    names of the train split); a negative label (no gold label) skips the row.
    """
    if hf_format not in CONVERTERS:
        raise UnirexError(f"unknown Hugging Face format '{hf_format}': use one of {', '.join(CONVERTERS)}")
    convert = CONVERTERS[hf_format]
    arranged = _arrange_splits(source)
    if label_names is None:
        label_names = _label_names(arranged["train"][1])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = _Report()
    seen_docs: set[str] = set()
    with open(out_dir / "docs.jsonl", "w", encoding="utf-8") as docs_f:
        for split, (src_split, rows, keep) in arranged.items():
            n = 0
            with open(out_dir / f"{split}.jsonl", "w", encoding="utf-8") as f:
                for i, row in enumerate(tqdm(rows, desc=f"convert {split}", unit="ex", disable=not progress)):
                    if not keep(i):
                        continue
                    label = ""  # a form without a label field (cos_e) derives it in its converter
                    if "label" in row:
                        raw_label = row["label"]
                        if raw_label is None or (isinstance(raw_label, int) and raw_label < 0):
                            report.skipped["no label"] = report.skipped.get("no label", 0) + 1
                            continue
                        if isinstance(raw_label, int) and label_names is not None:
                            label = label_names[raw_label]
                        else:
                            label = str(raw_label)
                    ann_id = f"{src_split}_{i:06d}"
                    converted = convert(row, ann_id, label, report)
                    if converted is None:
                        report.skipped["unusable row"] = report.skipped.get("unusable row", 0) + 1
                        continue
                    ann, docs = converted
                    for docid, sentences in docs.items():
                        if docid not in seen_docs:
                            seen_docs.add(docid)
                            docs_f.write(json.dumps({"docid": docid, "document": "\n".join(" ".join(s) for s in sentences)}) + "\n")
                    f.write(json.dumps(ann) + "\n")
                    n += 1
            if n == 0:
                raise UnirexError(f"converting '{hf_format}': the {split} split has no usable example")
            report.counts[split] = n
    return report.as_dict()


# ---------------------------------------------------------------------------------------- the Hub
def unreachable_message(entry: CatalogEntry, hf_id: str, target: Path, reason: str) -> str:
    return (f"the Hugging Face Hub is unreachable ({reason}), so '{hf_id}' cannot be fetched for '{entry.name}'. "
            f"On a machine with network access run `python -m unirex download-dataset {entry.name}` (the ERASER "
            f"archive {entry.url}) or add `--source hf`, then copy the resulting folder to {target}; or unpack "
            f"{entry.archive_name} by hand so that {target} holds train.jsonl, val.jsonl, test.jsonl and docs/ "
            "(or docs.jsonl).")


def load_hf_splits(entry: CatalogEntry, hf_id: str, target: Path):
    """``datasets.load_dataset`` of the entry's dataset, with the Parquet export as fallback for script datasets."""
    try:
        # lazy: datasets is optional and heavy: needed only for a Hugging Face source
        import datasets
    except ImportError:
        raise UnirexError(f"--source hf needs the `datasets` package ({DATASETS_PIN}), which is not installed; "
                          f"or use the ERASER archive: python -m unirex download-dataset {entry.name}") from None
    config = entry.hf_config if hf_id == entry.hf_id else None
    try:
        try:
            return datasets.load_dataset(hf_id, config)
        except Exception as e:  # noqa: BLE001 - classified below
            if "script" not in str(e).lower() or _is_unreachable(e):
                raise
        last: Exception | None = None
        for cfg in ([config] if config else []) + [None]:  # the export may name the subset "default"
            try:
                return datasets.load_dataset(hf_id, cfg, revision=PARQUET_REVISION)
            except Exception as e:  # noqa: BLE001
                last = e
        raise last  # type: ignore[misc]
    except Exception as e:  # noqa: BLE001 - every failure becomes one message
        if hub_offline() or _is_unreachable(e):
            reason = "HF_HUB_OFFLINE=1 is set" if hub_offline() else f"{type(e).__name__}: {e}"
            raise UnirexError(unreachable_message(entry, hf_id, target, reason)) from None
        raise UnirexError(f"Hugging Face dataset '{hf_id}' could not be loaded for '{entry.name}': "
                          f"{type(e).__name__}: {str(e)[:300]}") from None


def fetch_hf_dataset(data_dir: Path, entry: CatalogEntry, *, hf_id: str | None = None, progress: bool = True,
                     force: bool = False) -> Path:
    """Load the Hugging Face copy of ``entry`` and write it to ``data_dir/entry.name`` in ERASER layout."""
    data_dir = Path(data_dir)
    target = dataset_path(data_dir, entry.name)
    hf_id = hf_id or entry.hf_id
    if not hf_id or not entry.hf_format:
        raise UnirexError(f"'{entry.name}' has no Hugging Face copy in the catalog: download the ERASER archive "
                          f"instead (python -m unirex download-dataset {entry.name}, from {entry.url})")
    with dataset_lock(data_dir, entry.name, progress):
        if target.exists() and not force:
            return target
        _clear_leftovers(data_dir, entry.name)
        dd = load_hf_splits(entry, hf_id, target)
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(f"{entry.name}-hf"), dir=data_dir))
        try:
            report = convert_to_eraser(dd, entry.hf_format, tmp, progress=progress)
            check_layout(tmp, f"converted '{hf_id}'")
            write_json_atomic(tmp / SOURCE_MARKER, {"source": "hf", "hf_id": hf_id, "hf_config": entry.hf_config,
                                                    "format": entry.hf_format, "report": report})
            install_tree(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
