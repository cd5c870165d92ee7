"""Label Studio's JSON export, read into and written from annotation sets (:mod:`unirex.data.annotations`).

**Mapping.** One task is one example: ``data.text`` is its text (``data.query`` its query, when given;
``data.example_id`` its id in a set, else ``ls-<task id>``). Each entry of ``annotations`` is one
annotator's reading (``completed_by``: a name, a number read as ``user <n>``, or an object whose
``email``, ``username`` or ``id`` names the annotator); in its ``result``:

* ``type: "labels"`` with ``value.start`` / ``value.end`` (character offsets into ``data.text``, end
  exclusive) and ``value.labels`` naming a rationale label (``Rationale`` unless told otherwise) is a
  rationale span;
* ``type: "choices"`` with one ``value.choices`` entry is the class label.

Character offsets become words the way ERASER's reader makes words of a ``docs/`` file
(:func:`unirex.data.annotations.word_offsets`); a span that cuts a word takes the whole word, and the
import says so. Every problem that would make a wrong annotation is refused, naming the task: no class
label, two class labels, a span label that is not a rationale label, a class label outside the labels
given, offsets that are not integers, reversed or past the end of the text. What can be handled is,
and is reported: an annotation with an empty ``result`` (or cancelled) is skipped, overlapping spans are
merged, a span over blanks only marks nothing, an annotator's second annotation of a task replaces the
first. A task without annotations is skipped.

**Several documents** (an NLI premise and hypothesis, e-SNLI, a question's passages): the task keeps
*one* ``data.text`` (the documents joined by a blank line) and says where each document lies in
``data.documents``: a list of ``{"docid", "start", "end"}`` (character offsets into ``data.text``, end
exclusive, in document order). Why one text and not one ``data`` field per document: a Label Studio
project has one labeling config, and a set mixes one-document and two-document examples; with one text
the same config (``<Labels>`` and ``<Choices>`` on one ``<Text value="$text"/>``) shows every task of the
set, the annotator sees the documents together, as the model reads them, and every span is an offset
into that one text, as Label Studio writes them. Label Studio keeps ``data`` keys its config does not
name, so ``data.documents`` survives a round trip through it. On import, each document's words are
read from its range, and a span belongs to the document whose words it covers: a span that covers
words of two documents is refused, naming the task (one ERASER evidence lies in one document; mark each
document's words apart), and words outside every range are refused too. The docids the set gives the
documents are ``<example_id>_d<k>`` (:attr:`~unirex.data.annotations.AnnotatedText.docids`); other docids
in ``data.documents`` are noted. A task without ``data.documents`` (made by another tool, or an export
of a one-document example) is one document, as before.

**Export** writes one task per example with one annotation per annotator (``completed_by`` the
annotator's name, ``created_at`` the annotation time), the rationale as one ``labels`` result per run of
marked words within a document (character offsets into ``data.text``: a document's sentences joined by
``\\n``, its words by a space; several documents joined by a blank line and placed by
``data.documents``) and the class label as a ``choices`` result. Importing an export gives back the same
annotations: the same documents, words, rationale per document, labels, annotators and times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from unirex.data.annotations import (AnnotatedText, AnnotationSet, HumanAnnotation, check_annotator, now_utc,
                                     text_item, word_offsets)
from unirex.data.eraser import schema_message
from unirex.errors import UnirexError

RATIONALE_LABEL = "Rationale"
MAX_FILE_BYTES = 256 << 20


class _Value(BaseModel):
    model_config = ConfigDict(extra="ignore")
    start: StrictInt | None = None
    end: StrictInt | None = None
    text: str | None = None
    labels: list[StrictStr] | None = None
    choices: list[StrictStr] | None = None


class _Result(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: StrictStr
    value: _Value


class _Annotation(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: StrictInt | StrictStr | None = None
    result: list[_Result] = []
    completed_by: StrictInt | StrictStr | dict | None = None
    created_at: StrictStr | None = None
    updated_at: StrictStr | None = None
    was_cancelled: bool = False


class _DocumentRange(BaseModel):
    """One entry of ``data.documents``: where a document lies in ``data.text``."""

    model_config = ConfigDict(extra="ignore")
    docid: StrictStr | None = None
    start: StrictInt
    end: StrictInt


class _Documents(BaseModel):
    model_config = ConfigDict(extra="ignore")
    documents: list[_DocumentRange]


class _Task(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: StrictInt | StrictStr | None = None
    data: dict[str, Any]
    annotations: list[_Annotation] = []


@dataclass(frozen=True)
class ImportReport:
    """What a Label Studio file held: the annotations read and what was handled on the way."""

    annotations: tuple[HumanAnnotation, ...]
    n_tasks: int
    n_skipped: int  # annotations skipped (empty result, cancelled), and tasks without annotations
    notes: tuple[str, ...]

    @property
    def annotators(self) -> tuple[str, ...]:
        return tuple(sorted({a.annotator for a in self.annotations}))


def _annotator(a: _Annotation, task: str, k: int) -> str:
    who = a.completed_by
    if isinstance(who, dict):
        who = who.get("email") or who.get("username") or who.get("id")
    if isinstance(who, bool) or who is None or who == "":
        raise UnirexError(f"task {task}: annotation {k + 1} names no annotator (completed_by)")
    if isinstance(who, int):
        who = f"user {who}"
    try:
        return check_annotator(str(who))
    except UnirexError as e:
        raise UnirexError(f"task {task}: annotation {k + 1}: {e}") from None


def _words(text: str, ranges: list[tuple[int, int]]) -> list[tuple[str, int, int, int]]:
    """The words of ``text`` as ``(word, start, end, document)`` (offsets into ``text``), document by document."""
    out = []
    for k, (s, e) in enumerate(ranges):
        out += [(w, s + ws, s + we, k) for line in word_offsets(text[s:e]) for w, ws, we in line]
    return out


def _document_ranges(task: _Task, text: str, text_key: str) -> tuple[list[tuple[int, int]], list[str | None]]:
    """Where each document lies in the text (``data.documents`` when the task has it, else one document) and
    the docids ``data.documents`` gives them."""
    if "documents" not in task.data:
        return [(0, len(text))], [None]
    try:
        docs = _Documents.model_validate({"documents": task.data["documents"]}).documents
    except ValidationError as e:
        raise UnirexError(f"data: {schema_message(e)}") from None
    if not docs:
        raise UnirexError("data.documents is empty (leave it out for one document)")
    ranges, end = [], 0
    for k, d in enumerate(docs):
        if not 0 <= d.start < d.end <= len(text):
            raise UnirexError(f"data.documents[{k}] [{d.start}, {d.end}) is empty, reversed or outside "
                              f"data.{text_key} ({len(text)} characters)")
        if d.start < end:
            raise UnirexError(f"data.documents[{k}] [{d.start}, {d.end}) overlaps the document before "
                              "it or comes before it (give the documents in order)")
        if text[end:d.start].strip():
            raise UnirexError(f"data.{text_key}[{end}:{d.start}] holds words outside every document of "
                              "data.documents")
        ranges.append((d.start, d.end))
        end = d.end
    if text[end:].strip():
        raise UnirexError(f"data.{text_key}[{end}:] holds words outside every document of "
                          "data.documents")
    return ranges, [d.docid for d in docs]


def _words_of_spans(text: str, words: list[tuple[str, int, int, int]], spans: list[tuple[int, int]], task: str,
                    who: str, notes: list[str]) -> list[bool]:
    mask = [False] * len(words)
    ordered = sorted(spans)
    for (s1, e1), (s2, e2) in zip(ordered, ordered[1:]):
        if s2 < e1:
            notes.append(f"task {task}: {who}'s spans [{s1}, {e1}) and [{s2}, {e2}) overlap: merged")
    for s, e in spans:
        hit = [i for i, (_, ws, we, _) in enumerate(words) if ws < e and s < we]
        if not hit:
            notes.append(f"task {task}: {who}'s span [{s}, {e}) covers no word (blanks only): nothing marked")
            continue
        if words[hit[0]][3] != words[hit[-1]][3]:
            raise UnirexError(f"task {task}: {who}'s span [{s}, {e}) crosses from document {words[hit[0]][3] + 1} "
                              f"into document {words[hit[-1]][3] + 1} (data.documents): one span marks words of one "
                              "document")
        first, last = words[hit[0]], words[hit[-1]]
        if s > first[1] or e < last[2]:
            notes.append(f"task {task}: {who}'s span [{s}, {e}) {text[s:e]!r} cuts a word: took the whole words "
                         f"{' '.join(words[i][0] for i in hit)!r}")
        for i in hit:
            mask[i] = True
    return mask


def _task_id(t: _Task, k: int) -> str:
    return str(t.id) if t.id is not None else f"#{k + 1}"


def read_label_studio(path: Path, rationale_labels: tuple[str, ...] = (RATIONALE_LABEL,),
                      class_labels: tuple[str, ...] | None = None, text_key: str = "text",
                      split: str = "train") -> ImportReport:
    """Read a Label Studio JSON export (see the module note); nothing is written.

    Raises:
        UnirexError: one message naming the task (and the annotation) of the first problem.
    """
    path = Path(path)
    if not path.is_file():
        raise UnirexError(f"{path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UnirexError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UnirexError(f"{path}: not UTF-8 text") from None
    except ValueError as e:
        raise UnirexError(f"{path}: not JSON ({str(e)[:120]})") from None
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise UnirexError(f"{path}: a Label Studio export is a JSON list of tasks")
    rationale_labels = tuple(rationale_labels)
    out: list[HumanAnnotation] = []
    notes: list[str] = []
    skipped = 0
    for k, obj in enumerate(raw):
        try:
            task = _Task.model_validate(obj)
        except ValidationError as e:
            tid = obj.get("id", f"#{k + 1}") if isinstance(obj, dict) else f"#{k + 1}"
            raise UnirexError(f"{path}: task {tid}: {schema_message(e)}") from None
        tid = _task_id(task, k)
        text = task.data.get(text_key)
        if not isinstance(text, str) or not text.strip():
            raise UnirexError(f"{path}: task {tid}: no text in data.{text_key}")
        query = task.data.get("query") or ""
        if not isinstance(query, str):
            raise UnirexError(f"{path}: task {tid}: data.query is not text")
        example_id = str(task.data.get("example_id") or f"ls-{task.id if task.id is not None else k + 1}")
        try:
            ranges, given = _document_ranges(task, text, text_key)
            item = text_item([text[s:e] for s, e in ranges], query, example_id=example_id)
        except UnirexError as e:
            raise UnirexError(f"{path}: task {tid}: {e}") from None
        if any(d is not None for d in given) and given != item.docids:
            notes.append(f"task {tid}: the documents {given} are named {item.docids} in the set")
        words = _words(text, ranges)
        if not task.annotations:
            skipped += 1
            notes.append(f"task {tid}: no annotation: skipped")
            continue
        by_annotator: dict[str, HumanAnnotation] = {}
        for j, ann in enumerate(task.annotations):
            who = _annotator(ann, tid, j)
            if ann.was_cancelled or not ann.result:
                skipped += 1
                notes.append(f"task {tid}: {who}'s annotation {'was cancelled' if ann.was_cancelled else 'has an empty result'}: skipped")
                continue
            spans, labels = [], []
            for r in ann.result:
                v = r.value
                if r.type == "labels":
                    unknown = [lab for lab in (v.labels or []) if lab not in rationale_labels]
                    if unknown or not v.labels:
                        raise UnirexError(f"{path}: task {tid}: {who}'s span label {unknown or v.labels} is not a "
                                          f"rationale label ({', '.join(rationale_labels)})")
                    if v.start is None or v.end is None:
                        raise UnirexError(f"{path}: task {tid}: {who}'s span has no start/end offsets")
                    if v.start < 0 or v.end <= v.start:
                        raise UnirexError(f"{path}: task {tid}: {who}'s span [{v.start}, {v.end}) is empty or reversed")
                    if v.end > len(text):
                        raise UnirexError(f"{path}: task {tid}: {who}'s span [{v.start}, {v.end}) is past the end of "
                                          f"the text ({len(text)} characters)")
                    spans.append((v.start, v.end))
                elif r.type == "choices":
                    labels += list(v.choices or [])
                else:
                    notes.append(f"task {tid}: {who}'s result of type '{r.type}' is not read")
            if not labels:
                raise UnirexError(f"{path}: task {tid}: {who}'s annotation has no class label (a 'choices' result)")
            if len(labels) > 1:
                raise UnirexError(f"{path}: task {tid}: {who}'s annotation has {len(labels)} class labels {labels}")
            if class_labels is not None and labels[0] not in class_labels:
                raise UnirexError(f"{path}: task {tid}: {who}'s class label '{labels[0]}' is not one of "
                                  f"{', '.join(class_labels)}")
            try:
                mask = _words_of_spans(text, words, spans, tid, who, notes)
            except UnirexError as e:
                raise UnirexError(f"{path}: {e}") from None
            if who in by_annotator:
                notes.append(f"task {tid}: {who} annotated it twice: the later annotation is kept")
            by_annotator[who] = HumanAnnotation(item, labels[0], tuple(mask), who,
                                                ann.updated_at or ann.created_at or now_utc(), split,
                                                f"label-studio task {tid}")
        out += by_annotator.values()
    if not out:
        raise UnirexError(f"{path}: no annotation to import ({len(raw)} tasks)")
    return ImportReport(tuple(out), len(raw), skipped, tuple(notes))


def _text_and_offsets(item: AnnotatedText) -> tuple[str, list[tuple[int, int]], list[tuple[int, int]]]:
    """The task's text, each word's character range in it and each document's."""
    text, offsets, ranges = "", [], []
    for k in range(len(item.documents)):
        if k:
            text += "\n\n"
        start = len(text)
        for i, sent in enumerate(item.documents[k]):
            if i:
                text += "\n"
            for j, w in enumerate(sent):
                if j:
                    text += " "
                offsets.append((len(text), len(text) + len(w)))
                text += w
        ranges.append((start, len(text)))
    return text, offsets, ranges


def label_studio_tasks(s: AnnotationSet) -> list[dict]:
    """The set as Label Studio tasks (see the module note)."""
    tasks = []
    for n, (ex_id, anns) in enumerate(s.examples.items(), start=1):
        item = anns[0].item
        text, offsets, ranges = _text_and_offsets(item)
        data: dict[str, Any] = {"text": text, "example_id": ex_id}
        if len(ranges) > 1:
            data["documents"] = [{"docid": d, "start": s0, "end": e0} for d, (s0, e0) in zip(item.docids, ranges)]
        if item.query:
            data["query"] = item.query
        annotations = []
        for m, a in enumerate(anns, start=1):
            result = []
            i = 0
            while i < len(a.rationale):
                if a.rationale[i]:
                    j = i
                    while j + 1 < len(a.rationale) and a.rationale[j + 1] and \
                            item.word_document[j + 1] == item.word_document[i]:
                        j += 1
                    s0, e0 = offsets[i][0], offsets[j][1]
                    result.append({"id": f"r{len(result) + 1}", "from_name": "rationale", "to_name": "text",
                                   "type": "labels", "value": {"start": s0, "end": e0, "text": text[s0:e0],
                                                               "labels": [RATIONALE_LABEL]}})
                    i = j + 1
                else:
                    i += 1
            result.append({"id": "label", "from_name": "label", "to_name": "text", "type": "choices",
                           "value": {"choices": [a.label]}})
            annotations.append({"id": m, "completed_by": a.annotator, "created_at": a.annotated_at,
                                "result": result})
        tasks.append({"id": n, "data": data, "annotations": annotations})
    return tasks


__all__ = ["ImportReport", "RATIONALE_LABEL", "label_studio_tasks", "read_label_studio"]
