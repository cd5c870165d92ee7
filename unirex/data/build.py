"""Tokenise an ERASER split for one arch and cache it as Parquet (``build-dataset``).

Layout: ``<data_dir>/<dataset>/<arch-slug>/L<max_length>/`` holds ``labels.json`` and per split
``<tag>.parquet`` + ``<tag>.json`` (summary and fingerprint), where ``<tag>`` is ``train``, ``dev``,
``test`` or ``train_n<N>_s<S>`` for a subsample.

One row per annotation:

=================  ===========================================================================
annotation_id      ERASER annotation id
docids             the documents read, in input order (list[str])
doc_word_counts    words per document, split as ERASER splits them (list[int])
query              the query text ("" for single-document tasks)
label / label_name label id into ``labels.json`` / its name
input_ids          subword ids with the arch's special tokens, unpadded (list[int])
attention_mask     1 per subword (list[int]); padding is added per batch
token_type_ids     the arch's segment ids when it has them, else zeros
word_ids           per subword: index of its word in the concatenated documents, -1 elsewhere
explainable        per subword: 1 for document tokens (never special tokens or the query)
rationale          per subword: gold rationale (0/1)
rationale_words    per document word (concatenated over documents): gold rationale (0/1)
has_rationale      whether the annotation has any gold evidence
evidence_spans     the gold evidences as ``[doc_position, start_token, end_token]`` (word offsets within
                   that document, end exclusive): ERASER's IOU matches these spans
truncated          whether document words were cut to fit ``max_length``
choice             multiple choice only: which answer choice the row is (0-based)
=================  ===========================================================================

**Multiple choice** (CoS-E, :func:`unirex.data.catalog.is_multiple_choice`): as UNIREX's reference
builds it, each example becomes ``C`` consecutive rows, one per answer choice, each reading the question
(the document, with its gold rationale) and that choice as the second segment; the labels are the
letters ``A, B, ...`` (one per choice position) and ``label`` is the answer's position, on every row.
The annotation's query holds the choices joined by ``' [sep] '`` and its classification is the answer's
letter or its text. The reference also prefixes ``Q:`` / ``A:`` markers; the pair encoding here puts the
question and the choice in the arch's own two segments instead. The summary counts examples
(``count``) and gives ``num_choices`` and ``rows``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from unirex.arch import arch_slug, load_tokenizer, resolve_arch
from unirex.data.catalog import CHOICE_SEP, is_multiple_choice, split_choices
from unirex.data.encode import encode_examples
from unirex.data.eraser import read_annotations, read_split, split_file
from unirex.errors import UnirexError, where
from unirex.fsutil import atomic_write, write_json_atomic
from unirex.protocol import InputLayout
from unirex.safepath import dataset_path

BUILD_VERSION = 3  # 3: ERASER's word split (split(' ')), fingerprint in the Parquet metadata
DEFAULT_MAX_LENGTH = 512
CANONICAL_SPLIT = {"train": "train", "dev": "dev", "val": "dev", "validation": "dev", "test": "test"}


@dataclass(frozen=True)
class BuiltSplit:
    path: Path  # the Parquet file
    summary: dict
    cache_hit: bool

    @property
    def labels(self) -> list[str]:
        return self.summary["labels"]


def split_tag(split: str, num_train: int | None = None, num_train_seed: int = 0) -> str:
    split = CANONICAL_SPLIT.get(split, split)
    if num_train is not None:
        if split != "train":
            raise UnirexError("--num_train subsamples the train split only")
        return f"train_n{num_train}_s{num_train_seed}"
    return split


def build_dir(data_dir: Path, dataset: str, arch: str | None, max_length: int,
              layout: InputLayout = InputLayout()) -> Path:
    """``<data_dir>/<dataset>/<arch-slug>/L<max_length>`` (plus the layout's tag, :class:`InputLayout`);
    the dataset name is checked first (:func:`unirex.safepath.dataset_path`)."""
    return dataset_path(data_dir, dataset) / arch_slug(arch) / f"L{int(max_length)}{layout.tag}"


TABLE_SCHEMA = {
    "annotation_id": pl.String, "docids": pl.List(pl.String), "doc_word_counts": pl.List(pl.Int32),
    "query": pl.String, "input_ids": pl.List(pl.Int32), "attention_mask": pl.List(pl.Int8),
    "token_type_ids": pl.List(pl.Int8), "word_ids": pl.List(pl.Int32), "explainable": pl.List(pl.Int8),
    "rationale": pl.List(pl.Int8), "rationale_words": pl.List(pl.Int8), "has_rationale": pl.Boolean,
    "evidence_spans": pl.List(pl.List(pl.Int32)), "truncated": pl.Boolean, "label": pl.Int32, "label_name": pl.String,
}
FINGERPRINT_KEY = "unirex_fingerprint"  # also stored in the Parquet file's metadata


def _cached(parquet: Path, summary_path: Path, fingerprint: str) -> dict | None:
    """The summary of a cached split when it is current: the summary and the Parquet file both carry
    ``fingerprint`` (written one after the other, so a build killed between the two is seen as stale)."""
    if not (parquet.is_file() and summary_path.is_file()):
        return None
    try:
        summary = json.loads(summary_path.read_text())
        if summary.get("fingerprint") != fingerprint:
            return None
        if pl.read_parquet_metadata(parquet).get(FINGERPRINT_KEY) != fingerprint:
            return None
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return None
    return summary


def _file_signature(h, path: Path) -> None:
    st = path.stat()
    h.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns};".encode())


def _fingerprint(dataset_dir: Path, split: str, arch: str | None, tokenizer, max_length: int,
                 num_train: int | None, num_train_seed: int, multiple_choice: bool = False,
                 layout: InputLayout = InputLayout()) -> str:
    """Everything the built table depends on; equal fingerprints mean a cache hit."""
    h = hashlib.sha256()
    h.update(json.dumps([BUILD_VERSION, resolve_arch(arch), type(tokenizer).__name__, len(tokenizer),
                         max_length, num_train, num_train_seed] + (["multiple_choice"] if multiple_choice else [])
                        + ([layout.tag] if layout.tag else [])).encode())
    h.update(split_file(dataset_dir, split).read_bytes())
    h.update(split_file(dataset_dir, "train").read_bytes())  # the label vocabulary comes from train
    if (dataset_dir / "docs.jsonl").is_file():
        _file_signature(h, dataset_dir / "docs.jsonl")
    else:
        with os.scandir(dataset_dir / "docs") as it:
            for entry in sorted(it, key=lambda e: e.name):
                _file_signature(h, Path(entry.path))
    return h.hexdigest()


def subsample(examples: list, num_train: int, seed: int) -> list:
    """``num_train`` examples drawn with ``seed``, in their original order (same seed, same ids)."""
    if num_train <= 0 or num_train > len(examples):
        raise UnirexError(f"--num_train {num_train} is out of range: the train split has {len(examples)} examples")
    keep = set(random.Random(seed).sample(range(len(examples)), num_train))
    return [ex for i, ex in enumerate(examples) if i in keep]


def choice_examples(examples: list, src: Path) -> tuple[list, list[int], list[str]]:
    """Multiple choice: each example as one example per answer choice (the query replaced by that
    choice), the answer's position per example, and the labels (``A, B, ...``, one per choice).

    Raises:
        UnirexError: naming the line of an example whose choice count differs from the others' or whose
        answer is neither a choice's letter nor its text.
    """
    out, answers, n_choices = [], [], None
    for ex in examples:
        ann = ex.annotation
        choices = split_choices(ann.query)
        if len(choices) < 2 or not all(choices):
            raise UnirexError(f"{where(src, ann.line)}: a multiple-choice query lists the choices joined by "
                              f"' {CHOICE_SEP} ', got {ann.query!r}")
        if n_choices is None:
            n_choices = len(choices)
        elif len(choices) != n_choices:
            raise UnirexError(f"{where(src, ann.line)}: {len(choices)} choices, the split's first example has {n_choices}")
        letters = [chr(ord("A") + j) for j in range(n_choices)]
        label = ann.classification.strip()
        if label in letters:
            answers.append(letters.index(label))
        elif " ".join(label.split()) in choices:
            answers.append(choices.index(" ".join(label.split())))
        else:
            raise UnirexError(f"{where(src, ann.line)}: the answer '{ann.classification}' is neither a choice letter "
                              f"({', '.join(letters)}) nor one of the choices")
        for c in choices:
            out.append(dataclasses.replace(ex, annotation=dataclasses.replace(ann, query=c)))
    return out, answers, [chr(ord("A") + j) for j in range(n_choices or 0)]


def _summarise(df: pl.DataFrame, labels: list[str]) -> dict:
    n = df.height
    lens = df["input_ids"].list.len()
    with_rat = df.filter(pl.col("has_rationale"))
    cov_sub = (with_rat["rationale"].list.sum() / with_rat["explainable"].list.sum()).mean() if with_rat.height else None
    cov_word = (with_rat["rationale_words"].list.sum() / with_rat["rationale_words"].list.len()).mean() if with_rat.height else None
    dist = Counter(df["label_name"].to_list())
    return {
        "count": n,
        "labels": labels,
        "label_distribution": {lab: dist.get(lab, 0) for lab in labels},
        "truncated": int(df["truncated"].sum()),
        "mean_subwords": float(lens.mean()) if n else 0.0,
        "max_subwords": int(lens.max()) if n else 0,
        "mean_words": float(df["rationale_words"].list.len().mean()) if n else 0.0,
        "with_rationale": with_rat.height,
        "rationale_coverage_subword": cov_sub,
        "rationale_coverage_word": cov_word,
    }


def build_split(data_dir: Path, dataset: str, split: str, arch: str | None = None,
                max_length: int | None = None, num_train: int | None = None, num_train_seed: int = 0,
                force: bool = False, layout: InputLayout = InputLayout()) -> BuiltSplit:
    """Build (or find in the cache) one split of ``<data_dir>/<dataset>`` for ``arch`` (``layout``: ERASER's
    input layout, or the reference protocol's, :func:`unirex.protocol.input_layout`)."""
    dataset_dir = dataset_path(data_dir, dataset)
    if not dataset_dir.is_dir():
        raise UnirexError(f"dataset folder {dataset_dir} does not exist (ERASER layout expected)")
    tokenizer = load_tokenizer(arch)
    max_length = int(max_length or min(DEFAULT_MAX_LENGTH, tokenizer.model_max_length))
    if max_length < 8:
        raise UnirexError(f"--max_length {max_length} is too small (at least 8)")
    tag = split_tag(split, num_train, num_train_seed)
    out_dir = build_dir(data_dir, dataset, arch, max_length, layout)
    parquet, summary_path = out_dir / f"{tag}.parquet", out_dir / f"{tag}.json"
    mc = is_multiple_choice(dataset)
    fingerprint = _fingerprint(dataset_dir, split, arch, tokenizer, max_length, num_train, num_train_seed, mc, layout)
    enc_kw = dict(drop_query=layout.drop_query, keep_rationale_tail=layout.keep_rationale_tail)
    if not force:
        summary = _cached(parquet, summary_path, fingerprint)
        if summary is not None:
            return BuiltSplit(parquet, summary, cache_hit=True)

    # Read and validate everything before anything is written.
    src = split_file(dataset_dir, split)
    examples = read_split(dataset_dir, split)
    if num_train is not None:
        examples = subsample(examples, num_train, num_train_seed)
    schema = dict(TABLE_SCHEMA)
    if mc:  # one row per (example, choice); labels are the choice positions
        examples, answers, labels = choice_examples(examples, src)
        n_choices = len(labels)
        rows = encode_examples(examples, tokenizer, max_length, **enc_kw)
        for i, r in enumerate(rows):
            r.pop("label_name")
            r["label"] = answers[i // n_choices]
            r["label_name"] = labels[r["label"]]
            r["choice"] = i % n_choices
            r.pop("_line")
        schema["choice"] = pl.Int8
    else:
        n_choices = None
        labels = sorted({a.classification for a in read_annotations(split_file(dataset_dir, "train"))})
        label_id = {lab: i for i, lab in enumerate(labels)}
        for ex in examples:
            if ex.annotation.classification not in label_id:
                raise UnirexError(
                    f"{where(src, ex.annotation.line)}: unknown label '{ex.annotation.classification}' "
                    f"(the train split has {labels})"
                )
        rows = encode_examples(examples, tokenizer, max_length, **enc_kw)
        for r in rows:
            r["label"] = label_id[r.pop("label_name")]
            r["label_name"] = labels[r["label"]]
            r.pop("_line")
    # column by column with the types given: inferring them from Python lists costs ~100x more on a long document
    df = pl.DataFrame([pl.Series(name, [r[name] for r in rows], dtype=dtype) for name, dtype in schema.items()])

    summary = _summarise(df.filter(pl.col("choice") == 0) if mc else df, labels)
    summary.update({
        "num_choices": n_choices, "rows": df.height,
        "dataset": dataset, "split": CANONICAL_SPLIT.get(split, split), "tag": tag, "source": str(src),
        "arch": arch or "default", "max_length": max_length, "num_train": num_train,
        "num_train_seed": num_train_seed if num_train is not None else None,
        "pad_token_id": tokenizer.pad_token_id, "fingerprint": fingerprint, "build_version": BUILD_VERSION,
        "layout": layout.tag or "eraser",
    })
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(parquet, lambda tmp: df.write_parquet(tmp, metadata={FINGERPRINT_KEY: fingerprint}))
    write_json_atomic(out_dir / "labels.json", labels)
    write_json_atomic(summary_path, summary)
    return BuiltSplit(parquet, summary, cache_hit=False)


def load_built(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path)
