"""Explaining a file of texts with one checkpoint: the input file read and checked, the rows written.

The input is a text file (one text per line; blank lines skipped) or JSON Lines (``.jsonl``: one object per
line with ``text``, optional ``query``, ``second_text`` and ``id``). Every line is read and checked before
the model loads, so a bad line costs nothing and names itself (``IN:line: problem``).

The output is ``.jsonl`` or ``.parquet``, one row per input, in input order (:data:`COLUMNS`; the names that
Thermostat's datasets use mean the same here: ``idx``, ``input_ids``, ``attributions``, ``label``). It is
written beside its target and renamed over it when the last row is in (:func:`unirex.fsutil.atomic_write`),
so a failure part-way leaves nothing at the target; an existing target is kept unless ``overwrite``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from unirex.errors import UnirexError, where
from unirex.fsutil import atomic_write, reporting_disk_full
from unirex.text_input import TextInput, check_text

if TYPE_CHECKING:
    from unirex.inference import ExplainedText

OUTPUT_SUFFIXES = (".jsonl", ".parquet")
#: the output's columns, in order (``comprehensiveness`` / ``sufficiency`` only with faithfulness)
COLUMNS = ("idx", "id", "words", "word_document", "word_scores", "rationale", "rationale_words", "tokens",
           "input_ids", "attributions", "label", "label_name", "labels", "probs", "extractor", "top_k",
           "truncated", "n_subwords")
FAITHFULNESS_COLUMNS = ("comprehensiveness", "sufficiency")
#: rows a Parquet row group holds
ROW_GROUP = 256


@dataclass(frozen=True)
class BatchInput:
    """One input of the file: its position (``idx``, from 0), its ``id`` (the JSONL's, else the line number)
    and the line it came from."""

    idx: int
    id: str
    line: int
    text: TextInput


@dataclass(frozen=True)
class BatchResult:
    """What :meth:`workbench.explain_service.ExplainService.explain_file` wrote."""

    out: Path
    rows: int
    seconds: float  # explaining and writing, the model load excluded
    load_seconds: float
    extractor: str
    labels: list[str]

    @property
    def examples_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def check_output(out: str | Path, overwrite: bool = False) -> Path:
    """The output path, checked before any work: a ``.jsonl`` / ``.parquet`` name in an existing folder, not an
    existing file unless ``overwrite``."""
    out = Path(out)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UnirexError(f"--out {out}: the output must end in .jsonl or .parquet, not '{out.suffix or out.name}'")
    if out.is_dir():
        raise UnirexError(f"--out {out}: a folder, not a file")
    if not out.parent.is_dir():
        raise UnirexError(f"--out {out}: no folder {out.parent}")
    if out.exists() and not overwrite:
        raise UnirexError(f"--out {out}: the file exists (--overwrite replaces it)")
    return out


def _optional_str(obj: dict, key: str, at: str) -> str:
    v = obj.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise UnirexError(f"{at}: '{key}' must be a string, got {type(v).__name__}")
    return v


def read_inputs(path: str | Path) -> list[BatchInput]:
    """Read and check every input of ``path`` (``.jsonl``: JSON Lines; anything else: one text per line).

    Raises:
        UnirexError: a missing or unreadable file, one with no text, malformed JSON, a line without a
            ``text`` string, a text over the length cap (each naming the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise UnirexError(f"--file {path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise UnirexError(f"--file {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    jsonl = path.suffix.lower() == ".jsonl"
    out: list[BatchInput] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        at = where(path, n)
        if jsonl:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise UnirexError(f"{at}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise UnirexError(f"{at}: a JSON object with a 'text' is expected, got {type(obj).__name__}")
            if not isinstance(obj.get("text"), str):
                raise UnirexError(f"{at}: no 'text' string")
            raw_id = obj.get("id", n)
            if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
                raise UnirexError(f"{at}: 'id' must be a string or an integer")
            second = _optional_str(obj, "second_text", at)
            docs = (obj["text"], second) if second.strip() else (obj["text"],)
            text = TextInput(docs, _optional_str(obj, "query", at))
            ident = str(raw_id)
        else:
            text, ident = TextInput((line,)), str(n)
        try:
            check_text(text.documents, text.query)
        except UnirexError as e:
            raise UnirexError(f"{at}: {e}") from None
        out.append(BatchInput(len(out), ident, n, text))
    if not out:
        raise UnirexError(f"--file {path}: no text to explain (the file is empty)")
    return out


def row(inp: BatchInput, ex: "ExplainedText", faithfulness: bool) -> dict:
    """One output row (:data:`COLUMNS`)."""
    e, s = ex.explanation, ex.subwords
    r = {"idx": inp.idx, "id": inp.id, "words": e.words, "word_document": e.word_document,
         "word_scores": e.word_scores, "rationale": e.rationale,
         "rationale_words": [w for w, k in zip(e.words, e.rationale) if k], "tokens": s.tokens,
         "input_ids": s.input_ids, "attributions": s.scores, "label": int(max(range(len(e.probs)), key=e.probs.__getitem__)),
         "label_name": e.predicted, "labels": e.labels, "probs": e.probs, "extractor": e.extractor,
         "top_k": e.top_k, "truncated": e.truncated, "n_subwords": e.n_subwords}
    if faithfulness:
        r.update(comprehensiveness=e.comprehensiveness, sufficiency=e.sufficiency)
    return r


def _schema(faithfulness: bool):
    import pyarrow as pa

    s, f, b, i = pa.string(), pa.float64(), pa.bool_(), pa.int64()
    fields = [("idx", i), ("id", s), ("words", pa.list_(s)), ("word_document", pa.list_(i)),
              ("word_scores", pa.list_(f)), ("rationale", pa.list_(b)), ("rationale_words", pa.list_(s)),
              ("tokens", pa.list_(s)), ("input_ids", pa.list_(i)), ("attributions", pa.list_(f)), ("label", i),
              ("label_name", s), ("labels", pa.list_(s)), ("probs", pa.list_(f)), ("extractor", s), ("top_k", f),
              ("truncated", b), ("n_subwords", i)]
    if faithfulness:
        fields += [("comprehensiveness", f), ("sufficiency", f)]
    return pa.schema(fields)


def _json_value(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def write_rows(out: Path, rows: Iterable[dict], faithfulness: bool, overwrite: bool = False) -> int:
    """Write ``rows`` to ``out`` (its suffix decides the format) through a temporary file renamed at the end;
    the number written. Nothing is left at ``out`` (nor beside it) when ``rows`` raises part-way."""
    out = check_output(out, overwrite)
    count = 0

    def jsonl(tmp: str) -> None:
        nonlocal count
        with open(tmp, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({k: _json_value(v) for k, v in r.items()}, ensure_ascii=False) + "\n")
                count += 1

    def parquet(tmp: str) -> None:
        nonlocal count
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _schema(faithfulness)
        with pq.ParquetWriter(tmp, schema) as w:
            buf: list[dict] = []
            for r in rows:
                buf.append(r)
                count += 1
                if len(buf) >= ROW_GROUP:
                    w.write_table(pa.Table.from_pylist(buf, schema=schema))
                    buf = []
            if buf or count == 0:
                w.write_table(pa.Table.from_pylist(buf, schema=schema))

    with reporting_disk_full(f"explanations {out.name}", out.parent):
        atomic_write(out, jsonl if out.suffix.lower() == ".jsonl" else parquet)
    return count


def explained_rows(inputs: list[BatchInput], explained: Iterator["ExplainedText"], faithfulness: bool,
                   progress: Callable[[int], None] | None = None) -> Iterator[dict]:
    """Pair each input with its explanation (both in input order) as an output row; ``progress(1)`` after each."""
    for inp, ex in zip(inputs, explained, strict=True):
        yield row(inp, ex, faithfulness)
        if progress is not None:
            progress(1)


__all__ = ["COLUMNS", "FAITHFULNESS_COLUMNS", "OUTPUT_SUFFIXES", "BatchInput", "BatchResult", "check_output",
           "explained_rows", "read_inputs", "row", "write_rows"]
