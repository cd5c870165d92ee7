"""Reader for datasets in the ERASER release layout (DeYoung et al., 2020).

A dataset folder holds ``train.jsonl``, ``val.jsonl`` (``dev.jsonl`` is accepted: UNIREX calls the split
``dev``), ``test.jsonl`` and the documents, either as ``docs/<docid>`` files (one sentence per line, tokens
separated by spaces) or as one ``docs.jsonl`` with ``{"docid": ..., "document": ...}`` lines.

Records are validated against a schema (:class:`AnnotationRecord`, :class:`EvidenceRecord`,
:class:`DocumentRecord`, pydantic models in strict mode): a label is a non-empty string (``0`` and ``"0"``
are not the same label, and ``0`` is refused), token and sentence offsets are integers (never floats or
booleans), ids are non-empty strings. Fields ERASER releases leave null (``query``, ``query_type``,
``docids``, evidence ``text`` and sentence offsets) may be null or absent; unknown fields are ignored.

Words are split exactly as ERASER's own loader (``rationale_benchmark/utils.py``) splits them, so that
word counts, evidence offsets and the exported results agree with ERASER's scorer and verifier:

* ``docs/<docid>`` files: lines (``\\n``, ``\\r\\n`` or ``\\r``), each stripped of surrounding whitespace;
  blank lines are dropped; a line is split on the space character only (``split(' ')``), empty pieces
  dropped. A tab or a non-breaking space inside a line is part of a word, not a separator.
* ``docs.jsonl``: the document is split on ``\\n``, each line stripped and split on ``' '`` with nothing
  dropped (a blank line or a double space yields an empty word, as in ERASER).

Paths come from data, so each is resolved and must stay inside the dataset folder (``docs/<docid>`` inside
``docs/``, symbolic links included): a docid such as ``../../x`` or ``/etc/hostname`` is refused.

Size caps (documented in the README): one document (a ``docs/`` file or a ``docs.jsonl`` line) may be at
most :data:`MAX_DOCUMENT_BYTES`, one annotation line at most :data:`MAX_LINE_BYTES`; both can be raised
with the environment variables ``UNIREX_MAX_DOCUMENT_MB`` / ``UNIREX_MAX_LINE_MB``. A document is held as its
text; its words are materialised only when asked for (:meth:`Document.prefix` takes the first ones
without splitting the rest), so a long document costs about its size in memory.

Every problem is raised as a :class:`~unirex.errors.UnirexError` naming the file, the line and the
problem; nothing is silently skipped.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from unirex.errors import UnirexError, where
from unirex.safepath import resolve_inside

SPLIT_ALIASES = {"train": "train", "dev": "val", "val": "val", "validation": "val", "test": "test"}
SPLITS = ("train", "dev", "test")  # the names UNIREX uses; "dev" is read from val.jsonl or dev.jsonl
MiB = 1 << 20
MAX_DOCUMENT_BYTES = 64 * MiB  # one document: a docs/ file or a docs.jsonl line
MAX_LINE_BYTES = 16 * MiB  # one line of train/val/test.jsonl
LAZY_WORDS_CHARS = 1 << 20  # documents longer than this are never split into a full word list by the build


def max_document_bytes() -> int:
    v = os.environ.get("UNIREX_MAX_DOCUMENT_MB")
    return int(float(v) * MiB) if v else MAX_DOCUMENT_BYTES


def max_line_bytes() -> int:
    v = os.environ.get("UNIREX_MAX_LINE_MB")
    return int(float(v) * MiB) if v else MAX_LINE_BYTES


# --- schema ----------------------------------------------------------------------------------------


_SURROGATE = re.compile("[\ud800-\udfff]")
#: the longest file name of the usual file systems (ext4, APFS, NTFS: 255 bytes); a longer docid names no file
NAME_MAX_BYTES = 255


def _no_nul(v: str) -> str:
    if "\x00" in v:
        raise ValueError("contains a NUL character")
    m = _SURROGATE.search(v)
    if m:  # JSON's "\ud800" escape without its pair: not text, and no file name or Parquet string can hold it
        raise ValueError(f"contains a lone surrogate (\\u{ord(m.group()):04x}), which is not text")
    return v


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("is blank")
    return v


def _group(v: Any) -> Any:
    return v if isinstance(v, list) else [v]  # tolerate a flat list of evidence objects


Id = Annotated[str, AfterValidator(_not_blank), AfterValidator(_no_nul)]
Text = Annotated[str, AfterValidator(_no_nul)]


class _Record(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class EvidenceRecord(_Record):
    """One evidence span of an ERASER annotation (token offsets index the document's words, end exclusive)."""

    docid: Id
    start_token: int
    end_token: int
    start_sentence: int | None = None
    end_sentence: int | None = None
    text: Text | None = None


class AnnotationRecord(_Record):
    """One line of ``train.jsonl`` / ``val.jsonl`` / ``test.jsonl``."""

    annotation_id: Id
    classification: Id
    evidences: list[Annotated[list[EvidenceRecord], BeforeValidator(_group)]] | None = None
    docids: list[Id] | None = None
    query: Text | None = None
    query_type: Text | None = None


class DocumentRecord(_Record):
    """One line of ``docs.jsonl``."""

    docid: Id
    document: Text


def _describe(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean {json.dumps(v)}"
    if isinstance(v, int):
        return f"integer {v}"
    if isinstance(v, float):
        return f"number {v!r}"
    if isinstance(v, str):
        return f"string {v[:40]!r}" + ("..." if len(v) > 40 else "")
    if isinstance(v, list):
        return f"a list of {len(v)}"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _field_name(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out


def schema_message(err: ValidationError) -> str:
    """The first problem of a validation error as one phrase: ``field 'x' should be ..., got ...``."""
    e = err.errors(include_url=False)[0]
    kind, loc, value = e["type"], tuple(e["loc"]), e.get("input")
    f = _field_name(loc)
    if kind == "missing":
        return f"missing field '{f}'"
    if not loc and kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a JSON object, got {_describe(value)}"
    if value is None and kind.endswith("_type"):
        return f"field '{f}' is null"
    if kind == "string_type":
        hint = " (labels are strings in ERASER: write \"0\", not 0)" if f == "classification" else ""
        return f"field '{f}' should be a string, got {_describe(value)}{hint}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"field '{f}' should be an integer, got {_describe(value)}"
    if kind == "list_type":
        return f"field '{f}' should be a list, got {_describe(value)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"field '{f}' should be an object, got {_describe(value)}"
    if kind == "value_error":
        return f"field '{f}' {str(e.get('ctx', {}).get('error', e['msg']))}"
    return f"field '{f}': {e['msg']} (got {_describe(value)})"


def validate_record(model: type[BaseModel], obj: Any, path: Path, line: int):
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        raise UnirexError(f"{where(path, line)}: {schema_message(e)}") from None


# --- records the rest of the library uses ----------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    docid: str
    start_token: int  # inclusive, index into the document's words
    end_token: int  # exclusive
    start_sentence: int = -1
    end_sentence: int = -1
    text: str = ""


@dataclass(frozen=True)
class Annotation:
    annotation_id: str
    classification: str
    evidences: tuple[tuple[Evidence, ...], ...]
    docids: tuple[str, ...]
    query: str = ""
    query_type: str | None = None
    line: int = 0  # 1-based line in the split file, for messages

    @property
    def all_evidences(self) -> list[Evidence]:
        return [e for group in self.evidences for e in group]


# --- documents -------------------------------------------------------------------------------------

_WORD = re.compile(r"[^ ]+")
_SPACES = re.compile(r" {2,}")


def _line_count(line: str, keep_empty: bool) -> int:
    if keep_empty:
        return line.count(" ") + 1
    if not line:
        return 0
    if "  " in line:
        line = _SPACES.sub(" ", line)
    return line.count(" ") + 1  # a stripped, non-blank line: pieces between single spaces


def _take(line: str, skip: int, need: int, keep_empty: bool) -> list[str]:
    """Words ``skip`` .. ``skip + need`` of one line, splitting only as much of it as that takes."""
    if skip:
        if keep_empty:
            if skip >= line.count(" ") + 1:
                return []
            m = next(islice(re.finditer(" ", line), skip - 1, None))
            line = line[m.end():]
        else:
            m = next(islice(_WORD.finditer(line), skip, None), None)
            if m is None:
                return []
            line = line[m.start():]
    out: list[str] = []
    rest: str | None = line
    while need > 0 and rest is not None:
        parts = rest.split(" ", need)
        rest = parts.pop() if len(parts) > need else None
        words = parts if keep_empty else [p for p in parts if p]
        out += words
        need -= len(words)
    return out


class Document:
    """A document's words, held as its stripped lines (sentences); see the module note for the rules.

    ``n_words`` and ``sentence_lengths`` are computed without splitting; ``words`` and ``sentences``
    split the whole document (and keep the result); :meth:`prefix` and :meth:`span` split only what
    they return.
    """

    __slots__ = ("docid", "_lines", "_keep_empty", "_counts", "_sentences", "_chars")

    def __init__(self, docid: str, lines: list[str], keep_empty: bool = False):
        self.docid = docid
        self._lines = lines
        self._keep_empty = keep_empty
        self._counts = [_line_count(s, keep_empty) for s in lines]
        self._sentences: tuple[tuple[str, ...], ...] | None = None
        self._chars = sum(len(s) for s in lines)

    @classmethod
    def from_file_text(cls, docid: str, text: str) -> "Document":
        """ERASER's ``docs/<docid>`` rule: universal newlines, strip, drop blank lines, split on ' '."""
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        return cls(docid, [s for s in (raw.strip() for raw in text.split("\n")) if s], keep_empty=False)

    @classmethod
    def from_jsonl_text(cls, docid: str, text: str) -> "Document":
        """ERASER's ``docs.jsonl`` rule: split on '\\n', strip each line, split on ' ', keep empty words."""
        return cls(docid, [raw.strip() for raw in text.split("\n")], keep_empty=True)

    @property
    def n_words(self) -> int:
        return sum(self._counts)

    @property
    def sentence_lengths(self) -> list[int]:
        return list(self._counts)

    @property
    def is_blank(self) -> bool:
        return not any(s for s in self._lines)

    @property
    def sentences(self) -> tuple[tuple[str, ...], ...]:
        if self._sentences is None:
            split = (s.split(" ") for s in self._lines)
            self._sentences = tuple(tuple(p) if self._keep_empty else tuple(w for w in p if w) for p in split)
        return self._sentences

    @property
    def words(self) -> list[str]:
        return [w for s in self.sentences for w in s]

    def span(self, start: int, end: int) -> list[str]:
        """Words ``start`` .. ``end`` (exclusive)."""
        start, end = max(start, 0), min(end, self.n_words)
        if end <= start:
            return []
        if self._sentences is not None or self._chars <= LAZY_WORDS_CHARS:
            return self.words[start:end]
        out: list[str] = []
        offset = 0
        for line, n in zip(self._lines, self._counts):
            if offset + n > start and len(out) < end - start:
                skip = max(start - offset, 0)
                out += _take(line, skip, min(n - skip, end - start - len(out)), self._keep_empty)
            offset += n
            if offset >= end:
                break
        return out

    def prefix(self, n: int) -> list[str]:
        """The first ``n`` words (all of them when the document is shorter)."""
        return self.span(0, n)

    def __repr__(self) -> str:
        return f"Document({self.docid!r}, {self.n_words} words in {len(self._lines)} sentences)"


@dataclass
class Example:
    """One annotation with its documents resolved and its gold rationale as word masks."""

    annotation: Annotation
    documents: list[Document]
    gold_word_masks: list[list[int]] = field(default_factory=list)  # one 0/1 list per document

    @property
    def has_rationale(self) -> bool:
        return any(any(m) for m in self.gold_word_masks)


# --- files -----------------------------------------------------------------------------------------


def split_file(dataset_dir: Path, split: str) -> Path:
    """Find the annotation file of a split (``dev`` -> ``val.jsonl`` or ``dev.jsonl``)."""
    dataset_dir = Path(dataset_dir)
    canonical = SPLIT_ALIASES.get(split)
    if canonical is None:
        raise UnirexError(f"unknown split '{split}': use one of train, dev (or val), test")
    names = ["val.jsonl", "dev.jsonl"] if canonical == "val" else [f"{canonical}.jsonl"]
    for name in names:
        if (dataset_dir / name).is_file():
            resolve_inside(dataset_dir, name, f"split file {name}", inside=f"the dataset folder {dataset_dir}")
            return dataset_dir / name
    raise UnirexError(f"{dataset_dir}: no {' or '.join(names)} for split '{split}'")


def _decode(data: bytes, path: Path, base_offset: int = 0, base_line: int = 1) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = base_line + data.count(b"\n", 0, e.start)
        raise UnirexError(f"{where(path, line)}: not UTF-8 (byte 0x{data[e.start]:02x} at offset "
                          f"{base_offset + e.start})") from None


def iter_lines(path: Path, limit: int | None = None, env: str = "UNIREX_MAX_LINE_MB"):
    """Yield ``(line_number, text, byte_offset)`` of the non-blank lines of a JSON-lines file: lines are
    split on ``\n`` only; non-UTF-8 bytes and lines over ``limit`` bytes are errors."""
    path = Path(path)
    limit = limit or max_line_bytes()
    with open(path, "rb") as f:
        i, offset = 0, 0
        while True:
            raw = f.readline(limit + 1)
            if not raw:
                return
            i += 1
            start = offset
            offset += len(raw)
            if len(raw) > limit and not raw.endswith(b"\n"):
                raise UnirexError(f"{where(path, i)}: line longer than {limit / MiB:.0f} MiB (raise the limit with {env})")
            if raw.strip():
                yield i, _decode(raw, path, start, i), start


def parse_record(model: type[BaseModel], text: str, path: Path, line: int):
    """Parse one JSON line into ``model``; malformed JSON or a schema violation is one message naming
    the file, the line and the field."""
    try:
        return model.model_validate_json(text)
    except ValidationError as e:
        if e.errors(include_url=False)[0]["type"] != "json_invalid":
            raise UnirexError(f"{where(path, line)}: {schema_message(e)}") from None
    try:  # for Python's message (and what its parser accepts beyond strict JSON, such as NaN)
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise UnirexError(f"{where(path, line)}: malformed JSON ({e.msg} at column {e.colno})") from None
    except ValueError as e:  # Python's cap on integer digits (a 5,001-digit offset)
        raise UnirexError(f"{where(path, line)}: a number has more digits than can be read "
                          f"({str(e).split(';')[0][:120]})") from None
    except RecursionError:
        raise UnirexError(f"{where(path, line)}: malformed JSON (nested too deeply)") from None
    return validate_record(model, obj, path, line)


def _to_annotation(rec: AnnotationRecord, line: int) -> Annotation:
    groups = tuple(
        tuple(Evidence(docid=e.docid, start_token=e.start_token, end_token=e.end_token,
                       start_sentence=-1 if e.start_sentence is None else e.start_sentence,
                       end_sentence=-1 if e.end_sentence is None else e.end_sentence, text=e.text or "")
              for e in g)
        for g in (rec.evidences or []))
    return Annotation(annotation_id=rec.annotation_id, classification=rec.classification, evidences=groups,
                      docids=tuple(rec.docids or ()), query=rec.query or "", query_type=rec.query_type, line=line)


def read_annotations(path: Path) -> list[Annotation]:
    """Parse and validate an ERASER annotation file (``train.jsonl`` etc.)."""
    path = Path(path)
    out: list[Annotation] = []
    seen: dict[str, int] = {}
    for line, text, _ in iter_lines(path):
        rec = parse_record(AnnotationRecord, text, path, line)
        if rec.annotation_id in seen:
            raise UnirexError(f"{where(path, line)}: duplicate annotation_id '{rec.annotation_id}' "
                              f"(first on line {seen[rec.annotation_id]})")
        seen[rec.annotation_id] = line
        out.append(_to_annotation(rec, line))
    if not out:
        raise UnirexError(f"{path}: no annotations")
    return out


class DocumentStore:
    """Documents of one dataset, read lazily from ``docs/`` or from ``docs.jsonl``.

    ``docs.jsonl`` is validated line by line when the store opens (the documents are not kept: an index
    of docid -> line offset is, and a document is read again when asked for).
    """

    def __init__(self, dataset_dir: Path):
        self.dir = Path(dataset_dir)
        self._cache: dict[str, Document] = {}
        self._jsonl: dict[str, tuple[int, int]] | None = None  # docid -> (byte offset, line)
        docs_jsonl = self.dir / "docs.jsonl"
        inside = f"the dataset folder {self.dir}"
        if docs_jsonl.is_file():
            resolve_inside(self.dir, "docs.jsonl", "docs.jsonl", inside=inside)
            self._jsonl = {}
            for line, text, offset in iter_lines(docs_jsonl, max_document_bytes(), "UNIREX_MAX_DOCUMENT_MB"):
                rec = parse_record(DocumentRecord, text, docs_jsonl, line)
                if rec.docid in self._jsonl:
                    raise UnirexError(f"{where(docs_jsonl, line)}: duplicate docid '{rec.docid}' "
                                      f"(first on line {self._jsonl[rec.docid][1]})")
                self._jsonl[rec.docid] = (offset, line)
        elif (self.dir / "docs").is_dir():
            self._docs_dir = resolve_inside(self.dir, "docs", "the docs/ folder", inside=inside)
        else:
            raise UnirexError(f"{self.dir}: no documents (expected a docs/ folder or docs.jsonl)")

    def _doc_path(self, docid: str, needed_by: str = "") -> Path:
        if len(docid.encode("utf-8", "surrogatepass")) > NAME_MAX_BYTES:
            raise UnirexError(f"document '{docid[:80]}…'" + (f" (needed by {needed_by})" if needed_by else "")
                              + f": the docid is too long to name a file in docs/ ({NAME_MAX_BYTES} bytes at most)")
        if docid and "/" not in docid and "\x00" not in docid and docid not in (".", ".."):
            path = self._docs_dir / docid  # one name in the (resolved) docs/ folder: only a link could lead out
            if not path.is_symlink():
                return path
        what = f"document '{docid[:80]}'" + (f" (needed by {needed_by})" if needed_by else "")
        return resolve_inside(self._docs_dir, docid, what, inside=f"the docs/ folder of {self.dir}")

    def exists(self, docid: str) -> bool:
        if self._jsonl is not None:
            return docid in self._jsonl
        try:
            return self._doc_path(docid).is_file()
        except UnirexError:
            return False

    def get(self, docid: str, needed_by: str = "") -> Document:
        if docid in self._cache:
            return self._cache[docid]
        if self._jsonl is not None:
            path = self.dir / "docs.jsonl"
            if docid not in self._jsonl:
                raise UnirexError(f"{needed_by}: document '{docid}' not found in {path}")
            offset, line = self._jsonl[docid]
            with open(path, "rb") as f:
                f.seek(offset)
                raw = f.readline()
            rec = parse_record(DocumentRecord, _decode(raw, path, offset, line), path, line)
            origin = where(path, line)
            doc = Document.from_jsonl_text(docid, rec.document)
        else:
            path = self._doc_path(docid, needed_by)
            if not path.is_file():
                raise UnirexError(f"{needed_by}: document '{docid}' not found (no file {self.dir / 'docs' / docid})")
            data_size = path.stat().st_size
            limit = max_document_bytes()
            if data_size > limit:
                raise UnirexError(f"{path}: document '{docid}' is {data_size / MiB:.1f} MiB, over the limit of "
                                  f"{limit / MiB:.0f} MiB for one document (raise it with UNIREX_MAX_DOCUMENT_MB)")
            data = path.read_bytes()
            if b"\x00" in data:
                raise UnirexError(f"{path}: document '{docid}' contains NUL bytes (a binary file?)")
            origin = str(path)
            text = _decode(data, path)
            del data
            doc = Document.from_file_text(docid, text)
        if doc.is_blank:
            raise UnirexError(f"{origin}: document '{docid}' is empty")
        self._cache[docid] = doc
        return doc


def annotation_docids(ann: Annotation, docs: DocumentStore) -> list[str]:
    """The documents an annotation reads, in input order.

    ``docids`` when given; else the e-SNLI pair ``<id>_premise``/``<id>_hypothesis`` when both exist; else
    the documents its evidences point at (first appearance order); else the ``annotation_id`` itself
    (single-document tasks such as movies and SST).
    """
    if ann.docids:
        return list(ann.docids)
    pair = [f"{ann.annotation_id}_premise", f"{ann.annotation_id}_hypothesis"]
    if all(docs.exists(d) for d in pair):
        return pair
    from_evidence = list(dict.fromkeys(e.docid for e in ann.all_evidences))
    return from_evidence or [ann.annotation_id]


def resolve_example(ann: Annotation, docs: DocumentStore, split_path: Path) -> Example:
    """Attach documents to an annotation and check every evidence against them."""
    loc = where(split_path, ann.line)
    docids = annotation_docids(ann, docs)
    documents = [docs.get(d, needed_by=f"{loc} (annotation '{ann.annotation_id}')") for d in docids]
    masks = [[0] * d.n_words for d in documents]
    index = {d.docid: i for i, d in enumerate(documents)}
    for ev in ann.all_evidences:
        if ev.docid not in index:
            raise UnirexError(f"{loc}: evidence points at document '{ev.docid}', which is not among {docids}")
        i = index[ev.docid]
        n = documents[i].n_words
        if not (0 <= ev.start_token < ev.end_token <= n):
            raise UnirexError(
                f"{loc}: evidence tokens [{ev.start_token}, {ev.end_token}) are outside document "
                f"'{ev.docid}' ({n} tokens)"
            )
        if ev.text:
            expected = " ".join(" ".join(documents[i].span(ev.start_token, ev.end_token)).split())
            if " ".join(ev.text.split()) != expected:
                raise UnirexError(
                    f"{loc}: evidence text {ev.text[:60]!r} does not match document '{ev.docid}' tokens "
                    f"[{ev.start_token}, {ev.end_token}) which read {expected[:60]!r}"
                )
        masks[i][ev.start_token : ev.end_token] = [1] * (ev.end_token - ev.start_token)
    return Example(annotation=ann, documents=documents, gold_word_masks=masks)


def read_split(dataset_dir: Path, split: str) -> list[Example]:
    """Read and validate one split: annotations, their documents and their evidences."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise UnirexError(f"dataset folder {dataset_dir} does not exist")
    path = split_file(dataset_dir, split)
    docs = DocumentStore(dataset_dir)
    return [resolve_example(a, docs, path) for a in read_annotations(path)]


def label_vocabulary(dataset_dir: Path) -> list[str]:
    """The label set, sorted, taken from the train split (val/test labels must be among them)."""
    anns = read_annotations(split_file(Path(dataset_dir), "train"))
    return sorted({a.classification for a in anns})


# --- writing ---------------------------------------------------------------------------------------


def write_dataset(dataset_dir: Path, splits: dict[str, list[dict]], documents: dict[str, list[list[str]]]) -> None:
    """Write a dataset in ERASER layout: ``<split>.jsonl`` (split names train/val/test) and ``docs/``.

    ``splits`` maps a split name to annotation dicts; ``documents`` maps a docid to sentences of tokens.
    """
    dataset_dir = Path(dataset_dir)
    (dataset_dir / "docs").mkdir(parents=True, exist_ok=True)
    for docid, sentences in documents.items():
        path = resolve_inside(dataset_dir / "docs", docid, f"document '{docid}'", inside="docs/")
        path.write_text("\n".join(" ".join(s) for s in sentences) + "\n", encoding="utf-8")
    for split, anns in splits.items():
        name = SPLIT_ALIASES[split]
        with open(dataset_dir / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for a in anns:
                f.write(json.dumps(a) + "\n")
