"""ERASER results export: format (ERASER's verifier checks), hand-made cases with known answers, and
agreement of the project's word-level numbers with ERASER's formulas re-derived from the file."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from evalkit import TinyClassifier, ref_eraser_scores, ref_verify, split_dataset

from cli.export import add_export_parser
from unirex.data.eraser import write_dataset
from unirex.errors import UnirexError
from unirex.evaluate import evaluate, save_outputs
from unirex.export import eraser_instances, export_eraser

DOCS = {
    # two documents per annotation (e-SNLI style, listed in docids)
    "a1_premise": [["a", "man", "plays", "a", "guitar", "on", "stage", "."]],
    "a1_hypothesis": [["a", "man", "performs", "music", "."]],
    # several gold spans, two of them touching ([0, 2) and [2, 4)): one run in the mask, two ERASER spans
    "a2": [["truly", "wonderful", "acting", "throughout", "."], ["the", "plot", "was", "dull", "though", "."]],
    # no gold evidence at all (empty gold rationale)
    "a3": [["it", "was", "released", "in", "spring", "."]],
    # longer than max_length: the tail is truncated
    "a4": [["boring"] + ["filler", "words", "that", "keep", "going", "on", "and", "on"] * 6 + ["end", "."]],
}


def _ev(docid, s, e):
    words = [w for sent in DOCS[docid] for w in sent]
    return {"docid": docid, "start_token": s, "end_token": e, "start_sentence": -1, "end_sentence": -1,
            "text": " ".join(words[s:e])}


ANNOTATIONS = [dict(a, query="", query_type=None) for a in [
    {"annotation_id": "a1", "classification": "POS", "docids": ["a1_premise", "a1_hypothesis"],
     "evidences": [[_ev("a1_premise", 2, 5)], [_ev("a1_hypothesis", 2, 4)]]},
    {"annotation_id": "a2", "classification": "POS", "docids": ["a2"],
     "evidences": [[_ev("a2", 0, 2)], [_ev("a2", 2, 4)], [_ev("a2", 8, 9)]]},
    {"annotation_id": "a3", "classification": "NEG", "docids": ["a3"], "evidences": []},
    {"annotation_id": "a4", "classification": "NEG", "docids": ["a4"], "evidences": [[_ev("a4", 0, 1)]]},
]]
DOC_LENGTHS = {d: sum(len(s) for s in sents) for d, sents in DOCS.items()}
THRESHOLDS = (0.01, 0.05, 0.1, 0.2, 0.5)


@pytest.fixture(scope="module")
def handmade(tmp_path_factory, tiny_arch):
    data_dir = tmp_path_factory.mktemp("handmade-data")
    write_dataset(data_dir / "hand", {"train": ANNOTATIONS, "val": ANNOTATIONS, "test": ANNOTATIONS}, DOCS)
    ds, built = split_dataset(data_dir, "hand", "test", tiny_arch, max_length=32)
    return data_dir, ds, built


@pytest.fixture(scope="module")
def model(tiny_arch):
    return TinyClassifier(tiny_arch).eval()


def gold_indicator_scores(table):
    """Score 1 on subwords of gold words, 0 elsewhere: many ties (broken by position)."""
    return [np.array(r, dtype=np.float32) for r in table["rationale"].to_list()]


def run_and_export(tmp_path, model, handmade, scores, hard_k=10, name="run"):
    data_dir, ds, built = handmade
    result = evaluate(model, ds, scores, batch_size=3, chunk_size=8, hard_k=hard_k, source=built.summary["source"])
    run_dir = tmp_path / "runs" / name
    save_outputs(run_dir, "test", result, built)
    out, n = export_eraser(run_dir, "test", tmp_path / f"{name}_decoded.jsonl")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert n == len(lines) == len(ANNOTATIONS)
    return result, lines


def by_id(lines):
    return {ln["annotation_id"]: ln for ln in lines}


def test_export_passes_verifier_and_matches_eraser_formulas(tmp_path, model, handmade):
    _, ds, _ = handmade
    assert ds.table["truncated"].to_list() == [False, False, False, True]
    scores = [np.random.default_rng(i).normal(size=len(r)).astype(np.float32) for i, r in enumerate(ds.table["input_ids"].to_list())]
    result, lines = run_and_export(tmp_path, model, handmade, scores)
    assert ref_verify(lines, DOC_LENGTHS) == []
    first = lines[0]
    assert set(first) == {"annotation_id", "rationales", "classification", "classification_scores",
                          "comprehensiveness_classification_scores", "sufficiency_classification_scores", "thresholded_scores"}
    assert [s["threshold"] for s in first["thresholded_scores"]] == list(THRESHOLDS)
    for ln in lines:
        assert sum(ln["classification_scores"].values()) == pytest.approx(1.0)
    assert [r["docid"] for r in by_id(lines)["a1"]["rationales"]] in (["a1_premise", "a1_hypothesis"], ["a1_hypothesis", "a1_premise"])
    ref = ref_eraser_scores(lines, ANNOTATIONS, DOC_LENGTHS, THRESHOLDS)
    for key, value in ref.items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-12), key
    # truncated words score 0 and are never predicted
    a4 = by_id(lines)["a4"]["rationales"][0]
    n_present = 1 + max(w for w in ds.table["word_ids"][3].to_list())
    assert n_present < DOC_LENGTHS["a4"]
    assert all(x == 0.0 for x in a4["soft_rationale_predictions"][n_present:])
    assert all(h["end_token"] <= n_present for h in a4["hard_rationale_predictions"])


def test_known_answers_with_gold_indicator_scores(tmp_path, model, handmade):
    _, ds, _ = handmade
    # hard_k = 100: the hard rationale is every document word in the input
    result, lines = run_and_export(tmp_path, model, handmade, gold_indicator_scores(ds.table), hard_k=100, name="all")
    lines = by_id(lines)
    n_present = 1 + max(w for w in ds.table["word_ids"][3].to_list())
    assert lines["a2"]["rationales"][0]["hard_rationale_predictions"] == [{"start_token": 0, "end_token": 11}]
    assert lines["a1"]["rationales"][0]["hard_rationale_predictions"] == [{"start_token": 0, "end_token": 8}]
    assert lines["a4"]["rationales"][0]["hard_rationale_predictions"] == [{"start_token": 0, "end_token": n_present}]
    # token level: instances (a1 premise, a1 hypothesis, a2, a3 (prediction only), a4)
    p = [3 / 8, 2 / 5, 5 / 11, 0.0, 1 / n_present]
    assert result.metrics["plaus_token_p"] == pytest.approx(np.mean(p))
    assert result.metrics["plaus_token_r"] == pytest.approx(np.mean([1, 1, 1, 0, 1]))
    f1 = [2 * x / (x + 1) if x else 0.0 for x in p]
    assert result.metrics["plaus_token_f1"] == pytest.approx(np.mean(f1))
    # IOU: one whole-document prediction per document never reaches 0.5 with these gold spans
    assert result.metrics["plaus_iou_f1"] == 0.0
    # soft scores: a word scores its number of subwords when gold, 0 otherwise; AUPRC is then 1 for
    # documents with gold, 0.5 for the document without (ERASER keeps it)
    assert lines["a3"]["rationales"][0]["soft_rationale_predictions"] == [0.0] * DOC_LENGTHS["a3"]
    assert result.metrics["plaus_auprc"] == pytest.approx((1 + 1 + 1 + 0.5 + 1) / 5)
    ref = ref_eraser_scores(list(lines.values()), ANNOTATIONS, DOC_LENGTHS, THRESHOLDS)
    for key, value in ref.items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-12), key


def test_touching_gold_spans_count_as_two_for_iou(tmp_path, model, handmade):
    _, ds, built = handmade
    # the top 10 % of a2 ranks "wonderful acting" highest (words 1..2): IOU with [0,2) and [2,4) is 1/3
    scores = []
    for row, wids in enumerate(ds.table["word_ids"].to_list()):
        s = np.zeros(len(wids), dtype=np.float32)
        for i, w in enumerate(wids):
            if row == 1 and w in (0, 1):
                s[i] = 2.0 - 0.1 * w
        scores.append(s)
    result, lines = run_and_export(tmp_path, model, handmade, scores, hard_k=20, name="touch")
    a2 = by_id(lines)["a2"]["rationales"][0]["hard_rationale_predictions"]
    assert a2 == [{"start_token": 0, "end_token": 2}]  # exactly the first gold evidence
    ref = ref_eraser_scores(lines, ANNOTATIONS, DOC_LENGTHS, THRESHOLDS)
    assert result.metrics["plaus_iou_f1"] == pytest.approx(ref["plaus_iou_f1"], abs=1e-12)
    # ERASER counts three gold spans in a2 (recall 1/3); the runs of the gold mask are only two
    # ([0, 4) and [8, 9): recall 1/2), so a table without the evidence spans (and no source) differs
    from unirex.data import SplitDataset

    without = SplitDataset(ds.table.drop("evidence_spans"), ds.pad_token_id, ds.labels)  # an older build
    no_source = evaluate(model, without, scores, batch_size=3, hard_k=20)
    assert no_source.stats["gold_spans"] == "mask_runs"
    assert no_source.metrics["plaus_iou_r"] > result.metrics["plaus_iou_r"]
    assert result.stats["gold_spans"] == "evidences"


def test_first_line_has_a_hard_prediction_first():
    from unirex.export import _hard_first

    lines = [{"annotation_id": "x", "rationales": [{"hard_rationale_predictions": []}, {"hard_rationale_predictions": [1]}]}]
    _hard_first(lines)
    assert lines[0]["rationales"][0]["hard_rationale_predictions"] == [1]


def test_export_cli_with_run_id_and_workspace(tmp_path, model, handmade):
    _, ds, _ = handmade
    run_and_export(tmp_path, model, handmade, gold_indicator_scores(ds.table), name="cli-run")
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace")
    add_export_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "out" / "x_decoded.jsonl"
    args = parser.parse_args(["--workspace", str(tmp_path), "export-eraser", "--run", "cli-run", "--split", "test", "--out", str(out)])
    assert args.func(args) == 0
    assert len(out.read_text().splitlines()) == len(ANNOTATIONS)
    args = parser.parse_args(["export-eraser", "--run", "nope", "--out", str(out), "--workspace", str(tmp_path)])
    with pytest.raises(UnirexError, match="not found"):
        args.func(args)


def test_outputs_that_do_not_match_the_table_are_refused(tmp_path, model, handmade):
    _, ds, _ = handmade
    result = evaluate(model, ds, gold_indicator_scores(ds.table), batch_size=4)
    result.outputs.annotation_id[0] = "someone-else"
    with pytest.raises(UnirexError, match="does not match"):
        eraser_instances(result.outputs, ds.table)


def test_export_never_overwrites_a_run_file_or_an_existing_file_without_force(tmp_path, model, handmade):
    """--out inside a run folder is refused except a .jsonl in its outputs/; an existing file needs force,
    and an overwritten file keeps its permission bits."""
    import os

    run_and_export(tmp_path, model, handmade, gold_indicator_scores(handmade[1].table), name="guarded")
    run_dir = tmp_path / "runs" / "guarded"
    (run_dir / "meta.json").write_text("{}")
    (run_dir / "status.json").write_text('{"status": "completed"}')
    (run_dir / "metrics.jsonl").write_text('{"name": "acc", "value": 1.0}\n')
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    for target in (run_dir / "metrics.jsonl", run_dir / "config.json", run_dir / "outputs" / "eval_test.parquet",
                   run_dir / "checkpoint" / "x.jsonl", run_dir / "new.jsonl"):
        for force in (False, True):
            with pytest.raises(UnirexError, match="inside the run folder"):
                export_eraser(run_dir, "test", target, force=force)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before  # nothing touched

    ok = run_dir / "outputs" / "test_decoded.jsonl"  # the run's outputs/ takes a results file
    assert export_eraser(run_dir, "test", ok)[1] == len(ANNOTATIONS)

    mine = tmp_path / "mine.jsonl"
    mine.write_text("my notes\n")
    os.chmod(mine, 0o640)
    with pytest.raises(UnirexError, match="exists; pass --force"):
        export_eraser(run_dir, "test", mine)
    assert mine.read_text() == "my notes\n"
    export_eraser(run_dir, "test", mine, force=True)
    assert len(mine.read_text().splitlines()) == len(ANNOTATIONS)
    assert (mine.stat().st_mode & 0o777) == 0o640
    with pytest.raises(UnirexError, match="is a folder"):
        export_eraser(run_dir, "test", tmp_path, force=True)
    parser = argparse.ArgumentParser()
    add_export_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export-eraser", "--run", str(run_dir), "--out", str(mine), "--force"])
    assert args.force is True and args.func(args) == 0
