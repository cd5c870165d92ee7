"""Reader for datasets in the ERASER release layout (DeYoung et al., 2020).

A dataset folder holds ``train.jsonl``, ``val.jsonl`` (``dev.jsonl`` is accepted: UNIREX calls the split
``dev``), ``test.jsonl`` and the documents, either as ``docs/<docid>`` files (one sentence per line, tokens
separated by spaces) or as one ``docs.jsonl`` with ``{"docid": ..., "document": ...}`` lines.

Every problem is raised as a :class:`~unirex.errors.UnirexError` naming the file, the line and the
problem; nothing is silently skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from unirex.errors import UnirexError, where

SPLIT_ALIASES = {"train": "train", "dev": "val", "val": "val", "validation": "val", "test": "test"}
SPLITS = ("train", "dev", "test")  # the names UNIREX uses; "dev" is read from val.jsonl or dev.jsonl


@dataclass(frozen=True)
class Evidence:
    docid: str
    start_token: int  # inclusive, index into the whitespace-tokenised document
    end_token: int  # exclusive
    start_sentence: int = -1
    end_sentence: int = -1
    text: str = ""


@dataclass(frozen=True)
class Document:
    docid: str
    sentences: tuple[tuple[str, ...], ...]

    @property
    def words(self) -> list[str]:
        return [w for s in self.sentences for w in s]


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


@dataclass
class Example:
    """One annotation with its documents resolved and its gold rationale as word masks."""

    annotation: Annotation
    documents: list[Document]
    gold_word_masks: list[list[int]] = field(default_factory=list)  # one 0/1 list per document

    @property
    def has_rationale(self) -> bool:
        return any(any(m) for m in self.gold_word_masks)


def split_file(dataset_dir: Path, split: str) -> Path:
    """Find the annotation file of a split (``dev`` -> ``val.jsonl`` or ``dev.jsonl``)."""
    dataset_dir = Path(dataset_dir)
    canonical = SPLIT_ALIASES.get(split)
    if canonical is None:
        raise UnirexError(f"unknown split '{split}': use one of train, dev (or val), test")
    names = ["val.jsonl", "dev.jsonl"] if canonical == "val" else [f"{canonical}.jsonl"]
    for name in names:
        if (dataset_dir / name).is_file():
            return dataset_dir / name
    raise UnirexError(f"{dataset_dir}: no {' or '.join(names)} for split '{split}'")


def read_text(path: Path) -> str:
    """Read a UTF-8 file; a decoding error names the file, line and byte."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UnirexError(f"{where(path, line)}: not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})") from None


def iter_jsonl(path: Path):
    """Yield ``(line_number, object)``; blank lines are skipped, malformed JSON is an error."""
    for i, raw in enumerate(read_text(path).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise UnirexError(f"{where(path, i)}: malformed JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise UnirexError(f"{where(path, i)}: expected a JSON object, got {type(obj).__name__}")
        yield i, obj


def _require(obj: dict, key: str, path: Path, line: int, kind=None):
    if key not in obj or obj[key] is None:
        raise UnirexError(f"{where(path, line)}: missing field '{key}'")
    value = obj[key]
    if kind is not None and not isinstance(value, kind):
        raise UnirexError(f"{where(path, line)}: field '{key}' should be {kind.__name__}, got {type(value).__name__}")
    return value


def _parse_evidence(ev: dict, path: Path, line: int) -> Evidence:
    if not isinstance(ev, dict):
        raise UnirexError(f"{where(path, line)}: an evidence should be an object, got {type(ev).__name__}")
    try:
        start, end = int(_require(ev, "start_token", path, line)), int(_require(ev, "end_token", path, line))
    except (TypeError, ValueError):
        raise UnirexError(f"{where(path, line)}: evidence token offsets must be integers") from None
    return Evidence(
        docid=str(_require(ev, "docid", path, line)),
        start_token=start,
        end_token=end,
        start_sentence=int(ev.get("start_sentence", -1) if ev.get("start_sentence") is not None else -1),
        end_sentence=int(ev.get("end_sentence", -1) if ev.get("end_sentence") is not None else -1),
        text=str(ev.get("text") or ""),
    )


def read_annotations(path: Path) -> list[Annotation]:
    """Parse an ERASER annotation file (``train.jsonl`` etc.)."""
    path = Path(path)
    out: list[Annotation] = []
    seen: dict[str, int] = {}
    for line, obj in iter_jsonl(path):
        ann_id = str(_require(obj, "annotation_id", path, line))
        if ann_id in seen:
            raise UnirexError(f"{where(path, line)}: duplicate annotation_id '{ann_id}' (first on line {seen[ann_id]})")
        seen[ann_id] = line
        label = _require(obj, "classification", path, line)
        raw_groups = obj.get("evidences") or []
        if not isinstance(raw_groups, list):
            raise UnirexError(f"{where(path, line)}: 'evidences' should be a list of lists")
        groups = []
        for g in raw_groups:
            g = g if isinstance(g, list) else [g]  # tolerate a flat list of evidence objects
            groups.append(tuple(_parse_evidence(ev, path, line) for ev in g))
        docids = obj.get("docids")
        if docids is not None and not isinstance(docids, list):
            raise UnirexError(f"{where(path, line)}: 'docids' should be a list")
        out.append(
            Annotation(
                annotation_id=ann_id,
                classification=str(label),
                evidences=tuple(groups),
                docids=tuple(str(d) for d in docids) if docids else (),
                query=str(obj.get("query") or ""),
                query_type=obj.get("query_type"),
                line=line,
            )
        )
    if not out:
        raise UnirexError(f"{path}: no annotations")
    return out


class DocumentStore:
    """Documents of one dataset, read lazily from ``docs/`` or all at once from ``docs.jsonl``."""

    def __init__(self, dataset_dir: Path):
        self.dir = Path(dataset_dir)
        self._cache: dict[str, Document] = {}
        self._jsonl: dict[str, tuple[str, int]] | None = None
        docs_jsonl = self.dir / "docs.jsonl"
        if docs_jsonl.is_file():
            self._jsonl = {}
            for line, obj in iter_jsonl(docs_jsonl):
                docid = str(_require(obj, "docid", docs_jsonl, line))
                text = _require(obj, "document", docs_jsonl, line, str)
                self._jsonl[docid] = (text, line)
        elif not (self.dir / "docs").is_dir():
            raise UnirexError(f"{self.dir}: no documents (expected a docs/ folder or docs.jsonl)")

    def exists(self, docid: str) -> bool:
        if self._jsonl is not None:
            return docid in self._jsonl
        return (self.dir / "docs" / docid).is_file()

    def get(self, docid: str, needed_by: str = "") -> Document:
        if docid in self._cache:
            return self._cache[docid]
        if self._jsonl is not None:
            if docid not in self._jsonl:
                raise UnirexError(f"{needed_by}: document '{docid}' not found in {self.dir / 'docs.jsonl'}")
            text, line = self._jsonl[docid]
            origin = where(self.dir / "docs.jsonl", line)
        else:
            path = self.dir / "docs" / docid
            if not path.is_file():
                raise UnirexError(f"{needed_by}: document '{docid}' not found (no file {path})")
            text, origin = read_text(path), str(path)
        sentences = tuple(tuple(s.split()) for s in text.splitlines() if s.split())
        if not sentences:
            raise UnirexError(f"{origin}: document '{docid}' is empty")
        doc = Document(docid=docid, sentences=sentences)
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
    masks = [[0] * len(d.words) for d in documents]
    index = {d.docid: i for i, d in enumerate(documents)}
    for ev in ann.all_evidences:
        if ev.docid not in index:
            raise UnirexError(f"{loc}: evidence points at document '{ev.docid}', which is not among {docids}")
        i = index[ev.docid]
        words = documents[i].words
        if not (0 <= ev.start_token < ev.end_token <= len(words)):
            raise UnirexError(
                f"{loc}: evidence tokens [{ev.start_token}, {ev.end_token}) are outside document "
                f"'{ev.docid}' ({len(words)} tokens)"
            )
        if ev.text:
            expected = " ".join(words[ev.start_token : ev.end_token])
            if " ".join(ev.text.split()) != expected:
                raise UnirexError(
                    f"{loc}: evidence text {ev.text[:60]!r} does not match document '{ev.docid}' tokens "
                    f"[{ev.start_token}, {ev.end_token}) which read {expected[:60]!r}"
                )
        for t in range(ev.start_token, ev.end_token):
            masks[i][t] = 1
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
        (dataset_dir / "docs" / docid).write_text("\n".join(" ".join(s) for s in sentences) + "\n", encoding="utf-8")
    for split, anns in splits.items():
        name = SPLIT_ALIASES[split]
        with open(dataset_dir / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for a in anns:
                f.write(json.dumps(a) + "\n")
