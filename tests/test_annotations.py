"""Human rationale sets: a hand-made Label Studio export with two annotators (agreement computed by hand),
every edge case of the import, append-only versions, ERASER and Label Studio round trips, merging into a
new dataset, and the ``annotations`` CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli import main as cli_main
from unirex.data.agreement import agreement, kappa
from unirex.data.annotations import (HumanAnnotation, export_eraser, load_set, merge_into_train, read_eraser,
                                     save_annotations, versions, word_offsets, words_item)
from unirex.data.eraser import read_split
from unirex.data.label_studio import label_studio_tasks, read_label_studio
from unirex.errors import UnirexError


def _span(start, end, label="Rationale"):
    return {"type": "labels", "from_name": "rationale", "to_name": "text",
            "value": {"start": start, "end": end, "labels": [label]}}


def _choice(label):
    return {"type": "choices", "from_name": "label", "to_name": "text", "value": {"choices": [label]}}


T1 = "the acting was not bad at all"  # words: the(0) acting(1) was(2) not(3) bad(4) at(5) all(6)
T2 = "a dull and tedious film"  # words: a(0) dull(1) and(2) tedious(3) film(4)

# Two annotators on two tasks:
#   task 1: ana marks "not bad" [15, 22) -> words 3, 4; bob marks [20, 22) = "ad", which cuts "bad" -> word 4
#   task 2: ana marks "dull" [2, 6) and "dull and tedious" [2, 18) (overlapping: merged) -> words 1, 2, 3;
#           bob (completed_by 7 -> "user 7") marks "tedious" [11, 18) -> word 3
# Per example (Cohen's kappa = (p_o - p_e) / (1 - p_e), p_e = p_a p_b + (1 - p_a)(1 - p_b)):
#   task 1: ana 0001100, bob 0000100: p_o = 6/7, p_a = 2/7, p_b = 1/7, p_e = 2/49 + 30/49 = 32/49,
#           kappa = (42/49 - 32/49) / (17/49) = 10/17; F1 = 2*1 / (2 + 1) = 2/3
#   task 2: ana 01110, bob 00010: p_o = 3/5, p_a = 3/5, p_b = 1/5, p_e = 3/25 + 8/25 = 11/25,
#           kappa = (15/25 - 11/25) / (14/25) = 2/7; F1 = 2*1 / (3 + 1) = 1/2   -> most disagreement: listed first
# Overall (the pair's 12 words pooled): ana 0001100 01110, bob 0000100 00010: p_o = 9/12, p_a = 5/12,
#   p_b = 2/12, p_e = 10/144 + 70/144 = 5/9, kappa = (3/4 - 5/9) / (4/9) = 7/16; F1 = 2*2 / (5 + 2) = 4/7
TWO_ANNOTATORS = [
    {"id": 1, "data": {"text": T1}, "annotations": [
        {"completed_by": "ana", "created_at": "2026-01-02T10:00:00Z", "result": [_span(15, 22), _choice("POS")]},
        {"completed_by": {"id": 7, "email": "bob@example.org"}, "result": [_span(20, 22), _choice("POS")]}]},
    {"id": 2, "data": {"text": T2}, "annotations": [
        {"completed_by": "ana", "result": [_span(2, 6), _span(2, 18), _choice("NEG")]},
        {"completed_by": "bob@example.org", "result": [_span(11, 18), _choice("NEG")]}]},
]


def _write(tmp_path: Path, tasks, name="ls.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(tasks))
    return p


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_annotators_agreement_by_hand(tmp_path):
    report = read_label_studio(_write(tmp_path, TWO_ANNOTATORS))
    assert report.annotators == ("ana", "bob@example.org") and len(report.annotations) == 4
    notes = "\n".join(report.notes)
    assert "task 1: bob@example.org's span [20, 22) 'ad' cuts a word: took the whole words 'bad'" in notes
    assert "task 2: ana's spans [2, 6) and [2, 18) overlap: merged" in notes
    masks = {(a.item.example_id, a.annotator): a.rationale for a in report.annotations}
    assert masks[("ls-1", "ana")] == (0, 0, 0, 1, 1, 0, 0)
    assert masks[("ls-2", "ana")] == (0, 1, 1, 1, 0)
    res = save_annotations(tmp_path, "hum", list(report.annotations))
    ag = agreement(load_set(tmp_path, "hum"))
    assert ag.n_examples == 2 and ag.annotators == ("ana", "bob@example.org")
    assert ag.kappa == pytest.approx(7 / 16) and ag.f1 == pytest.approx(4 / 7)
    assert [e.example_id for e in ag.examples] == ["ls-2", "ls-1"]  # most disagreement first
    assert ag.examples[0].kappa == pytest.approx(2 / 7) and ag.examples[0].f1 == pytest.approx(1 / 2)
    assert ag.examples[1].kappa == pytest.approx(10 / 17) and ag.examples[1].f1 == pytest.approx(2 / 3)
    assert kappa(masks[("ls-2", "ana")], masks[("ls-2", "bob@example.org")]) == pytest.approx(2 / 7)
    assert kappa((0, 0, 0), (0, 0, 0)) == 1.0  # chance agreement is total: they agree on every word
    # the set is an ERASER dataset: its evidences read back as the annotators' words
    train = read_split(tmp_path / "hum", "train")
    assert {e.annotation.annotation_id for e in train} == {"ls-1~ana", "ls-1~bob@example.org", "ls-2~ana",
                                                           "ls-2~bob@example.org"}
    by_id = {e.annotation.annotation_id: e for e in train}
    assert by_id["ls-2~ana"].gold_word_masks == [[0, 1, 1, 1, 0]]
    assert by_id["ls-1~ana"].annotation.classification == "POS"
    assert res.mirrored == ("dev", "test") and len(read_split(tmp_path / "hum", "test")) == 4
    recs = [json.loads(x) for x in (tmp_path / "hum" / "annotations.jsonl").read_text().splitlines()]
    assert {r["annotator"] for r in recs} == {"ana", "bob@example.org"}
    assert all(r["annotated_at"] for r in recs) and recs[0]["annotated_at"] == "2026-01-02T10:00:00Z"


@pytest.mark.parametrize("task, message", [
    ({"id": 5, "data": {"text": T1}, "annotations": [{"completed_by": "ana", "result": [_span(0, 3)]}]},
     "task 5: ana's annotation has no class label"),
    ({"id": 6, "data": {"text": T1}, "annotations": [{"completed_by": "ana", "result": [_span(0, 3, "Person"),
                                                                                         _choice("POS")]}]},
     "task 6: ana's span label ['Person'] is not a rationale label (Rationale)"),
    ({"id": 7, "data": {"text": T1}, "annotations": [{"completed_by": "ana", "result": [_span(20, 99),
                                                                                         _choice("POS")]}]},
     "task 7: ana's span [20, 99) is past the end of the text (29 characters)"),
    ({"id": 8, "data": {"text": T1}, "annotations": [{"completed_by": "ana", "result": [_span(9, 4),
                                                                                         _choice("POS")]}]},
     "task 8: ana's span [9, 4) is empty or reversed"),
    ({"id": 9, "data": {"text": T1}, "annotations": [{"completed_by": "ana", "result": [_choice("MAYBE")]}]},
     "task 9: ana's class label 'MAYBE' is not one of NEG, POS"),
    ({"id": 10, "data": {"text": T1}, "annotations": [{"completed_by": "ana", "result": [_choice("POS"),
                                                                                          _choice("NEG")]}]},
     "task 10: ana's annotation has 2 class labels"),
    ({"id": 11, "data": {"body": T1}, "annotations": []}, "task 11: no text in data.text"),
    ({"id": 12, "data": {"text": T1}, "annotations": [{"completed_by": "ana", "result": [
        {"type": "labels", "value": {"start": 1.5, "end": 3, "labels": ["Rationale"]}}, _choice("POS")]}]},
     "task 12: field 'annotations[0].result[0].value.start' should be an integer"),
    ({"id": 13, "data": {"text": T1, "documents": [{"start": "0", "end": 3}]}, "annotations": []},
     "task 13: data: field 'documents[0].start' should be an integer"),
    ({"id": 14, "data": {"text": T1, "documents": [{"start": 0, "end": 10}, {"start": 5, "end": 29}]},
      "annotations": []}, "task 14: data.documents[1] [5, 29) overlaps the document before it"),
])
def test_import_refuses_with_the_task_named_and_writes_nothing(tmp_path, capsys, task, message):
    ws = tmp_path / "ws"
    path = _write(tmp_path, [TWO_ANNOTATORS[0], task])
    with pytest.raises(UnirexError, match=None) as e:
        read_label_studio(path, class_labels=("NEG", "POS"))
    assert message in str(e.value)
    rc = cli_main(["--workspace", str(ws), "annotations", "import", "--label-studio", str(path), "--name", "hum",
                   "--labels", "NEG,POS"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1  # one line
    assert not (ws / "data" / "hum").exists()  # nothing half written


def test_import_handles_and_reports_empty_results_and_blank_spans(tmp_path):
    tasks = [{"id": 3, "data": {"text": "  good\n\n  film  "}, "annotations": [
        {"completed_by": "ana", "result": []},
        {"completed_by": "bob", "was_cancelled": True, "result": [_choice("POS")]},
        {"completed_by": "cy", "result": [_span(0, 2), _span(2, 6), _choice("POS")]},
        {"completed_by": "cy", "result": [_span(2, 6), _span(9, 13), _choice("NEG")]}]},
        {"id": 4, "data": {"text": "no one annotated this"}, "annotations": []}]
    r = read_label_studio(_write(tmp_path, tasks))
    notes = "\n".join(r.notes)
    assert "task 3: ana's annotation has an empty result: skipped" in notes
    assert "task 3: bob's annotation was cancelled: skipped" in notes
    assert "task 3: cy's span [0, 2) covers no word (blanks only): nothing marked" in notes
    assert "task 3: cy annotated it twice: the later annotation is kept" in notes
    assert "task 4: no annotation: skipped" in notes
    assert r.n_skipped == 3 and len(r.annotations) == 1
    (a,) = r.annotations
    # two lines (ERASER's docs/ rule: stripped, blank lines dropped): "good" / "film"
    assert a.item.documents == ((("good",), ("film",)),) and a.rationale == (True, True) and a.label == "NEG"
    with pytest.raises(UnirexError, match="no annotation to import"):
        read_label_studio(_write(tmp_path, [tasks[1]], "none.json"))


def test_word_offsets_follow_the_eraser_reader(tmp_path):
    from unirex.data.eraser import Document

    text = " a  b\tc \r\n\r\n d\re \n"
    words = [w for line in word_offsets(text) for w in line]
    assert [w for w, _, _ in words] == Document.from_file_text("x", text).words == ["a", "b\tc", "d", "e"]
    assert all(text[s:e] == w for w, s, e in words)


def _ann(words, mask, annotator, label="POS", split="train"):
    return HumanAnnotation(words_item(words), label, tuple(mask), annotator, "", split, "test")


def test_versions_are_append_only(tmp_path):
    w = ["a", "good", "film"]
    first = save_annotations(tmp_path, "s", [_ann(w, [0, 1, 0], "ana")])
    v1 = first.path
    before = _files(v1)
    assert first.version == 1 and "annotations.jsonl" in before and "docs/" + words_item(w).example_id in before
    second = save_annotations(tmp_path, "s", [_ann(w, [0, 1, 1], "ana"), _ann(["a", "bad", "one"], [0, 1, 0], "bob",
                                                                                "NEG")])
    assert second.version == 2 and second.n_replaced == 1 and second.n_added == 1 and second.n_annotations == 2
    assert _files(v1) == before  # the first version's bytes are untouched
    assert versions(tmp_path, "s") == [1, 2]
    assert load_set(tmp_path, "s", 1).annotations[0].rationale == (False, True, False)
    latest = load_set(tmp_path, "s")
    assert latest.version == 2 and {a.annotator for a in latest.annotations} == {"ana", "bob"}
    top = tmp_path / "s"
    assert (top / "train.jsonl").read_bytes() == (second.path / "train.jsonl").read_bytes()
    assert json.loads((top / "annotation_set.json").read_text())["version"] == 2
    # a top-level copy left behind (a crash after the version was written) is repaired on the next load
    (top / "annotation_set.json").write_text(json.dumps({"version": 1}))
    (top / "train.jsonl").write_text("")
    load_set(tmp_path, "s")
    assert (top / "train.jsonl").read_bytes() == (second.path / "train.jsonl").read_bytes()
    # an example keeps its split; a dataset that is not a set is refused; the text of an id cannot change
    third = save_annotations(tmp_path, "s", [_ann(w, [1, 0, 0], "cy", split="test")])
    assert "stays there, not test" in " ".join(third.notes)
    (tmp_path / "plain").mkdir()
    with pytest.raises(UnirexError, match="'plain' exists and is not an annotation set"):
        save_annotations(tmp_path, "plain", [_ann(w, [1, 0, 0], "ana")])
    with pytest.raises(UnirexError, match="no class label"):
        save_annotations(tmp_path, "s", [_ann(w, [1, 0, 0], "ana", label=" ")])
    with pytest.raises(UnirexError, match="annotator's name is empty"):
        save_annotations(tmp_path, "s", [_ann(w, [1, 0, 0], "  ")])
    assert versions(tmp_path, "s") == [1, 2, 3]


def test_label_studio_and_eraser_round_trips(tmp_path):
    save_annotations(tmp_path, "hum", list(read_label_studio(_write(tmp_path, TWO_ANNOTATORS)).annotations))
    s = load_set(tmp_path, "hum")
    key = lambda a: (a.item.example_id, a.annotator)  # noqa: E731
    back = read_label_studio(_write(tmp_path, label_studio_tasks(s), "out.json"))
    assert not back.notes  # whole words, no overlap: nothing to report
    assert sorted((key(a), a.label, a.rationale, a.annotated_at) for a in back.annotations) == \
        sorted((key(a), a.label, a.rationale, a.annotated_at) for a in s.annotations)
    out = export_eraser(tmp_path, "hum", tmp_path / "exported")
    assert sorted(map(key, read_eraser(out))) == sorted(map(key, s.annotations))
    with pytest.raises(UnirexError, match="exists"):
        export_eraser(tmp_path, "hum", out)
    # a plain ERASER folder (no annotations.jsonl): every line is the given annotator's, in its split
    plain = tmp_path / "plain"
    plain.mkdir()
    for f in ("docs", "train.jsonl", "val.jsonl", "test.jsonl"):
        src = s.path / f
        (plain / f).mkdir() if src.is_dir() else (plain / f).write_bytes(src.read_bytes())
    for p in (s.path / "docs").iterdir():
        (plain / "docs" / p.name).write_bytes(p.read_bytes())
    got = read_eraser(plain, annotator="gold")
    assert {a.annotator for a in got} == {"gold"} and len(got) == 12  # 4 lines in each of the three splits


def test_merge_makes_a_new_dataset(tmp_path, small_demo_dir):
    import shutil

    shutil.copytree(small_demo_dir / "demo", tmp_path / "demo")
    base_before = _files(tmp_path / "demo")
    save_annotations(tmp_path, "hum", list(read_label_studio(_write(tmp_path, TWO_ANNOTATORS)).annotations))
    r = merge_into_train(tmp_path, "hum", "demo", "demo_hum")
    assert r.n_added == 4 and r.n_train == 64 + 4
    assert _files(tmp_path / "demo") == base_before  # the base is never changed
    train = read_split(tmp_path / "demo_hum", "train")
    merged = [e for e in train if e.annotation.annotation_id.startswith("hum.")]
    assert len(merged) == 4 and merged[0].documents[0].docid.startswith("hum.ls-")
    assert len(read_split(tmp_path / "demo_hum", "test")) == 32
    with pytest.raises(UnirexError, match="exists: merging makes a new dataset"):
        merge_into_train(tmp_path, "hum", "demo", "demo_hum")
    save_annotations(tmp_path, "odd", [_ann(["x", "y"], [1, 0], "ana", label="MAYBE")])
    with pytest.raises(UnirexError, match=r"labels \['MAYBE'\] that 'demo' does not have"):
        merge_into_train(tmp_path, "odd", "demo", "demo_odd")
    assert not (tmp_path / "demo_odd").exists()


def test_cli_import_agreement_export(tmp_path, capsys):
    ws = ["--workspace", str(tmp_path / "ws")]
    path = _write(tmp_path, TWO_ANNOTATORS)
    assert cli_main([*ws, "annotations", "import", "--label-studio", str(path), "--name", "hum"]) == 0
    out = capsys.readouterr().out
    assert "read 2 tasks: 4 annotations by 2 annotators, 0 skipped" in out and "hum: version 1" in out
    assert "cuts a word" in out
    assert cli_main([*ws, "annotations", "agreement", "hum", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["kappa"] == pytest.approx(7 / 16) and got["f1"] == pytest.approx(4 / 7)
    assert got["n_examples"] == 2 and got["annotators"] == ["ana", "bob@example.org"]
    assert cli_main([*ws, "annotations", "agreement", "hum"]) == 0
    text = capsys.readouterr().out
    assert "kappa 0.438" in text and text.index("ls-2:") < text.index("ls-1:")
    out_file = tmp_path / "back.json"
    assert cli_main([*ws, "annotations", "export", "--name", "hum", "--label-studio", str(out_file)]) == 0
    assert "wrote 2 Label Studio tasks" in capsys.readouterr().out
    assert len(json.loads(out_file.read_text())[0]["annotations"]) == 2
    assert cli_main([*ws, "annotations", "export", "--name", "hum", "--label-studio", str(out_file)]) == 2
    assert "exists" in capsys.readouterr().err
    assert cli_main([*ws, "annotations", "agreement", "nosuch"]) == 2
    assert "annotation set 'nosuch' does not exist" in capsys.readouterr().err


def test_annotate_panel_on_a_typed_text_without_a_checkpoint(tmp_path):
    """The Explain tab's panel without a checkpoint: the typed text's words (ERASER's split), a span marked,
    saved with the annotator's name; the set's labels are offered next time; user text stays text."""
    import gradio as gr

    from ui.annotate import AnnotateHandlers, agreement_md
    from workbench import Workbench

    wb = Workbench(tmp_path)
    h = AnnotateHandlers(wb)
    state, info, words, _, _ = h.on_load_explain(None, "own", "a <b>dull</b>  film\nreally", "", "", 10, None, "notes")
    assert words["choices"] == [("a", 0), ("<b>dull</b>", 1), ("film", 2), ("really", 3)] and "4 words" in info
    marked, preview = h.on_span(state, [0], 3, 2, True)
    assert marked == [0, 1, 2] and preview[0] == ("a <b>dull</b> film ", "rationale")
    assert h.on_span(state, marked, 1, 1, False)[0] == [1, 2]
    with pytest.raises(gr.Error, match="Type your name"):
        h.on_save(state, [1, 2], "NEG", "notes", " ", "train")
    msg, _ = h.on_save(state, [1, 2], "NEG", "notes", "ana <i>", "train")
    assert "version **1**" in msg and "by `ana <i>`" in msg  # the name is shown as code: text, not markup
    (a,) = wb.annotations.load("notes").annotations
    assert a.rationale == (False, True, True, False) and a.annotator == "ana <i>" and a.source == "typed text"
    assert h.on_load_explain(None, "own", "another text", "", "", 10, None, "notes")[3]["choices"] == ["NEG"]
    assert "no example has two annotators" in agreement_md("notes", wb.annotations.agreement("notes"))


def test_a_version_left_half_built_is_never_a_version(tmp_path):
    """A save killed while writing leaves a hidden temporary folder: not a version, removed by the next save."""
    import os

    from unirex.fsutil import host_tag

    w = ["a", "good", "film"]
    save_annotations(tmp_path, "s", [_ann(w, [0, 1, 0], "ana")])
    dead = tmp_path / "s" / "versions" / f".v0002-tmp-{host_tag()}-{2 ** 22 + os.getpid()}-x"
    dead.mkdir()
    (dead / "annotations.jsonl").write_text("half")
    assert versions(tmp_path, "s") == [1] and load_set(tmp_path, "s").version == 1
    assert save_annotations(tmp_path, "s", [_ann(w, [1, 1, 0], "bob")]).version == 2
    assert not dead.exists() and versions(tmp_path, "s") == [1, 2]


def test_cli_eraser_export_import_list_and_merge(tmp_path, capsys, small_demo_dir):
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(small_demo_dir / "demo", ws / "data" / "demo")
    args = ["--workspace", str(ws), "annotations"]
    assert cli_main([*args, "import", "--label-studio", str(_write(tmp_path, TWO_ANNOTATORS)), "--name", "hum"]) == 0
    assert cli_main([*args, "export", "--name", "hum", "--eraser", str(tmp_path / "out")]) == 0
    assert cli_main([*args, "import", "--eraser", str(tmp_path / "out"), "--name", "copy"]) == 0
    assert "4 annotations of 2 examples by 2 annotators (ana, bob@example.org)" in capsys.readouterr().out
    assert cli_main([*args, "list"]) == 0
    assert "copy: version 1, 4 annotations of 2 examples" in capsys.readouterr().out
    assert cli_main([*args, "merge", "--name", "hum", "--into", "demo", "--out", "demo_hum"]) == 0
    assert "68 train examples" in capsys.readouterr().out
    assert cli_main([*args, "merge", "--name", "hum", "--into", "demo", "--out", "demo_hum"]) == 2
    assert cli_main([*args, "import", "--name", "x"]) == 2
    assert "give one of --label-studio FILE or --eraser FOLDER" in capsys.readouterr().err


def _two_document_set(tmp_path):
    """Two NLI examples of two documents each (the premise of the first has two sentences), two annotators."""
    from unirex.data.annotations import AnnotatedText

    premise = (("a", "man", "plays", "a", "guitar"), ("on", "a", "stage"))
    ex1 = AnnotatedText("nli-1", (premise, (("a", "man", "performs"),)), "")
    ex2 = AnnotatedText("nli-2", (((("two", "dogs", "run")),), (("animals", "are", "asleep"),)), "")
    # ex1 (8 + 3 words): ana marks "plays a guitar" (doc 0) and "performs" (doc 1); bob "stage" and "a man"
    anns = [HumanAnnotation(ex1, "entailment", tuple(i in (2, 3, 4, 10) for i in range(11)), "ana",
                            "2026-01-02T10:00:00+00:00", "train", "hand"),
            HumanAnnotation(ex1, "entailment", tuple(i in (7, 8, 9) for i in range(11)), "bob",
                            "2026-01-03T10:00:00+00:00", "train", "hand"),
            HumanAnnotation(ex2, "contradiction", tuple(i in (2, 5) for i in range(6)), "ana",
                            "2026-01-04T10:00:00+00:00", "train", "hand")]
    save_annotations(tmp_path, "nli", anns)
    return load_set(tmp_path, "nli")


def _records(folder: Path) -> list[dict]:
    keep = ("example_id", "docids", "query", "label", "evidences", "annotator", "annotated_at")
    rows = [json.loads(x) for x in (folder / "annotations.jsonl").read_text().splitlines()]
    return sorted(({k: r[k] for k in keep} for r in rows), key=lambda r: (r["example_id"], r["annotator"]))


def test_label_studio_round_trip_of_two_document_examples(tmp_path):
    s = _two_document_set(tmp_path)
    tasks = label_studio_tasks(s)
    t1 = next(t for t in tasks if t["data"]["example_id"] == "nli-1")
    text = t1["data"]["text"]
    assert text == "a man plays a guitar\non a stage\n\na man performs"  # what the annotator reads: one text
    assert t1["data"]["documents"] == [{"docid": "nli-1_d0", "start": 0, "end": 31},
                                       {"docid": "nli-1_d1", "start": 33, "end": 47}]
    back = read_label_studio(_write(tmp_path, tasks, "nli.json"))
    assert not back.notes
    key = lambda a: (a.item.example_id, a.annotator)  # noqa: E731
    got = sorted(((key(a), a.item, a.item.docids, a.spans(), a.label, a.annotated_at) for a in back.annotations))
    want = sorted(((key(a), a.item, a.item.docids, a.spans(), a.label, a.annotated_at) for a in s.annotations))
    assert got == want and got[0][1].docids == ["nli-1_d0", "nli-1_d1"]
    assert got[0][3] == [(0, 2, 5), (1, 2, 3)]  # ana: "plays a guitar" in the premise, "performs" in the hypothesis
    # saved again, the set's own records (docids, evidence per document) are the original's
    save_annotations(tmp_path, "nli_back", list(back.annotations))
    assert _records(tmp_path / "nli_back") == _records(tmp_path / "nli")


def test_label_studio_span_across_two_documents_is_refused(tmp_path, capsys):
    s = _two_document_set(tmp_path)
    tasks = label_studio_tasks(s)
    t1 = next(t for t in tasks if t["data"]["example_id"] == "nli-1")
    t1["id"] = 41
    t1["annotations"][0]["result"].insert(0, _span(26, 38))  # "stage\n\na man": the premise's end into the hypothesis
    path = _write(tmp_path, tasks, "cross.json")
    msg = "task 41: ana's span [26, 38) crosses from document 1 into document 2"
    with pytest.raises(UnirexError, match=re.escape(msg)):
        read_label_studio(path)
    ws = tmp_path / "ws"
    assert cli_main(["--workspace", str(ws), "annotations", "import", "--label-studio", str(path), "--name", "x"]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and not (ws / "data" / "x").exists()
    # a span over the blank line between the documents marks nothing; ranges that leave words out are refused
    t1["annotations"][0]["result"][0] = _span(31, 33)
    assert "covers no word (blanks only)" in "\n".join(read_label_studio(_write(tmp_path, tasks, "gap.json")).notes)
    t1["data"]["documents"][1]["start"] = 35
    with pytest.raises(UnirexError, match=r"task 41: data.text\[31:35\] holds words outside every document"):
        read_label_studio(_write(tmp_path, tasks, "out.json"))


def test_label_studio_single_text_task_is_one_document(tmp_path):
    """A task made by another tool (no data.documents): its text is one document, blank lines or not."""
    tasks = [{"id": 5, "data": {"text": "a man plays\n\na man performs"}, "annotations": [
        {"completed_by": "ana", "result": [_span(6, 18), _choice("entailment")]}]}]  # "plays\n\na man"
    report = read_label_studio(_write(tmp_path, tasks))
    assert not report.notes  # one document: a span over the blank line is one span, not a crossing
    (a,) = report.annotations
    assert a.item.documents == ((("a", "man", "plays"), ("a", "man", "performs")),)
    assert a.item.docids == ["ls-5"] and a.spans() == [(0, 2, 5)]


def test_annotate_panel_merges_a_set_into_a_new_dataset(tmp_path, small_demo_dir):
    """The Datasets tab's merge (handler level, a real workbench): the new dataset, its pickers refreshed; a bad
    or taken name is one error and nothing is written."""
    import shutil

    import gradio as gr

    from ui.annotate import AnnotateHandlers
    from workbench import Workbench

    wb = Workbench(tmp_path / "ws")
    data = wb.annotations.data_dir
    shutil.copytree(small_demo_dir / "demo", data / "demo")
    wb.annotations.import_label_studio(_write(tmp_path, TWO_ANNOTATORS), "hum")
    h = AnnotateHandlers(wb)
    assert h.merge_targets() == ["demo"]  # sets are not offered as a base
    msg, picker, bases = h.on_merge("hum", "demo", " demo_hum ")
    assert "Made `demo_hum`: `demo` with the **4** annotations of `hum`" in msg and "68 train examples" in msg
    assert "demo_hum" in picker["choices"] and bases["choices"] == ["demo", "demo_hum"]
    assert len(read_split(data / "demo_hum", "train")) == 68
    before = _files(data)
    for bad, why in [("../evil", "evil"), ("demo_hum", "exists: merging makes a new dataset"), ("", "Type a name")]:
        with pytest.raises(gr.Error) as e:
            h.on_merge("hum", "demo", bad)
        assert why in e.value.message and "\n" not in e.value.message
    assert _files(data) == before
    assert sorted(p.name for p in data.iterdir() if not p.name.startswith(".")) == ["demo", "demo_hum", "hum"]
    # a bad name is refused before anything is made, even the demo a fresh workspace would generate as the base
    fresh = Workbench(tmp_path / "fresh")
    with pytest.raises(gr.Error, match="not a valid dataset name"):
        AnnotateHandlers(fresh).on_merge("hum", "demo", "a/b")
    assert not fresh.annotations.data_dir.exists() or not any(fresh.annotations.data_dir.iterdir())
