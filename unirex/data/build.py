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
=================  ===========================================================================
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from unirex.arch import arch_slug, load_tokenizer, resolve_arch
from unirex.data.eraser import Example, read_annotations, read_split, split_file
from unirex.errors import UnirexError, where
from unirex.fsutil import atomic_write, write_json_atomic
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


def build_dir(data_dir: Path, dataset: str, arch: str | None, max_length: int) -> Path:
    """``<data_dir>/<dataset>/<arch-slug>/L<max_length>``; the dataset name is checked first
    (:func:`unirex.safepath.dataset_path`)."""
    return dataset_path(data_dir, dataset) / arch_slug(arch) / f"L{int(max_length)}"


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
                 num_train: int | None, num_train_seed: int) -> str:
    """Everything the built table depends on; equal fingerprints mean a cache hit."""
    h = hashlib.sha256()
    h.update(json.dumps([BUILD_VERSION, resolve_arch(arch), type(tokenizer).__name__, len(tokenizer),
                         max_length, num_train, num_train_seed]).encode())
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


def _document_words(ex: Example, budget: int, sep: str | None) -> tuple[list[str], list[int], int | None]:
    """The first words of each document of ``ex`` (at most ``budget`` per document), the map from their
    position to the word index in the concatenated documents (-1 for the separator), and, when a
    document was cut here, how many of the words come up to the end of the first cut one."""
    words, seg_map, offset, cut = [], [], 0, None
    for d_i, doc in enumerate(ex.documents):
        if d_i > 0 and sep:  # documents of one annotation (e-SNLI premise / hypothesis) split by a separator
            words.append(sep)
            seg_map.append(-1)
        dw = doc.prefix(budget)
        words.extend(dw)
        seg_map.extend(range(offset, offset + len(dw)))
        offset += doc.n_words
        if cut is None and len(dw) < doc.n_words:
            cut = len(words)
    return words, seg_map, cut


def _input_words(examples: list[Example], tokenizer, max_length: int, sep: str | None):
    """Per example, the document words to tokenise: only as many as can reach the model's input.

    A document is cut once the words kept up to its end make at least ``max_length`` + (the query's
    subwords) subwords. Every truncation the build uses then gives the same input as the whole documents
    would: ``only_first`` keeps a prefix of the first segment, and ``longest_first`` (used when the query
    alone does not fit) trims the first segment down to the query's length before it trims the query, so
    it never looks further than that. The budget starts at ``max_length`` + (query words) words per
    document and grows while words that make no subword (a lone tab, say) leave it short. The cost is
    bounded by the input, not by the document's length.
    """
    q_len = [len(ids) for ids in tokenizer([ex.annotation.query.split() or [""] for ex in examples],
                                           is_split_into_words=True, add_special_tokens=False, verbose=False)["input_ids"]]
    need = [max_length + q for q in q_len]
    budgets = [max_length + len(ex.annotation.query.split()) for ex in examples]
    out: list[tuple[list[str], list[int]] | None] = [None] * len(examples)
    todo = list(range(len(examples)))
    while todo:
        cand = {i: _document_words(examples[i], budgets[i], sep) for i in todo}
        cut = [i for i in todo if cand[i][2] is not None]
        counts = {}
        if cut:  # subwords of the words up to the end of the first cut document
            enc = tokenizer([cand[i][0][: cand[i][2]] for i in cut], is_split_into_words=True, add_special_tokens=False,
                            verbose=False)
            counts = {i: len(ids) for i, ids in zip(cut, enc["input_ids"])}
        again = []
        for i in todo:
            if cand[i][2] is not None and counts[i] < need[i]:
                budgets[i] *= 4
                again.append(i)
            else:
                out[i] = cand[i][:2]
        todo = again
    return out


def _encode(examples: list[Example], tokenizer, max_length: int) -> list[dict]:
    """Tokenise documents (+ query as the second segment) and align subwords to document words."""
    sep = tokenizer.sep_token or tokenizer.eos_token
    rows = []
    for start in range(0, len(examples), 512):
        chunk = examples[start : start + 512]
        inputs = _input_words(chunk, tokenizer, max_length, sep)
        firsts = [w for w, _ in inputs]
        seg_maps = [m for _, m in inputs]
        queries = [ex.annotation.query.split() for ex in chunk]
        has_query = [bool(q) for q in queries]
        enc_by_index = {}
        for flag in (False, True):
            idx = [i for i, h in enumerate(has_query) if h == flag]
            if not idx:
                continue
            kwargs = dict(is_split_into_words=True, max_length=max_length, truncation="only_first" if flag else True)
            pair = [queries[i] for i in idx] if flag else None
            try:
                enc = tokenizer([firsts[i] for i in idx], pair, **kwargs)
            except Exception:  # the query alone exceeds max_length: cut both segments
                kwargs["truncation"] = "longest_first"
                enc = tokenizer([firsts[i] for i in idx], pair, **kwargs)
            for j, i in enumerate(idx):
                enc_by_index[i] = (enc, j)
        for i, ex in enumerate(chunk):
            enc, j = enc_by_index[i]
            ids = list(enc["input_ids"][j])
            seq_ids, wids = enc.sequence_ids(j), enc.word_ids(j)
            seg_map = seg_maps[i]
            word_ids = [seg_map[w] if (s == 0 and w is not None) else -1 for s, w in zip(seq_ids, wids)]
            gold_words = [m for mask in ex.gold_word_masks for m in mask]
            d_pos = {d.docid: p for p, d in enumerate(ex.documents)}
            n_words = len(gold_words)
            present = [w for w in word_ids if w >= 0]
            tt = enc.get("token_type_ids")
            rows.append({
                "annotation_id": ex.annotation.annotation_id,
                "docids": [d.docid for d in ex.documents],
                "doc_word_counts": [d.n_words for d in ex.documents],
                "query": ex.annotation.query,
                "label_name": ex.annotation.classification,
                "input_ids": ids,
                "attention_mask": [1] * len(ids),
                "token_type_ids": list(tt[j]) if tt is not None else [0] * len(ids),
                "word_ids": word_ids,
                "explainable": [int(w >= 0) for w in word_ids],
                "rationale": [gold_words[w] if w >= 0 else 0 for w in word_ids],
                "rationale_words": gold_words,
                "has_rationale": any(gold_words),
                "evidence_spans": [[d_pos[e.docid], e.start_token, e.end_token] for e in ex.annotation.all_evidences],
                "truncated": (max(present) + 1 if present else 0) < n_words,
                "_line": ex.annotation.line,
            })
    return rows


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
                force: bool = False) -> BuiltSplit:
    """Build (or find in the cache) one split of ``<data_dir>/<dataset>`` for ``arch``."""
    dataset_dir = dataset_path(data_dir, dataset)
    if not dataset_dir.is_dir():
        raise UnirexError(f"dataset folder {dataset_dir} does not exist (ERASER layout expected)")
    tokenizer = load_tokenizer(arch)
    max_length = int(max_length or min(DEFAULT_MAX_LENGTH, tokenizer.model_max_length))
    if max_length < 8:
        raise UnirexError(f"--max_length {max_length} is too small (at least 8)")
    tag = split_tag(split, num_train, num_train_seed)
    out_dir = build_dir(data_dir, dataset, arch, max_length)
    parquet, summary_path = out_dir / f"{tag}.parquet", out_dir / f"{tag}.json"
    fingerprint = _fingerprint(dataset_dir, split, arch, tokenizer, max_length, num_train, num_train_seed)
    if not force:
        summary = _cached(parquet, summary_path, fingerprint)
        if summary is not None:
            return BuiltSplit(parquet, summary, cache_hit=True)

    # Read and validate everything before anything is written.
    src = split_file(dataset_dir, split)
    labels = sorted({a.classification for a in read_annotations(split_file(dataset_dir, "train"))})
    examples = read_split(dataset_dir, split)
    if num_train is not None:
        examples = subsample(examples, num_train, num_train_seed)
    label_id = {lab: i for i, lab in enumerate(labels)}
    for ex in examples:
        if ex.annotation.classification not in label_id:
            raise UnirexError(
                f"{where(src, ex.annotation.line)}: unknown label '{ex.annotation.classification}' "
                f"(the train split has {labels})"
            )
    rows = _encode(examples, tokenizer, max_length)
    for r in rows:
        r["label"] = label_id[r.pop("label_name")]
        r["label_name"] = labels[r["label"]]
        r.pop("_line")
    # column by column with the types given: inferring them from Python lists costs ~100x more on a long document
    df = pl.DataFrame([pl.Series(name, [r[name] for r in rows], dtype=dtype) for name, dtype in TABLE_SCHEMA.items()])

    summary = _summarise(df, labels)
    summary.update({
        "dataset": dataset, "split": CANONICAL_SPLIT.get(split, split), "tag": tag, "source": str(src),
        "arch": arch or "default", "max_length": max_length, "num_train": num_train,
        "num_train_seed": num_train_seed if num_train is not None else None,
        "pad_token_id": tokenizer.pad_token_id, "fingerprint": fingerprint, "build_version": BUILD_VERSION,
    })
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(parquet, lambda tmp: df.write_parquet(tmp, metadata={FINGERPRINT_KEY: fingerprint}))
    write_json_atomic(out_dir / "labels.json", labels)
    write_json_atomic(summary_path, summary)
    return BuiltSplit(parquet, summary, cache_hit=False)


def load_built(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path)
