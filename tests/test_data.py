"""ERASER reader, dataset build cache, alignment, demo generator and bad-input handling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from unirex.arch import arch_slug, bundled_minilm_dir, resolve_arch
from cli import main
from unirex.data import build_split, load_split
from unirex.data.align import pool_to_words, words_to_subwords
from unirex.data.build import build_dir
from unirex.data.demo import ensure_demo, generate_demo_splits
from unirex.data.eraser import read_split, write_dataset
from unirex.errors import UnirexError


def ev(docid, start, end, words, sent=0):
    return {"docid": docid, "start_token": start, "end_token": end, "start_sentence": sent,
            "end_sentence": sent + 1, "text": " ".join(words[start:end])}


MOVIE_DOCS = {
    "m1": [["a", "truly", "wonderful", "film", "."], ["the", "ending", "was", "unforgettable", "."]],
    "m2": [["dull", "and", "tedious", "."], ["i", "left", "early", "."]],
    "m3": [["the", "cast", "was", "fine", "."]],
}


def _flat(doc):
    return [w for s in doc for w in s]


def movies_fixture(root: Path) -> Path:
    """A single-document dataset (movies-like) with docs/ files and no docids field."""
    d = root / "movies"
    w1, w2, w3 = (_flat(MOVIE_DOCS[k]) for k in ("m1", "m2", "m3"))
    train = [
        {"annotation_id": "m1", "classification": "POS", "evidences": [[ev("m1", 1, 3, w1)], [ev("m1", 8, 9, w1, 1)]]},
        {"annotation_id": "m2", "classification": "NEG", "evidences": [[ev("m2", 0, 3, w2)]]},
    ]
    val = [{"annotation_id": "m3", "classification": "POS", "evidences": []}]
    test = [{"annotation_id": "m2", "classification": "NEG", "evidences": [[ev("m2", 2, 3, w2)]]}]
    write_dataset(d, {"train": train, "val": val, "test": test}, MOVIE_DOCS)
    return d


def esnli_fixture(root: Path) -> Path:
    """A query task with two documents per annotation (e-SNLI style) in docs.jsonl, split named dev.jsonl."""
    d = root / "esnli"
    d.mkdir(parents=True)
    docs = {
        "p1_premise": "a man plays a guitar on stage .", "p1_hypothesis": "a man is performing music .",
        "p2_premise": "two dogs run in the snow .", "p2_hypothesis": "the dogs are sleeping .",
    }
    with open(d / "docs.jsonl", "w") as f:
        for k, v in docs.items():
            f.write(json.dumps({"docid": k, "document": v}) + "\n")
    q = "what is the relationship between the two sentences ?"
    ann1 = {"annotation_id": "p1", "classification": "entailment", "query": q, "evidences": [
        [ev("p1_premise", 2, 5, docs["p1_premise"].split())], [ev("p1_hypothesis", 3, 5, docs["p1_hypothesis"].split())]]}
    ann2 = {"annotation_id": "p2", "classification": "contradiction", "query": q, "evidences": [
        [ev("p2_hypothesis", 3, 4, docs["p2_hypothesis"].split())]]}
    for name, anns in (("train.jsonl", [ann1, ann2]), ("dev.jsonl", [ann1]), ("test.jsonl", [ann2])):
        (d / name).write_text("".join(json.dumps(a) + "\n" for a in anns))
    return d


# --- reader -------------------------------------------------------------------------------------------


def test_reader_single_document(tmp_path):
    d = movies_fixture(tmp_path)
    train = read_split(d, "train")
    assert [e.annotation.annotation_id for e in train] == ["m1", "m2"]
    assert [doc.docid for doc in train[0].documents] == ["m1"]  # docids absent -> annotation_id
    assert train[0].gold_word_masks == [[0, 1, 1, 0, 0, 0, 0, 0, 1, 0]]
    assert read_split(d, "dev")[0].has_rationale is False  # val.jsonl read as dev


def test_reader_query_two_documents(tmp_path):
    d = esnli_fixture(tmp_path)
    ex = read_split(d, "dev")[0]
    assert [doc.docid for doc in ex.documents] == ["p1_premise", "p1_hypothesis"]
    assert ex.annotation.query.startswith("what is")
    assert ex.gold_word_masks == [[0, 0, 1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0]]


def test_build_query_task_alignment(tmp_path, bundled_tokenizer):
    d = esnli_fixture(tmp_path)
    built = build_split(tmp_path, "esnli", "dev", arch="default", max_length=64)
    row = pl.read_parquet(built.path).row(0, named=True)
    ids, wids, expl = row["input_ids"], row["word_ids"], row["explainable"]
    toks = bundled_tokenizer.convert_ids_to_tokens(ids)
    # [CLS] premise [SEP] hypothesis [SEP] query [SEP]: only the two documents are explainable
    assert toks[0] == "[CLS]" and toks[-1] == "[SEP]"
    assert toks.count("[SEP]") == 3
    explained = [t for t, e in zip(toks, expl) if e]
    assert " ".join(explained) == "a man plays a guitar on stage . a man is performing music ."
    assert all(w == -1 for w, e in zip(wids, expl) if not e)
    assert sorted(set(w for w in wids if w >= 0)) == list(range(14))  # 8 premise + 6 hypothesis words
    assert row["doc_word_counts"] == [8, 6]
    assert row["rationale_words"] == [0, 0, 1, 1, 1, 0, 0, 0] + [0, 0, 0, 1, 1, 0]
    assert sum(row["rationale"]) == 5 and row["token_type_ids"][-2] == 1  # query is segment B
    assert built.summary["labels"] == ["contradiction", "entailment"]
    assert row["label_name"] == "entailment"


def test_alignment_round_trip(small_demo_dir):
    ds, built = load_split(small_demo_dir, "demo", "train", arch="default", max_length=512)
    table = ds.table
    assert built.summary["truncated"] == 0
    for row in table.iter_rows(named=True):
        n = len(row["rationale_words"])
        sub = words_to_subwords(row["rationale_words"], row["word_ids"])
        assert np.array_equal(sub, np.asarray(row["rationale"], dtype=float))
        back = pool_to_words(sub, row["word_ids"], n, reduce="max")
        assert back.tolist() == [float(x) for x in row["rationale_words"]]


def test_truncation_is_counted_and_aligned(small_demo_dir):
    built = build_split(small_demo_dir, "demo", "train", arch="default", max_length=32)
    df = pl.read_parquet(built.path)
    assert built.summary["truncated"] == int(df["truncated"].sum()) > 0
    assert df["input_ids"].list.len().max() <= 32
    row = df.filter(pl.col("truncated")).row(0, named=True)
    assert max(row["word_ids"]) < len(row["rationale_words"]) - 1


def test_subsample_deterministic(small_demo_dir):
    a = build_split(small_demo_dir, "demo", "train", arch="default", max_length=128, num_train=20, num_train_seed=3)
    b = build_split(small_demo_dir, "demo", "train", arch="default", max_length=128, num_train=20, num_train_seed=3, force=True)
    c = build_split(small_demo_dir, "demo", "train", arch="default", max_length=128, num_train=20, num_train_seed=4)
    ids = lambda x: pl.read_parquet(x.path)["annotation_id"].to_list()  # noqa: E731
    assert ids(a) == ids(b) and len(ids(a)) == 20
    assert ids(a) != ids(c)
    assert a.path.name == "train_n20_s3.parquet"


def test_cache_hit_and_invalidation(tmp_path):
    movies_fixture(tmp_path)
    first = build_split(tmp_path, "movies", "train", arch="default", max_length=64)
    again = build_split(tmp_path, "movies", "train", arch="default", max_length=64)
    assert not first.cache_hit and again.cache_hit
    assert again.summary["fingerprint"] == first.summary["fingerprint"]
    # a changed source is not a cache hit
    src = tmp_path / "movies" / "train.jsonl"
    src.write_text(src.read_text().replace('"POS"', '"POS" ', 1))
    assert not build_split(tmp_path, "movies", "train", arch="default", max_length=64).cache_hit


def test_demo_generator_is_deterministic_and_valid(tmp_path):
    s1, d1 = generate_demo_splits({"train": 50, "val": 10, "test": 10}, seed=0)
    s2, d2 = generate_demo_splits({"train": 50, "val": 10, "test": 10}, seed=0)
    assert s1 == s2 and d1 == d2
    ensure_demo(tmp_path / "demo", sizes={"train": 50, "val": 10, "test": 10})
    examples = read_split(tmp_path / "demo", "train")  # validates evidence offsets and text
    labels = [e.annotation.classification for e in examples]
    assert set(labels) == {"POS", "NEG"}
    spans = [e.end_token - e.start_token for ex in examples for e in ex.annotation.all_evidences]
    assert max(spans) >= 2  # negations / intensifiers make multi-token rationales
    words = {w for doc in d1.values() for s in doc for w in s}
    assert {"not", "but", "although"} <= words
    # every example has a rationale, and it is a small part of the review
    cov = [sum(m) / len(m) for ex in examples for m in ex.gold_word_masks]
    assert all(0 < c < 0.5 for c in cov)


def test_demo_reviews_read_as_typed_with_deciding_words_as_gold(tmp_path):
    """Demo v2: mostly short reviews, punctuation attached as typed, negations and contrasts; the same on
    another hash seed; every evidence is the deciding words of a support sentence (never a filler)."""
    import random

    from unirex.data import demo

    sizes = {"train": 300, "val": 10, "test": 10}
    splits, docs = generate_demo_splits(sizes, seed=0)
    code = ("import json, sys; from unirex.data.demo import generate_demo_splits; "
            f"json.dump(generate_demo_splits({sizes!r}, seed=0), sys.stdout)")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**__import__("os").environ, "PYTHONHASHSEED": "123"}).stdout
    assert json.loads(other) == json.loads(json.dumps([splits, docs]))  # deterministic across processes
    assert generate_demo_splits(sizes, seed=1) != (splits, docs)
    ensure_demo(tmp_path / "demo", sizes=sizes)
    examples = read_split(tmp_path / "demo", "train")  # validates evidence offsets and text
    lengths = sorted(sum(len(s) for s in d) for d in docs.values())
    assert lengths[len(lengths) // 2] <= 25 and lengths[-1] >= 50  # mostly short, some long
    words = [w for d in docs.values() for s in d for w in s]
    assert any(w.endswith("!") and len(w) > 1 for w in words) and any(w.endswith(",") and len(w) > 1 for w in words)
    assert "." in words  # some reviews keep the ERASER corpora's spaced punctuation
    assert {"never", "didn't", "but", "although", "yet"} <= {w.lower().strip(".,!") for w in words}
    fillers = set()
    rng = random.Random(0)
    for _ in range(2000):
        fillers.add(" ".join(demo._filler(rng)).lower())
    for ex in examples:
        doc = [w for s in docs[ex.annotation.annotation_id] for w in s]
        for ev in ex.annotation.all_evidences:
            assert ev.text == " ".join(doc[ev.start_token:ev.end_token]) and ev.end_token > ev.start_token
            sent = docs[ex.annotation.annotation_id][ev.start_sentence]
            assert " ".join(w.rstrip(".,!").lower() for w in sent if w != ".") not in fillers  # a support sentence
    cov = [sum(m) / len(m) for ex in examples for m in ex.gold_word_masks]
    assert all(0 < c < 0.5 for c in cov)
    assert demo.GENERATOR_VERSION == 2


def test_arch_default_resolves_offline():
    path = Path(resolve_arch("default"))
    assert path == bundled_minilm_dir() and (path / "config.json").is_file()
    assert resolve_arch(None) == resolve_arch("default")
    assert resolve_arch("google/bigbird-roberta-base") == "google/bigbird-roberta-base"
    assert arch_slug("google/bigbird-roberta-base") == "google--bigbird-roberta-base"
    assert arch_slug(None) == "default"


# --- bad input ----------------------------------------------------------------------------------------


def _corrupt(d: Path, kind: str) -> str:
    """Damage a good movies fixture; return a fragment the error message must contain."""
    if kind == "malformed_json":
        (d / "train.jsonl").write_text((d / "train.jsonl").read_text() + '{"annotation_id": "x", \n')
        return "train.jsonl:3: malformed JSON"
    if kind == "missing_document":
        (d / "docs" / "m2").unlink()
        return "document 'm2' not found"
    if kind == "offsets_outside":
        lines = (d / "train.jsonl").read_text().splitlines()
        ann = json.loads(lines[1])
        ann["evidences"][0][0].update(start_token=2, end_token=40, text="")
        (d / "train.jsonl").write_text(lines[0] + "\n" + json.dumps(ann) + "\n")
        return "train.jsonl:2: evidence tokens [2, 40) are outside document 'm2' (8 tokens)"
    if kind == "text_mismatch":
        (d / "train.jsonl").write_text((d / "train.jsonl").read_text().replace("truly wonderful", "truly awful"))
        return "train.jsonl:1: evidence text 'truly awful' does not match"
    if kind == "unknown_label":
        (d / "test.jsonl").write_text((d / "test.jsonl").read_text().replace('"NEG"', '"MIXED"'))
        return "test.jsonl:1: unknown label 'MIXED'"
    if kind == "empty_document":
        (d / "docs" / "m2").write_text("\n  \n")
        return "document 'm2' is empty"
    if kind == "not_utf8":
        (d / "docs" / "m1").write_bytes("a truly wonderful film .\n".encode() + b"caf\xe9 .\n")
        return "m1:2: not UTF-8"
    raise AssertionError(kind)


BAD_INPUTS = ["malformed_json", "missing_document", "offsets_outside", "text_mismatch", "unknown_label",
              "empty_document", "not_utf8"]


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_clear_error_and_cache_intact(tmp_path, capsys, kind):
    d = movies_fixture(tmp_path)
    split = "test" if kind == "unknown_label" else "train"
    args = ["build-dataset", "--data_dir", str(tmp_path), "--dataset", "movies", "--split", split, "--max_length", "64"]
    assert main(args) == 0  # a good build first
    out_dir = build_dir(tmp_path, "movies", "default", 64)
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    capsys.readouterr()

    expected = _corrupt(d, kind)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err, err
    assert "Traceback" not in err
    after = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    assert after == before  # the previous cache is untouched, no partial or temporary file left


def test_bad_arch_is_a_clear_error(tmp_path, capsys):
    movies_fixture(tmp_path)
    code = main(["build-dataset", "--data_dir", str(tmp_path), "--dataset", "movies", "--arch", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot load the tokenizer of arch" in err and "nope" in err
    assert not (tmp_path / "movies" / "nope").exists()


def test_missing_dataset_and_split_are_clear_errors(tmp_path):
    with pytest.raises(UnirexError, match="does not exist"):
        build_split(tmp_path, "absent", "train")
    d = movies_fixture(tmp_path)
    (d / "test.jsonl").unlink()
    with pytest.raises(UnirexError, match="no test.jsonl"):
        build_split(tmp_path, "movies", "test", max_length=64)
    with pytest.raises(UnirexError, match="out of range"):
        build_split(tmp_path, "movies", "train", max_length=64, num_train=10)


def test_cli_subprocess_no_traceback(tmp_path):
    """The real command line, as a user runs it: one message, non-zero exit, no traceback."""
    d = movies_fixture(tmp_path)
    (d / "train.jsonl").write_text("{not json\n")
    proc = subprocess.run([sys.executable, "-m", "unirex", "build-dataset", "--data_dir", str(tmp_path),
                           "--dataset", "movies", "--split", "train"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "train.jsonl:1: malformed JSON" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "movies" / "default").exists()
