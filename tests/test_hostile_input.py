"""Hostile and clumsy input to the data layer: paths that try to leave their folder, records of the wrong
type, binary documents, ERASER's word split, huge documents, a user's own data/demo folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli import main
from unirex.data import build_split, ensure_source, load_split
from unirex.data.build import build_dir
from unirex.data.demo import ensure_demo
from unirex.data.download import ensure_downloaded
from unirex.data.eraser import Document, read_split, write_dataset
from unirex.errors import UnirexError
from unirex.safepath import check_folder_name, dataset_path, resolve_inside

DOCS = {"m1": [["a", "truly", "wonderful", "film", "."]], "m2": [["dull", "and", "tedious", "."]]}


def ann(ann_id, label, evidences=(), **extra):
    return {"annotation_id": ann_id, "classification": label, "evidences": [list(g) for g in evidences], **extra}


def ev(docid, s, e, **extra):
    return {"docid": docid, "start_token": s, "end_token": e, **extra}


def small_dataset(root: Path, train=None, docs=None, name="ds") -> Path:
    train = train or [ann("m1", "POS", [[ev("m1", 1, 3)]]), ann("m2", "NEG", [[ev("m2", 0, 1)]])]
    write_dataset(root / name, {"train": train, "val": train[:1], "test": train[:1]}, docs or DOCS)
    return root / name


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 1. paths ------------------------------------------------------------------------------------------


@pytest.fixture
def secret(tmp_path) -> Path:
    """A file outside the data folder that no dataset may read."""
    s = tmp_path / "x" / "secret.txt"
    s.parent.mkdir()
    s.write_text("top secret words\n")
    return s


def _refused_everywhere(data_dir: Path, name: str, secret: Path, match: str, quoted: bool = False) -> None:
    before = tree(data_dir)
    with pytest.raises(UnirexError, match=match) as e:
        build_split(data_dir, name, "train", max_length=32)
    # never the content; never where a path resolved to (only the value as the data wrote it)
    assert "top secret" not in str(e.value) and (quoted or str(secret.resolve()) not in str(e.value))
    assert tree(data_dir) == before  # no cache, nothing written
    assert not list(secret.parent.glob("*.parquet")) and not list(secret.parent.glob("default"))


@pytest.mark.parametrize("how", ["docids", "evidence", "annotation_id"])
@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_docids_that_leave_the_docs_folder_are_refused(tmp_path, secret, how, kind):
    data = tmp_path / "data"
    docid = "../../../../x/secret.txt" if kind == "relative" else str(secret)
    bad = {"docids": ann("bad", "POS", docids=[docid]),
           "evidence": ann("bad", "POS", [[ev(docid, 0, 1)]]),
           "annotation_id": ann(docid, "POS")}[how]
    small_dataset(data, train=[ann("m1", "POS"), bad])
    # relative: ../../../../x from data/ds/docs is tmp_path/../x: make it point at the secret exactly
    if kind == "relative":
        depth = len((data / "ds" / "docs").relative_to(secret.parent.parent).parts)
        docid = "../" * depth + "x/secret.txt"
        bad = json.loads(json.dumps(bad).replace("../../../../x/secret.txt", docid))
        small_dataset(data, train=[ann("m1", "POS"), bad])
        assert (data / "ds" / "docs" / docid).resolve() == secret.resolve()  # the path really reaches it
    _refused_everywhere(data, "ds", secret, "points outside the docs/ folder", quoted=kind == "absolute")


def test_symlinks_out_of_the_dataset_are_refused_and_inside_ones_followed(tmp_path, secret):
    data = tmp_path / "data"
    d = small_dataset(data, train=[ann("m1", "POS"), ann("linked", "NEG")])
    (d / "docs" / "linked").symlink_to(secret)
    _refused_everywhere(data, "ds", secret, "document 'linked'.*points outside")
    (d / "docs" / "linked").unlink()
    (d / "docs" / "linked").symlink_to(d / "docs" / "m2")  # a link that stays inside: fine
    assert [e.documents[0].words for e in read_split(d, "train")][1] == ["dull", "and", "tedious", "."]
    # the docs/ folder itself, a split file, the dataset folder: links out are refused too
    for victim, make in (("docs", lambda p: p.symlink_to(secret.parent, target_is_directory=True)),
                         ("train.jsonl", lambda p: p.symlink_to(secret))):
        saved = tmp_path / "saved"
        os.rename(d / victim, saved)
        make(d / victim)
        with pytest.raises(UnirexError, match="points outside"):
            read_split(d, "train")
        (d / victim).unlink()
        os.rename(saved, d / victim)
    elsewhere = tmp_path / "elsewhere"
    small_dataset(elsewhere)
    (data / "linked_ds").symlink_to(elsewhere / "ds", target_is_directory=True)
    with pytest.raises(UnirexError, match="dataset 'linked_ds' points outside the data folder"):
        build_split(data, "linked_ds", "train", max_length=32)
    assert not (elsewhere / "ds" / "default").exists()


@pytest.mark.parametrize("name", ["../outside", "../../outside", "a/b", "/abs/outside", ".", "..", ".hidden", "x\x00y", ""])
def test_dataset_names_that_are_not_one_folder_are_refused(tmp_path, name):
    data = tmp_path / "ws" / "data"
    data.mkdir(parents=True)
    small_dataset(tmp_path, name="outside")  # what ../outside would reach from a sibling data folder
    small_dataset(tmp_path / "ws", name="outside")
    before = tree(tmp_path)
    for call in (lambda: build_split(data, name, "train", max_length=32), lambda: ensure_source(data, name),
                 lambda: load_split(data, name, "train", max_length=32), lambda: build_dir(data, name, None, 32),
                 lambda: ensure_downloaded(data, name, progress=False), lambda: dataset_path(data, name)):
        with pytest.raises(UnirexError, match="name"):
            call()
    assert tree(tmp_path) == before  # nothing built, downloaded or written anywhere


def test_cli_refuses_an_outside_dataset_with_one_line(tmp_path, capsys):
    small_dataset(tmp_path, name="outside")
    (tmp_path / "data").mkdir()
    code = main(["build-dataset", "--data_dir", str(tmp_path / "data"), "--dataset", "../outside", "--max_length", "32"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: dataset name '../outside' has a path separator") and err.count("\n") == 1
    assert not (tmp_path / "outside" / "default").exists()
    code = main(["build-dataset", "--data_dir", str(tmp_path / "data"), "--dataset", str(tmp_path / "outside")])
    assert code == 2 and not (tmp_path / "outside" / "default").exists()


def test_resolve_inside_and_folder_names():
    root = Path("/srv/data")
    assert resolve_inside(root, "a/b", "x") == Path("/srv/data/a/b").resolve()
    for bad in ("../x", "/etc/hostname", "a/../../x", "a\x00b"):
        with pytest.raises(UnirexError):
            resolve_inside(root, bad, "x")
    assert check_folder_name("movies") == "movies" and check_folder_name("demo.user-20260101") == "demo.user-20260101"


def test_writer_refuses_docids_outside_docs(tmp_path):
    with pytest.raises(UnirexError, match="points outside"):
        write_dataset(tmp_path / "d", {"train": []}, {"../escape": [["x"]]})
    assert not (tmp_path / "d" / "escape").exists()


# --- 5 and 6. types --------------------------------------------------------------------------------------

GOOD = ann("m1", "POS", [[ev("m1", 1, 3)]])


def _with(path: tuple, value):
    obj = json.loads(json.dumps(GOOD))
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    if value is KeyError:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return obj


BAD_RECORDS = [
    (("classification",), 0, "field 'classification' should be a string, got integer 0"),
    (("classification",), {"a": 1}, "field 'classification' should be a string, got an object"),
    (("classification",), ["POS"], "field 'classification' should be a string, got a list of 1"),
    (("classification",), True, "field 'classification' should be a string, got boolean true"),
    (("classification",), 1.5, "field 'classification' should be a string, got number 1.5"),
    (("classification",), "", "field 'classification' is blank"),
    (("classification",), "   ", "field 'classification' is blank"),
    (("classification",), None, "field 'classification' is null"),
    (("classification",), KeyError, "missing field 'classification'"),
    (("annotation_id",), 7, "field 'annotation_id' should be a string, got integer 7"),
    (("annotation_id",), "a\x00b", "field 'annotation_id' contains a NUL character"),
    (("evidences", 0, 0, "start_token"), 1.0, "field 'evidences[0][0].start_token' should be an integer, got number 1.0"),
    (("evidences", 0, 0, "start_token"), 1.9, "field 'evidences[0][0].start_token' should be an integer, got number 1.9"),
    (("evidences", 0, 0, "end_token"), True, "field 'evidences[0][0].end_token' should be an integer, got boolean true"),
    (("evidences", 0, 0, "end_token"), "3", "field 'evidences[0][0].end_token' should be an integer, got string '3'"),
    (("evidences", 0, 0, "start_sentence"), "first", "field 'evidences[0][0].start_sentence' should be an integer"),
    (("evidences", 0, 0, "start_sentence"), 0.5, "field 'evidences[0][0].start_sentence' should be an integer"),
    (("evidences", 0, 0, "docid"), 3, "field 'evidences[0][0].docid' should be a string"),
    (("evidences", 0, 0), 3, "field 'evidences[0][0]' should be an object, got integer 3"),
    (("evidences",), "m1", "field 'evidences' should be a list, got string 'm1'"),
    (("docids",), "m1", "field 'docids' should be a list, got string 'm1'"),
    (("docids",), [1], "field 'docids[0]' should be a string, got integer 1"),
    (("query",), 5, "field 'query' should be a string, got integer 5"),
]


@pytest.mark.parametrize("path,value,message", BAD_RECORDS, ids=[f"{'.'.join(map(str, p))}={v!r}" for p, v, _ in BAD_RECORDS])
def test_wrong_types_are_refused_with_the_field_named(tmp_path, path, value, message):
    d = small_dataset(tmp_path, train=[ann("m2", "NEG"), _with(path, value)])
    with pytest.raises(UnirexError) as e:
        read_split(d, "train")
    assert str(e.value) == f"{d / 'train.jsonl'}:2: {message}" or str(e.value).startswith(f"{d / 'train.jsonl'}:2: {message}")
    assert "\n" not in str(e.value)


def test_labels_0_and_quoted_0_are_not_merged(tmp_path):
    d = small_dataset(tmp_path, train=[ann("m1", "0"), ann("m2", 0)])
    with pytest.raises(UnirexError, match=r"train.jsonl:2: field 'classification' should be a string, got integer 0 "
                                          r"\(labels are strings in ERASER: write \"0\", not 0\)"):
        build_split(tmp_path, "ds", "train", max_length=32)


def test_what_real_eraser_releases_hold_is_accepted(tmp_path):
    """query_type and docids null, evidence text present, sentence offsets -1, null or absent, unknown
    fields, a flat evidence list, and e-SNLI's two documents per annotation in docs.jsonl."""
    d = tmp_path / "esnli"
    d.mkdir()
    docs = {"p1_premise": "a man plays a guitar .", "p1_hypothesis": "a man performs ."}
    (d / "docs.jsonl").write_text("".join(json.dumps({"docid": k, "document": v}) + "\n" for k, v in docs.items()))
    a = {"annotation_id": "p1", "classification": "entailment", "query": "what is the relationship ?",
         "query_type": None, "docids": None, "extra_field": {"kept": "out"},
         "evidences": [[ev("p1_premise", 2, 5, text="plays a guitar", start_sentence=-1, end_sentence=-1)],
                       [ev("p1_hypothesis", 2, 3, text="performs", start_sentence=None)],
                       ev("p1_hypothesis", 0, 2)]}
    for split in ("train", "val", "test"):
        (d / f"{split}.jsonl").write_text(json.dumps(a) + "\n")
    (ex,) = read_split(d, "train")
    assert [doc.docid for doc in ex.documents] == ["p1_premise", "p1_hypothesis"]
    assert ex.gold_word_masks == [[0, 0, 1, 1, 1, 0], [1, 1, 1, 0]]
    assert ex.annotation.all_evidences[1].start_sentence == -1 and ex.annotation.query_type is None


def test_non_integer_start_sentence_is_one_line_and_exit_2(tmp_path):
    """Issue item 5: the command line prints one line naming the file and exits with status 2."""
    small_dataset(tmp_path, train=[ann("m1", "POS", [[ev("m1", 1, 3, start_sentence="zero")]])])
    proc = subprocess.run([sys.executable, "-m", "unirex", "build-dataset", "--data_dir", str(tmp_path), "--dataset",
                           "ds", "--split", "train", "--max_length", "32"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (f"error: {tmp_path / 'ds' / 'train.jsonl'}:1: field 'evidences[0][0].start_sentence' "
                           "should be an integer, got string 'zero'\n")


@pytest.mark.parametrize("where", ["docs", "docs.jsonl"])
def test_documents_of_nul_bytes_are_refused(tmp_path, where):
    d = small_dataset(tmp_path, train=[ann("m1", "POS"), ann("m2", "NEG")])
    if where == "docs":
        (d / "docs" / "m2").write_bytes(b"\x00" * 64)
        match = "document 'm2' contains NUL bytes"
    else:
        for f in (d / "docs").iterdir():
            f.unlink()
        (d / "docs").rmdir()
        (d / "docs.jsonl").write_text(json.dumps({"docid": "m1", "document": "a truly wonderful film ."}) + "\n"
                                      + json.dumps({"docid": "m2", "document": "\x00\x00"}) + "\n")
        match = r"docs.jsonl:2: field 'document' contains a NUL character"
    with pytest.raises(UnirexError, match=match):
        read_split(d, "train")


def test_duplicate_docids_in_docs_jsonl_are_refused(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "docs.jsonl").write_text(json.dumps({"docid": "a", "document": "x"}) + "\n"
                                  + json.dumps({"docid": "a", "document": "y"}) + "\n")
    (d / "train.jsonl").write_text(json.dumps(ann("a", "POS")) + "\n")
    with pytest.raises(UnirexError, match=r"docs.jsonl:2: duplicate docid 'a' \(first on line 1\)"):
        read_split(d, "train")


# --- 6. ERASER's word split -------------------------------------------------------------------------------


def eraser_words(text: str, from_jsonl: bool) -> list[str]:
    """ERASER's rationale_benchmark.utils loaders, restated: docs/ files go through text-mode readlines
    (universal newlines), strip, drop blank lines, split(' '), drop empty pieces; docs.jsonl documents are
    split on '\\n', each line stripped and split(' ') with nothing dropped."""
    if from_jsonl:
        return [w for line in text.split("\n") for w in line.strip().split(" ")]
    lines = [ln.strip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return [w for ln in lines if ln for w in ln.strip().split(" ") if w]


TRICKY = "a\tgood  film\xa0indeed .\r\n\n  the\u2003end \t\nreally\u2028now .\n"


@pytest.mark.parametrize("from_jsonl", [False, True], ids=["docs", "docs.jsonl"])
def test_words_are_split_as_eraser_splits_them(tmp_path, from_jsonl, tiny_arch):
    """Tabs, non-breaking and other Unicode spaces stay inside words; only ' ' separates them. The build's
    word counts and an exported results file then have ERASER's lengths."""
    import numpy as np

    from unirex.evaluate import evaluate, save_outputs
    from unirex.export import export_eraser
    from evalkit import TinyClassifier, ref_verify

    expected = eraser_words(TRICKY, from_jsonl)
    assert "a\tgood" in expected and "film\xa0indeed" in expected and "the\u2003end" in expected
    assert len(expected) != len(TRICKY.split())  # str.split() would count differently
    d = tmp_path / "data" / "ds"
    d.mkdir(parents=True)
    if from_jsonl:
        (d / "docs.jsonl").write_text(json.dumps({"docid": "t", "document": TRICKY}) + "\n"
                                      + json.dumps({"docid": "u", "document": "plain words ."}) + "\n")
    else:
        (d / "docs").mkdir()
        (d / "docs" / "t").write_bytes(TRICKY.encode())
        (d / "docs" / "u").write_text("plain words .\n")
    i = expected.index("film\xa0indeed")
    a = ann("t", "POS", [[ev("t", i, i + 1, text="film\xa0indeed")]])
    (d / "train.jsonl").write_text(json.dumps(a) + "\n" + json.dumps(ann("u", "NEG")) + "\n")
    for split in ("val", "test"):
        (d / f"{split}.jsonl").write_text(json.dumps(a) + "\n")
    (ex,) = read_split(d, "test")
    assert ex.documents[0].words == expected and ex.documents[0].n_words == len(expected)
    assert ex.gold_word_masks[0][i] == 1 and sum(ex.gold_word_masks[0]) == 1
    built = build_split(tmp_path / "data", "ds", "test", max_length=64)
    import polars as pl

    table = pl.read_parquet(built.path)
    assert table["doc_word_counts"].to_list() == [[len(expected)]]

    ds, _ = load_split(tmp_path / "data", "ds", "test", max_length=64)
    scores = [np.arange(len(r), dtype=np.float32) for r in table["input_ids"].to_list()]
    result = evaluate(TinyClassifier(tiny_arch).eval(), ds, scores, batch_size=1, source=built.summary["source"])
    save_outputs(tmp_path / "run", "test", result, built)
    out, _ = export_eraser(tmp_path / "run", "test", tmp_path / "out.jsonl")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines[0]["rationales"][0]["soft_rationale_predictions"]) == len(expected)
    assert ref_verify(lines, {"t": len(expected)}) == []


def test_lazy_word_access_equals_the_full_split():
    from unirex.data import eraser

    text = ("w " * 50 + "x  y\tz " * 20 + "\n\n" + "end of it .\n") * 3
    for from_jsonl in (False, True):
        make = Document.from_jsonl_text if from_jsonl else Document.from_file_text
        full = make("d", text).words
        lazy = make("d", text)
        lazy._chars = eraser.LAZY_WORDS_CHARS + 1  # force the path long documents take
        assert lazy.n_words == len(full)
        for a, b in ((0, 5), (3, 60), (49, 51), (100, 190), (0, len(full)), (len(full) - 3, len(full) + 5)):
            assert lazy.span(a, b) == full[a:b], (from_jsonl, a, b)
        assert lazy.prefix(7) == full[:7]


# --- 10. heavy input ---------------------------------------------------------------------------------------


def test_a_long_one_line_document_costs_little_and_builds_like_a_short_one(tmp_path, bundled_tokenizer):
    """A 2 MB single-line document: only its first words are tokenised, and the built row (ids, word map,
    gold, truncation) is the one the whole document gives."""
    import polars as pl

    from unirex.data.encode import encode_examples as _encode

    words = ["the", "film", "was", "good", "and", "\t", "a", "truly", "wonderful", "story"] * 40_000
    for name, ws in (("long", words), ("short", words[:300])):
        d = tmp_path / name
        (d / "docs").mkdir(parents=True)
        (d / "docs" / "doc").write_text(" ".join(ws) + "\n")
        a = ann("doc", "POS", [[ev("doc", 7, 9, text="truly wonderful")]])
        for split in ("train", "val", "test"):
            (d / f"{split}.jsonl").write_text(json.dumps(a) + "\n")
    long_row = pl.read_parquet(build_split(tmp_path, "long", "train", max_length=64).path).row(0, named=True)
    short_row = pl.read_parquet(build_split(tmp_path, "short", "train", max_length=64).path).row(0, named=True)
    for key in ("input_ids", "word_ids", "rationale", "explainable", "truncated"):
        assert long_row[key] == short_row[key], key
    assert long_row["doc_word_counts"] == [len(words)] and len(long_row["rationale_words"]) == len(words)
    (ex,) = read_split(tmp_path / "long", "train")
    ex.documents[0]._sentences = None
    calls = []
    real = bundled_tokenizer.__class__.__call__

    def counting(self, text, *a, **kw):
        calls.append(sum(len(t) for t in text) if isinstance(text, list) else 0)
        return real(self, text, *a, **kw)

    bundled_tokenizer.__class__.__call__ = counting
    try:
        _encode([ex], bundled_tokenizer, 64)
    finally:
        bundled_tokenizer.__class__.__call__ = real
    assert max(calls) <= 64 * 4  # words handed to the tokenizer: bounded by the input, not the document
    assert ex.documents[0]._sentences is None  # the document was never split whole


CJK = "这部电影非常精彩我很喜欢演员的表演"  # no spaces: one ERASER word however long


@pytest.mark.parametrize("kind", ["one long word", "unspaced CJK"])
def test_a_2mb_single_word_costs_what_the_input_needs_and_counts_as_truncated(tmp_path, bundled_tokenizer, kind):
    """A 2 MB document that is one word (every character its own subword, or CJK without spaces): the
    tokenizer sees a bounded prefix of the word, the Python memory the encoding takes does not grow with
    the word (unbounded it is some 700,000 subwords, over 60 MB of lists), and the row counts as truncated."""
    import tracemalloc

    import polars as pl

    from unirex.data.encode import encode_examples as _encode, word_char_cap

    unit = "a." if kind == "one long word" else CJK
    word = unit * (2_000_000 // len(unit.encode()))
    d = tmp_path / "big"
    (d / "docs").mkdir(parents=True)
    (d / "docs" / "doc").write_text(word + "\n")
    a = ann("doc", "POS", [[ev("doc", 0, 1)]])
    for split in ("train", "val", "test"):
        (d / f"{split}.jsonl").write_text(json.dumps(a) + "\n")
    (ex,) = read_split(d, "train")
    calls = []
    real = bundled_tokenizer.__class__.__call__

    def counting(self, text, *args, **kw):
        calls.append(sum(len(w) for t in text for w in (t if isinstance(t, list) else [t])) if isinstance(text, list) else 0)
        return real(self, text, *args, **kw)

    bundled_tokenizer.__class__.__call__ = counting
    tracemalloc.start()
    try:
        (row,) = _encode([ex], bundled_tokenizer, 64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        bundled_tokenizer.__class__.__call__ = real
    assert max(calls) <= 2 * word_char_cap(64)  # characters handed to the tokenizer: bounded by the input
    assert peak < 8_000_000, peak  # bytes of Python memory: the same for a 2 MB or a 50 MB word
    assert len(row["input_ids"]) == 64 and row["truncated"] and row["rationale"][1] == 1
    assert set(row["word_ids"]) == {-1, 0} and row["doc_word_counts"] == [1]
    built = build_split(tmp_path, "big", "train", max_length=64)
    assert built.summary["truncated"] == 1
    assert pl.read_parquet(built.path)["input_ids"].to_list()[0] == row["input_ids"]


def test_a_word_cut_inside_its_subwords_counts_as_truncated(bundled_tokenizer):
    """Truncation counts lost subwords, not only lost words: a document of one 200-character CJK word
    with max_length 64 is truncated; one of 10 characters is not."""
    from unirex.data.encode import encode_text

    assert encode_text(CJK * 12, bundled_tokenizer, 64)["truncated"]
    assert not encode_text(CJK[:10], bundled_tokenizer, 64)["truncated"]
    assert encode_text(["a film", CJK * 12], bundled_tokenizer, 32)["truncated"]
    assert not encode_text("a good film", bundled_tokenizer, 64)["truncated"]


def test_caps_on_document_and_line_size(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIREX_MAX_DOCUMENT_MB", "0.001")
    monkeypatch.setenv("UNIREX_MAX_LINE_MB", "0.001")
    d = small_dataset(tmp_path, train=[ann("m1", "POS")], docs={"m1": [["word"] * 400]})
    with pytest.raises(UnirexError, match=r"document 'm1' is 0\.0 MiB, over the limit of 0 MiB.*UNIREX_MAX_DOCUMENT_MB"):
        read_split(d, "train")
    (d / "train.jsonl").write_text(json.dumps(ann("m1", "POS", query="q" * 2000)) + "\n")
    with pytest.raises(UnirexError, match=r"train.jsonl:1: line longer than .*UNIREX_MAX_LINE_MB"):
        read_split(d, "train")


# --- 4. data/demo ------------------------------------------------------------------------------------------


def test_a_users_own_data_demo_is_moved_aside_not_deleted(tmp_path, caplog):
    mine = tmp_path / "demo"
    small_dataset(tmp_path, name="demo")
    (mine / "notes.txt").write_text("my own work")
    before = tree(mine)
    ensure_demo(mine, sizes={"train": 8, "val": 4, "test": 4})
    err = caplog.text  # the core logs the warning (the CLI's stderr shows it); it never prints
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("demo.user-")]
    assert len(aside) == 1 and tree(aside[0]) == before  # every byte kept
    assert "was not written by the demo generator" in err and str(aside[0]) in err
    assert (mine / "demo.json").is_file() and len(read_split(mine, "train")) == 8
    caplog.clear()
    ensure_demo(mine, sizes={"train": 8, "val": 4, "test": 4})  # ours now: kept, nothing moved
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("demo.user-")]) == 1
    ensure_demo(mine, sizes={"train": 6, "val": 4, "test": 4})  # ours, other sizes: regenerated in place
    assert len(read_split(mine, "train")) == 6 and caplog.text == ""
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".downloads"]  # only the lock


@pytest.mark.parametrize("name, marker", [("demo", "demo.json"), ("demo_nli", "demo_nli.json")])
def test_an_older_generator_version_with_a_users_file_is_moved_aside_not_regenerated(tmp_path, caplog, name, marker):
    """``data=demo`` over a folder whose marker says generator version 0 (not one this code writes) and
    that holds the user's own files: nothing is deleted; the folder is moved aside and the message says where."""
    data = tmp_path / "data"
    folder = small_dataset(data, name=name)
    (folder / marker).write_text(json.dumps({"generator": "demo_nli", "generator_version": 0} if name == "demo_nli"
                                            else {"generator_version": 0, "sizes": {}, "seed": 0}))
    (folder / "docs" / "mine").write_text("my own document\n")
    before = tree(folder)
    ensure_source(data, name)
    err = caplog.text  # the core logs the warning (the CLI's stderr shows it)
    aside = [p for p in data.iterdir() if p.name.startswith(f"{name}.user-")]
    assert len(aside) == 1 and tree(aside[0]) == before  # the user's file and every other byte kept
    assert (aside[0] / "docs" / "mine").read_text() == "my own document\n"
    assert str(aside[0]) in err and "not of this generator's version" in err
    assert json.loads((folder / marker).read_text())["generator_version"] >= 1  # the demo is written in its place
    caplog.clear()
    ensure_source(data, name)  # ours now: kept, nothing more moved, no message
    assert len([p for p in data.iterdir() if p.name.startswith(f"{name}.user-")]) == 1
    assert caplog.text == ""


def test_tokenising_a_prefix_gives_the_input_the_whole_documents_give(bundled_tokenizer, monkeypatch):
    """The build hands the tokenizer only the words that can reach the input; over random documents
    (one or two, with words that make no subword), queries (none, short, longer than the input: the
    longest_first fallback) and input lengths, every built row equals the one the whole documents give."""
    import random

    from unirex.data import encode
    from unirex.data.eraser import Annotation, Example

    rng = random.Random(1)
    whole = lambda exs, tok, m, sep: [encode._document_words(e, 10 ** 9, sep)[:2] for e in exs]  # noqa: E731
    for _ in range(150):
        docs = []
        for d in range(rng.choice([1, 1, 2])):
            words = [rng.choice(["a", "film", "wonderful", "x", "unbelievably", ".", "\t", "\xa0"])
                     for _ in range(rng.randint(1, 500))]
            docs.append(Document(f"d{d}", [" ".join(words[i:i + 20]) for i in range(0, len(words), 20)]))
        query = " ".join(rng.choice(["what", "is", "the", "question"]) for _ in range(rng.choice([0, 0, 3, rng.randint(1, 150)])))
        ex = Example(Annotation("a", "POS", (), tuple(d.docid for d in docs), query=query), docs,
                     [[rng.randint(0, 1) for _ in range(d.n_words)] for d in docs])
        m = rng.choice([16, 32, 64, 128])
        got = encode.encode_examples([ex], bundled_tokenizer, m)[0]
        with monkeypatch.context() as mp:
            mp.setattr(encode, "_input_words", whole)
            ref = encode.encode_examples([ex], bundled_tokenizer, m)[0]
        assert got == ref, (m, len(query.split()), [d.n_words for d in docs])
