"""Human rationale annotation sets: a dataset in ERASER layout that grows by appending versions.

**What an annotation is.** One annotator's reading of one example (:class:`HumanAnnotation`): the
example's words (:class:`AnnotatedText`: its documents, and a query for query tasks), a class label,
the words marked as the rationale, the annotator's name and the time (UTC, ISO 8601).

**Layout.** A set named ``NAME`` lives in ``<data_dir>/NAME/``::

    NAME/
      versions/v0001/            one folder per save, never rewritten once its name exists
        annotations.jsonl        every annotation of the set at that version (one JSON object a line:
                                 example_id, docids, query, label, evidence spans, annotator,
                                 annotated_at, split, source) -- the set's own record
        manifest.json            version, time, counts per split and annotator, labels, notes
        docs/<docid>             the documents (ERASER's docs/ files: one sentence a line)
        train.jsonl val.jsonl test.jsonl   the version as an ERASER dataset (evidences = the rationale)
      versions/v0002/ ...
      annotation_set.json        the latest version's manifest: marks the folder as an annotation set
      docs/ train.jsonl val.jsonl test.jsonl annotations.jsonl   the latest version, materialised

So ``NAME`` builds, browses, trains and evaluates as any ERASER dataset does (the top-level files are
the latest version's); a version folder is itself a complete ERASER dataset (``export`` copies it).

**Append-only.** A save reads the latest version, adds the new annotations (an annotator's newer
annotation of an example replaces that annotator's older one *in the new version*; the old version
keeps it) and writes the result to a new version folder, built in a hidden temporary folder and
renamed into place; an existing version folder is never written to. The top-level copy is refreshed
from the new version afterwards (and again whenever it is found behind the latest version).

**Splits.** Each example belongs to one split, chosen when it is first annotated: ``train`` unless
asked otherwise (annotations are made to supervise a model's rationales, and merging adds a set to a
train split too), ``dev`` or ``test`` when asked for, or ``auto``: by a stable hash of its id (80% train,
10% dev, 10% test). Every annotator's reading of an example lands in the example's split, and an
example never changes split between versions. ERASER's reader needs all three files: a split with no example of its own holds a
copy of the train examples (of all examples when train has none), and the manifest and the save's
notes say so (scores on such a split are not held out).

**Several annotators.** The ERASER files hold one line per (example, annotator), ``annotation_id``
``<example_id>~<annotator>``, all reading the example's documents: training sees each reading.
:mod:`unirex.data.agreement` scores how far annotators agree.

**Merging** (:func:`merge_into_train`): a new dataset is made from a base dataset with the set's
annotations appended to its train split (the set's documents prefixed ``<set>.``); the base is not
touched, and a name already in use is refused.

The core never prints: every function returns what it did (counts, notes) for a front to show.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from unirex.data.eraser import (DocumentStore, annotation_docids, iter_lines, read_annotations, schema_message,
                                split_file)
from unirex.errors import UnirexError, where
from unirex.fsutil import atomic_write, clean_leftovers, default_dir_mode, file_lock, tmp_prefix, write_json_atomic
from unirex.safepath import dataset_path, resolve_inside

MANIFEST = "annotation_set.json"
RECORDS = "annotations.jsonl"
VERSIONS = "versions"
SPLIT_FILES = {"train": "train.jsonl", "dev": "val.jsonl", "test": "test.jsonl"}
SPLIT_CHOICES = ("auto", "train", "dev", "test")
MAX_ANNOTATOR_CHARS = 64
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_VERSION_RE = re.compile(r"v(\d{4,})")


# --- the records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnotatedText:
    """The words an annotator reads: documents (each a tuple of sentences, each a tuple of words, split
    as ERASER splits a ``docs/`` file) and the query of query tasks. ``example_id`` names it in a set
    (and its documents: ``<example_id>`` or ``<example_id>_d<k>``)."""

    example_id: str
    documents: tuple[tuple[tuple[str, ...], ...], ...]
    query: str = ""

    @property
    def words(self) -> list[str]:
        return [w for doc in self.documents for s in doc for w in s]

    @property
    def word_document(self) -> list[int]:
        return [d for d, doc in enumerate(self.documents) for s in doc for _ in s]

    @property
    def docids(self) -> list[str]:
        if len(self.documents) == 1:
            return [self.example_id]
        return [f"{self.example_id}_d{k}" for k in range(len(self.documents))]

    def document_text(self, k: int) -> str:
        return "\n".join(" ".join(s) for s in self.documents[k])


@dataclass(frozen=True)
class HumanAnnotation:
    """One annotator's label and rationale (one flag per word of ``item.words``) for one example."""

    item: AnnotatedText
    label: str
    rationale: tuple[bool, ...]
    annotator: str
    annotated_at: str = ""  # ISO 8601, UTC; empty: the time of the save
    split: str = "train"  # train, dev, test or auto (an example keeps the split it first got)
    source: str = ""  # where it was made: "label-studio task 7", "explain", "demo/test #3", ...

    @property
    def key(self) -> tuple[str, str]:
        return (self.item.example_id, self.annotator)

    def spans(self) -> list[tuple[int, int, int]]:
        """The rationale as ``(document, start_word, end_word)`` runs (word offsets within the document)."""
        out = []
        i = 0
        for d, doc in enumerate(self.item.documents):
            n = sum(len(s) for s in doc)
            start = None
            for j in range(n + 1):
                on = j < n and self.rationale[i + j]
                if on and start is None:
                    start = j
                elif not on and start is not None:
                    out.append((d, start, j))
                    start = None
            i += n
        return out


@dataclass(frozen=True)
class SaveResult:
    name: str
    version: int
    path: Path  # the version folder
    n_annotations: int  # in the set at this version
    n_added: int
    n_replaced: int  # an annotator's earlier annotation of the same example, replaced in this version
    n_examples: int
    annotators: tuple[str, ...]
    split_counts: dict[str, int]  # examples of each split's own
    mirrored: tuple[str, ...] = ()  # splits holding a copy of the train examples
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnnotationSet:
    name: str
    version: int
    path: Path  # the version folder
    annotations: tuple[HumanAnnotation, ...]
    manifest: dict = field(default_factory=dict)

    @property
    def annotators(self) -> tuple[str, ...]:
        return tuple(sorted({a.annotator for a in self.annotations}))

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(sorted({a.label for a in self.annotations}))

    @property
    def examples(self) -> dict[str, list[HumanAnnotation]]:
        out: dict[str, list[HumanAnnotation]] = {}
        for a in self.annotations:
            out.setdefault(a.item.example_id, []).append(a)
        return out


@dataclass(frozen=True)
class MergeResult:
    name: str
    path: Path
    base: str
    set_name: str
    set_version: int
    n_added: int
    n_train: int


# --- validation ------------------------------------------------------------------------------------


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def check_annotator(name: str) -> str:
    """An annotator's name: 1-64 characters of printable text, surrounding blanks dropped."""
    name = " ".join(str(name or "").split())
    if not name:
        raise UnirexError("the annotator's name is empty: type your name first")
    if len(name) > MAX_ANNOTATOR_CHARS:
        raise UnirexError(f"the annotator's name is longer than {MAX_ANNOTATOR_CHARS} characters")
    if any(not c.isprintable() for c in name):
        raise UnirexError("the annotator's name has a control character")
    return name


def check_example_id(example_id: str) -> str:
    if not isinstance(example_id, str) or not _ID_RE.fullmatch(example_id):
        raise UnirexError(f"example id {str(example_id)[:80]!r} is not usable: letters, digits, '_', '.' and '-' "
                          "(at most 100, starting with a letter or digit)")
    return example_id


def _check_split(split: str) -> str:
    split = {"val": "dev", "validation": "dev"}.get(split, split)
    if split not in SPLIT_CHOICES:
        raise UnirexError(f"split '{split}' is not one of {', '.join(SPLIT_CHOICES)}")
    return split


def _digest(parts: list[str]) -> str:
    return hashlib.sha1("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:12]


def words_item(words: list[str], word_document: list[int] | None = None, query: str = "",
               example_id: str | None = None) -> AnnotatedText:
    """An example from its words (concatenated over documents; ``word_document`` says which document each
    word is in). Without an ``example_id`` one is made from the words and the query, so the same text
    annotated from the Explain tab and from the Datasets browser is the same example."""
    word_document = list(word_document) if word_document is not None else [0] * len(words)
    if len(word_document) != len(words):
        raise UnirexError("word_document must give one document per word")
    docs: dict[int, list[str]] = {}
    for w, d in zip(words, word_document):
        w = str(w)
        if not w or " " in w or "\n" in w or "\r" in w:
            raise UnirexError(f"word {w[:40]!r} is not one word (empty or holds a space or line break)")
        docs.setdefault(int(d), []).append(w)
    if not docs:
        raise UnirexError("the text has no words to annotate")
    documents = tuple((tuple(docs[d]),) for d in sorted(docs))
    if example_id is None:
        example_id = "ex-" + _digest([" ".join(docs[d]) for d in sorted(docs)] + [query or ""])
    return AnnotatedText(check_example_id(example_id), documents, query or "")


def text_item(texts: list[str], query: str = "", example_id: str | None = None) -> AnnotatedText:
    """An example from raw document texts, split into sentences and words as ERASER reads a ``docs/`` file."""
    documents = []
    for t in texts:
        sentences = tuple(tuple(w for w, _, _ in line) for line in word_offsets(t) if line)
        if not sentences:
            raise UnirexError("a document of the text is empty")
        documents.append(sentences)
    if not documents:
        raise UnirexError("the text has no words to annotate")
    if example_id is None:
        example_id = "ex-" + _digest([" ".join(w for s in d for w in s) for d in documents] + [query or ""])
    return AnnotatedText(check_example_id(example_id), tuple(documents), query or "")


_LINE = re.compile(r"([^\r\n]*)(\r\n|\r|\n|$)")


def word_offsets(text: str) -> list[list[tuple[str, int, int]]]:
    """The words of ``text`` with their character offsets ``(word, start, end)``, per non-blank line,
    split exactly as ERASER's reader splits a ``docs/<docid>`` file (:meth:`unirex.data.eraser.Document.
    from_file_text`: universal newlines, each line stripped, split on the space character only)."""
    out = []
    for m in _LINE.finditer(text):
        line, base = m.group(1), m.start(1)
        stripped = line.strip()
        if stripped:
            pos = base + (len(line) - len(line.lstrip()))
            words = []
            for piece in stripped.split(" "):
                if piece:
                    words.append((piece, pos, pos + len(piece)))
                pos += len(piece) + 1
            out.append(words)
        if not m.group(2):
            break
    return out


# --- reading a set ---------------------------------------------------------------------------------


Id = Annotated[str, AfterValidator(check_example_id)]


class _StoredRecord(BaseModel):
    """One line of a version's ``annotations.jsonl``."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    example_id: Id
    docids: list[str]
    query: str = ""
    label: str
    evidences: list[tuple[int, int, int]]  # (document position, start word, end word)
    annotator: str
    annotated_at: str
    split: str
    source: str = ""


def set_dir(data_dir: Path, name: str) -> Path:
    return dataset_path(Path(data_dir), name)


def is_annotation_set(data_dir: Path, name: str) -> bool:
    try:
        return (set_dir(data_dir, name) / MANIFEST).is_file() or bool(versions(data_dir, name))
    except UnirexError:
        return False


def list_sets(data_dir: Path) -> list[str]:
    """The annotation sets under ``data_dir`` (folders holding ``versions/v*/``), sorted."""
    d = Path(data_dir)
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and is_annotation_set(d, p.name))


def versions(data_dir: Path, name: str) -> list[int]:
    """The version numbers of a set, oldest first ([] when it has none)."""
    folder = set_dir(data_dir, name) / VERSIONS
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _VERSION_RE.fullmatch(p.name)) and p.is_dir())


def version_dir(data_dir: Path, name: str, version: int) -> Path:
    return set_dir(data_dir, name) / VERSIONS / f"v{version:04d}"


def _mask(documents, spans, bad) -> tuple[bool, ...]:
    """Word flags over the concatenated documents from ``(document, start, end)`` spans; ``bad(span)`` makes
    the error for a span outside its document."""
    offsets = [0]
    for doc in documents:
        offsets.append(offsets[-1] + sum(len(s) for s in doc))
    mask = [False] * offsets[-1]
    for d, s, e in spans:
        if d is None or not (0 <= d < len(documents) and 0 <= s < e <= offsets[d + 1] - offsets[d]):
            raise bad((d, s, e))
        mask[offsets[d] + s:offsets[d] + e] = [True] * (e - s)
    return tuple(mask)


def _read_records(folder: Path) -> tuple[HumanAnnotation, ...]:
    """The annotations of a version folder (or an exported copy of one): its ``annotations.jsonl``."""
    path = folder / RECORDS
    if not path.is_file():
        raise UnirexError(f"{folder}: no {RECORDS} (not a version of an annotation set)")
    docs = DocumentStore(folder)
    out = []
    for line, text, _ in iter_lines(path):
        try:
            rec = _StoredRecord.model_validate_json(text)
        except ValidationError as e:
            raise UnirexError(f"{where(path, line)}: {schema_message(e)}") from None
        documents = tuple(docs.get(d, needed_by=where(path, line)).sentences for d in rec.docids)
        mask = _mask(documents, rec.evidences, lambda sp: UnirexError(
            f"{where(path, line)}: evidence {list(sp)} is outside the example's words"))
        out.append(HumanAnnotation(AnnotatedText(rec.example_id, documents, rec.query), rec.label, mask,
                                   rec.annotator, rec.annotated_at, rec.split, rec.source))
    return tuple(out)


def _read_version(data_dir: Path, name: str, version: int) -> AnnotationSet:
    folder = version_dir(data_dir, name, version)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    return AnnotationSet(name, version, folder, _read_records(folder), manifest)


def load_set(data_dir: Path, name: str, version: int | None = None) -> AnnotationSet:
    """A set at ``version`` (default: the latest); the top-level copy is repaired when it is behind."""
    have = versions(data_dir, name)
    if not have:
        folder = set_dir(data_dir, name)
        why = "does not exist" if not folder.exists() else "is a dataset, not an annotation set (no versions/)"
        raise UnirexError(f"annotation set '{name}' {why}")
    if version is None:
        version = have[-1]
    elif version not in have:
        raise UnirexError(f"annotation set '{name}' has no version {version} (it has {have[0]} to {have[-1]})")
    out = _read_version(data_dir, name, version)
    if version == have[-1]:
        _materialise_if_behind(data_dir, name, version)
    return out


# --- writing a version -----------------------------------------------------------------------------


def auto_split(example_id: str) -> str:
    """80% train, 10% dev, 10% test, by a stable hash of the example id."""
    b = int(hashlib.sha1(example_id.encode()).hexdigest(), 16) % 10
    return "test" if b == 0 else "dev" if b == 1 else "train"


def _record(a: HumanAnnotation) -> dict:
    return {"example_id": a.item.example_id, "docids": a.item.docids, "query": a.item.query, "label": a.label,
            "evidences": [list(s) for s in a.spans()], "annotator": a.annotator, "annotated_at": a.annotated_at,
            "split": a.split, "source": a.source}


def _eraser_line(a: HumanAnnotation, prefix: str = "") -> dict:
    docids = [prefix + d for d in a.item.docids]
    evidences = []
    for d, s, e in a.spans():
        words = [w for sent in a.item.documents[d] for w in sent][s:e]
        evidences.append([{"docid": docids[d], "start_token": s, "end_token": e, "text": " ".join(words)}])
    return {"annotation_id": f"{prefix}{a.item.example_id}~{a.annotator}", "classification": a.label,
            "evidences": evidences, "docids": docids, "query": a.item.query or None,
            "annotator": a.annotator, "annotated_at": a.annotated_at}


def _check(a: HumanAnnotation) -> HumanAnnotation:
    check_example_id(a.item.example_id)
    n = len(a.item.words)
    if n == 0:
        raise UnirexError(f"example {a.item.example_id}: no words")
    if len(a.rationale) != n:
        raise UnirexError(f"example {a.item.example_id}: the rationale marks {len(a.rationale)} words, the text "
                          f"has {n}")
    label = str(a.label or "").strip()
    if not label:
        raise UnirexError(f"example {a.item.example_id}: no class label: choose one")
    if "\x00" in label or "\x00" in a.item.query:
        raise UnirexError(f"example {a.item.example_id}: a NUL character in the label or the query")
    return HumanAnnotation(a.item, label, tuple(bool(r) for r in a.rationale), check_annotator(a.annotator),
                           a.annotated_at or now_utc(), _check_split(a.split), a.source)


def _write_docs(folder: Path, anns: list[HumanAnnotation], prefix: str = "") -> None:
    docs = folder / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    done = set()
    for a in anns:
        for k, docid in enumerate(a.item.docids):
            if docid in done:
                continue
            done.add(docid)
            path = resolve_inside(docs, prefix + docid, f"document '{docid}'", inside="docs/")
            path.write_text(a.item.document_text(k) + "\n", encoding="utf-8")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in rows),
                                                        encoding="utf-8"))


def _split_rows(anns: list[HumanAnnotation]) -> tuple[dict[str, list[dict]], tuple[str, ...], dict[str, int]]:
    by_split: dict[str, list[HumanAnnotation]] = {s: [] for s in SPLIT_FILES}
    for a in anns:
        by_split[a.split].append(a)
    counts = {s: len({a.item.example_id for a in v}) for s, v in by_split.items()}
    fill = by_split["train"] or anns
    mirrored = tuple(s for s, v in by_split.items() if not v)
    rows = {s: [_eraser_line(a) for a in (v or fill)] for s, v in by_split.items()}
    return rows, mirrored, counts


def save_annotations(data_dir: Path, name: str, new: list[HumanAnnotation]) -> SaveResult:
    """Append ``new`` to set ``name`` (created when it does not exist) as a new version; see the module note.

    Raises:
        UnirexError: a dataset ``name`` that is not an annotation set, an annotation without a label or
        with a rationale that does not fit its words, an example id whose text differs from the set's.
    """
    if not new:
        raise UnirexError("nothing to save: no annotation")
    folder = set_dir(data_dir, name)
    if folder.exists() and not is_annotation_set(data_dir, name):
        raise UnirexError(f"dataset '{name}' exists and is not an annotation set: choose another name")
    new = [_check(a) for a in new]
    with file_lock(Path(data_dir) / f".{name}.annotations.lock"):
        have = versions(data_dir, name)
        old = list(_read_version(data_dir, name, have[-1]).annotations) if have else []
        items = {a.item.example_id: a.item for a in old}
        example_split = {a.item.example_id: a.split for a in old}
        notes: list[str] = []
        merged: dict[tuple[str, str], HumanAnnotation] = {a.key: a for a in old}
        added = replaced = 0
        for a in new:
            ex = a.item.example_id
            if ex in items and items[ex] != a.item:
                raise UnirexError(f"example {ex}: its text differs from the one already in set '{name}' "
                                  "(give it another id)")
            items[ex] = a.item
            want = auto_split(ex) if a.split == "auto" else a.split
            split = example_split.setdefault(ex, want)
            if a.split != "auto" and split != a.split:
                notes.append(f"example {ex} is in {split} already (it stays there, not {a.split})")
            a = HumanAnnotation(a.item, a.label, a.rationale, a.annotator, a.annotated_at, split, a.source)
            if a.key in merged:
                replaced += 1
            else:
                added += 1
            merged[a.key] = a
        anns = list(merged.values())
        version = (have[-1] if have else 0) + 1
        rows, mirrored, counts = _split_rows(anns)
        if mirrored:
            src = "the train examples" if counts["train"] else "all the examples"
            one = len(mirrored) == 1
            notes.append(f"{' and '.join(mirrored)} {'has no example of its own: it holds' if one else 'have no examples of their own: they hold'} "
                         f"{src} (scores on {'it' if one else 'them'} are not held out)")
        train_labels = {a.label for a in anns if a.split == "train"} or {a.label for a in anns}
        for lab in sorted({a.label for a in anns} - train_labels):
            notes.append(f"label '{lab}' is in no train example: building dev/test refuses it until a train example "
                         "has it")
        annotators = tuple(sorted({a.annotator for a in anns}))
        manifest = {"name": name, "version": version, "saved_at": now_utc(), "n_annotations": len(anns),
                    "n_examples": len(items), "annotators": list(annotators),
                    "labels": sorted({a.label for a in anns}), "split_counts": counts,
                    "mirrored_splits": list(mirrored), "notes": notes}
        versions_dir = folder / VERSIONS
        versions_dir.mkdir(parents=True, exist_ok=True)
        clean_leftovers(versions_dir)  # versions a writer that died left half-built (hidden; never a version)
        tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(f"v{version:04d}"), dir=versions_dir))
        try:
            _write_docs(tmp, anns)
            _write_jsonl(tmp / RECORDS, [_record(a) for a in anns])
            for split, file in SPLIT_FILES.items():
                _write_jsonl(tmp / file, rows[split])
            write_json_atomic(tmp / "manifest.json", manifest)
            os.chmod(tmp, default_dir_mode())
            target = version_dir(data_dir, name, version)
            if target.exists():  # never rewrite a version (another writer without the lock?)
                raise UnirexError(f"version {version} of '{name}' appeared while saving: save again")
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        materialise(data_dir, name, version)
    return SaveResult(name, version, target, len(anns), added, replaced, len(items), annotators, counts, mirrored,
                      tuple(notes))


def materialise(data_dir: Path, name: str, version: int) -> None:
    """Copy a version's ERASER files to the set's top level (documents first, the manifest last)."""
    src = version_dir(data_dir, name, version)
    top = set_dir(data_dir, name)
    (top / "docs").mkdir(exist_ok=True)
    for p in sorted((src / "docs").iterdir()):
        dst = top / "docs" / p.name
        data = p.read_bytes()
        if not dst.is_file() or dst.read_bytes() != data:
            atomic_write(dst, lambda tmp, data=data: Path(tmp).write_bytes(data))
    for file in (*SPLIT_FILES.values(), RECORDS):
        data = (src / file).read_bytes()
        atomic_write(top / file, lambda tmp, data=data: Path(tmp).write_bytes(data))
    write_json_atomic(top / MANIFEST, json.loads((src / "manifest.json").read_text()))


def _materialise_if_behind(data_dir: Path, name: str, version: int) -> None:
    top = set_dir(data_dir, name) / MANIFEST
    try:
        current = json.loads(top.read_text()).get("version")
    except (OSError, ValueError):
        current = None
    if current != version:
        materialise(data_dir, name, version)


# --- ERASER import / export ------------------------------------------------------------------------


def export_eraser(data_dir: Path, name: str, out_dir: Path) -> Path:
    """Copy the latest version (an ERASER dataset with the set's own records) to ``out_dir`` (new folder)."""
    s = load_set(data_dir, name)
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise UnirexError(f"{out_dir} exists: export into a new folder")
    shutil.copytree(s.path, out_dir)
    return out_dir


def read_eraser(src_dir: Path, annotator: str = "eraser") -> list[HumanAnnotation]:
    """The annotations of an ERASER folder: its ``annotations.jsonl`` when it is an exported set (annotators
    and times kept), else every line of its splits as ``annotator``'s, each in its split."""
    src_dir = Path(src_dir)
    if (src_dir / RECORDS).is_file():
        return list(_read_records(src_dir))
    annotator = check_annotator(annotator)
    docs = DocumentStore(src_dir)
    out = []
    for split in SPLIT_FILES:
        try:
            path = split_file(src_dir, split)
        except UnirexError:
            continue
        for ann in read_annotations(path):
            docids = annotation_docids(ann, docs)
            documents = tuple(docs.get(d, needed_by=where(path, ann.line)).sentences for d in docids)
            ex_id = ann.annotation_id if _ID_RE.fullmatch(ann.annotation_id) else "ex-" + _digest([ann.annotation_id])
            spans = [(docids.index(e.docid) if e.docid in docids else None, e.start_token, e.end_token)
                     for e in ann.all_evidences]
            mask = _mask(documents, spans, lambda sp, ann=ann, path=path: UnirexError(
                f"{where(path, ann.line)}: evidence outside the annotation's documents"))
            out.append(HumanAnnotation(AnnotatedText(ex_id, documents, ann.query), ann.classification, mask,
                                       annotator, "", split, f"eraser {src_dir.name}/{split}"))
    if not out:
        raise UnirexError(f"{src_dir}: no train.jsonl, val.jsonl or test.jsonl with annotations")
    return out


# --- merging into a dataset's train split ----------------------------------------------------------


def merge_into_train(data_dir: Path, set_name: str, base: str, new_name: str) -> MergeResult:
    """A new dataset ``new_name``: ``base``'s files with the set's annotations appended to its train split.

    The set's documents and annotation ids are prefixed ``<set_name>.``; the base is read, never written.
    Every label of the set must be one of the base's train labels.
    """
    data_dir = Path(data_dir)
    s = load_set(data_dir, set_name)
    src = set_dir(data_dir, base)
    target = set_dir(data_dir, new_name)
    if target.exists():
        raise UnirexError(f"dataset '{new_name}' exists: merging makes a new dataset, choose a new name")
    if not src.is_dir():
        raise UnirexError(f"dataset '{base}' does not exist in {data_dir} (build it once first)")
    train_path = split_file(src, "train")
    base_labels = {a.classification for a in read_annotations(train_path)}
    unknown = sorted({a.label for a in s.annotations} - base_labels)
    if unknown:
        raise UnirexError(f"set '{set_name}' has labels {unknown} that '{base}' does not have ({sorted(base_labels)})")
    prefix = f"{set_name}."
    clean_leftovers(data_dir, prefixes=(f".{new_name}-merge-tmp-",))
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(f"{new_name}-merge"), dir=data_dir))
    try:
        for name in ("val.jsonl", "dev.jsonl", "test.jsonl"):
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        if (src / "docs.jsonl").is_file():
            lines = (src / "docs.jsonl").read_text(encoding="utf-8").rstrip("\n") + "\n"
            seen = set()
            for a in s.annotations:
                for k, d in enumerate(a.item.docids):
                    if d not in seen:
                        seen.add(d)
                        lines += json.dumps({"docid": prefix + d, "document": a.item.document_text(k)}) + "\n"
            (tmp / "docs.jsonl").write_text(lines, encoding="utf-8")
        else:
            shutil.copytree(src / "docs", tmp / "docs")
            _write_docs(tmp, list(s.annotations), prefix)
        base_train = train_path.read_text(encoding="utf-8")
        if base_train and not base_train.endswith("\n"):
            base_train += "\n"
        added = "".join(json.dumps(_eraser_line(a, prefix)) + "\n" for a in s.annotations)
        (tmp / "train.jsonl").write_text(base_train + added, encoding="utf-8")
        n_train = len(read_annotations(tmp / "train.jsonl"))  # duplicate ids and the schema checked
        write_json_atomic(tmp / "merged_from.json", {"base": base, "annotation_set": set_name,
                                                     "set_version": s.version, "added_to_train": len(s.annotations),
                                                     "merged_at": now_utc()})
        os.chmod(tmp, default_dir_mode())
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return MergeResult(new_name, target, base, set_name, s.version, len(s.annotations), n_train)


__all__ = ["AnnotatedText", "AnnotationSet", "HumanAnnotation", "MergeResult", "SaveResult", "auto_split",
           "check_annotator", "export_eraser", "is_annotation_set", "list_sets", "load_set", "materialise",
           "merge_into_train", "read_eraser", "save_annotations", "text_item", "versions", "word_offsets",
           "words_item"]
