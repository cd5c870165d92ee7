"""The built-in NLI demo (``data=demo_nli``): determinism, ERASER validity with the e-SNLI document pair,
gold rationales that depend on the other document, label balance, and the offline two-input path end to
end on the tiny BERT (build, train, evaluate, ERASER export)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest
from evalkit import ref_eraser_scores, ref_verify

from unirex.data import DEMO_NLI, ensure_source, load_split
from unirex.data.demo_nli import LABELS, ensure_demo_nli, generate_nli_splits
from unirex.data.eraser import read_split

SIZES = {"train": 300, "val": 60, "test": 60}


@pytest.fixture(scope="module")
def generated():
    return generate_nli_splits(SIZES, seed=0)


@pytest.fixture(scope="module")
def nli_dir(tmp_path_factory):
    """A data_dir holding a small NLI demo (``demo_nli``: 48 / 24 / 24 examples)."""
    data_dir = tmp_path_factory.mktemp("nli-data")
    ensure_demo_nli(data_dir / DEMO_NLI, sizes={"train": 48, "val": 24, "test": 24})
    return data_dir


def _gold_words(splits, documents):
    """``[(annotation, docid, words, gold mask), ...]`` over every document of every example."""
    out = []
    for anns in splits.values():
        for a in anns:
            for d in ("premise", "hypothesis"):
                docid = f"{a['annotation_id']}_{d}"
                words = [w for s in documents[docid] for w in s]
                mask = [False] * len(words)
                for ev in (e for g in a["evidences"] for e in g):
                    if ev["docid"] == docid:
                        mask[ev["start_token"]:ev["end_token"]] = [True] * (ev["end_token"] - ev["start_token"])
                out.append((a, d, words, mask))
    return out


def test_generator_is_deterministic(generated):
    again = generate_nli_splits(SIZES, seed=0)
    assert again == generated
    assert generate_nli_splits(SIZES, seed=1) != generated


def test_eraser_valid_with_both_documents_and_evidence(tmp_path):
    ensure_demo_nli(tmp_path / "nli", sizes={"train": 90, "val": 30, "test": 30})
    for split in ("train", "dev", "test"):
        examples = read_split(tmp_path / "nli", split)  # validates every evidence's offsets and text
        for ex in examples:
            a = ex.annotation
            assert a.docids == () and a.query == ""  # as e-SNLI: the pair is found by name
            assert [d.docid for d in ex.documents] == [f"{a.annotation_id}_premise", f"{a.annotation_id}_hypothesis"]
            premise_gold, hyp_gold = (any(m) for m in ex.gold_word_masks)
            assert hyp_gold  # the claim is always marked in the hypothesis
            assert premise_gold == (a.classification != "neutral")  # e-SNLI marks no premise words for neutral
            # a small part of each document
            assert sum(ex.gold_word_masks[0]) <= 4 and sum(ex.gold_word_masks[1]) <= 4
    marker = json.loads((tmp_path / "nli" / "demo_nli.json").read_text())
    assert marker["sizes"] == {"train": 90, "val": 30, "test": 30}


def test_labels_are_balanced(generated):
    splits, _ = generated
    for split, anns in splits.items():
        counts = Counter(a["classification"] for a in anns)
        assert set(counts) == set(LABELS) and max(counts.values()) - min(counts.values()) <= 1, (split, counts)
        # not in blocks: each half of the split holds every label
        assert all(len({a["classification"] for a in part}) == 3 for part in (anns[: len(anns) // 2], anns[len(anns) // 2:]))


def test_the_same_words_are_rationale_in_one_pair_and_not_in_another(generated):
    """Context decides: word identity alone cannot tell rationale from not, in either document."""
    by_word = {d: defaultdict(set) for d in ("premise", "hypothesis")}
    for _, d, words, mask in _gold_words(*generated):
        for w, g in zip(words, mask):
            by_word[d][w].add(g)
    both = {d: {w for w, v in m.items() if v == {True, False}} for d, m in by_word.items()}
    # every color, garment and activity word is sometimes rationale and sometimes not, in the premise
    for w in ("red", "jacket", "reading", "book", "bike", "hat"):
        assert w in both["premise"], w
    # in the hypothesis too: the descriptor ("the man in the red jacket ...") is never rationale
    assert {"red", "jacket", "reading"} <= both["hypothesis"]
    # and the claimed value does appear in the premise, on the wrong person, in contradiction / neutral
    wrong_person = 0
    for a, d, words, mask in _gold_words(*generated):
        if d == "hypothesis" and a["classification"] != "entailment":
            claim = " ".join(w for w, g in zip(words, mask) if g)
            premise = " ".join(w for s in generated[1][f"{a['annotation_id']}_premise"] for w in s)
            wrong_person += claim in premise
    assert wrong_person > 0.2 * sum(a["classification"] != "entailment" for a in generated[0]["train"])


def test_the_hypothesis_alone_does_not_give_the_label():
    """Every claim occurs under all three labels, and a hypothesis-only baseline (the train majority label
    of the same claim, with or without a descriptor) stays at chance on the test split."""
    splits, documents = generate_nli_splits({"train": 3000, "val": 3, "test": 300})

    def feature(a):
        hyp = documents[f"{a['annotation_id']}_hypothesis"][0]
        claim = next(e["text"] for g in a["evidences"] for e in g if e["docid"].endswith("_hypothesis"))
        return claim, "in" in hyp or "who" in hyp

    by_claim, by_feature = defaultdict(set), defaultdict(Counter)
    for a in splits["train"]:
        by_claim[feature(a)[0]].add(a["classification"])
        by_feature[feature(a)][a["classification"]] += 1
    assert all(labels == set(LABELS) for labels in by_claim.values())
    hits = [by_feature[feature(a)].most_common(1)[0][0] == a["classification"] for a in splits["test"] if feature(a) in by_feature]
    assert len(hits) > 250 and sum(hits) / len(hits) < 0.42


def test_ensure_keeps_an_existing_copy_and_rewrites_another_spec(tmp_path):
    target = tmp_path / "demo_nli"
    ensure_demo_nli(target, sizes={"train": 9, "val": 3, "test": 3})
    stamp = (target / "train.jsonl").stat().st_mtime_ns
    ensure_demo_nli(target)  # no sizes asked for: the copy of this generator version is kept
    assert (target / "train.jsonl").stat().st_mtime_ns == stamp
    ensure_demo_nli(target, sizes={"train": 12, "val": 3, "test": 3})
    assert len((target / "train.jsonl").read_text().splitlines()) == 12
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".demo_nli-")]  # no temporary folder left


def test_data_name_builds_it_on_first_use(tmp_path, tiny_arch, bundled_tokenizer):
    path = ensure_source(tmp_path, DEMO_NLI)
    assert (path / "train.jsonl").is_file() and (path / "docs").is_dir()
    ds, built = load_split(tmp_path, DEMO_NLI, "test", arch=tiny_arch, max_length=128)
    assert built.labels == sorted(LABELS) and built.summary["truncated"] == 0
    row = ds.table.row(0, named=True)
    sep = bundled_tokenizer.sep_token_id
    ids = row["input_ids"]
    assert ids.count(sep) == 2  # [CLS] premise [SEP] hypothesis [SEP]
    middle = ids.index(sep)
    # explainable: premise and hypothesis words, never the special tokens
    assert row["explainable"][0] == 0 and row["explainable"][middle] == 0 and row["explainable"][-1] == 0
    assert any(row["explainable"][:middle]) and any(row["explainable"][middle + 1:-1])
    # gold subwords in the hypothesis part of every row
    for r in ds.table.iter_rows(named=True):
        m = r["input_ids"].index(sep)
        assert any(r["rationale"][m + 1:])


def test_two_input_path_end_to_end_offline(tmp_path, tiny_arch, nli_dir):
    """Build, train one epoch, evaluate (every metric family, both conventions) and export ERASER's
    results file for the test split; ERASER's checks pass and its formulas give the project's numbers."""
    from unirex.engine import resolve_run_config, run
    from unirex.export import export_eraser
    from unirex.runs import RunDir

    res = run(resolve_run_config([f"arch={tiny_arch}", f"data_dir={nli_dir}", f"data={DEMO_NLI}", "data.max_length=128",
                                  "setup.train_batch_size=8", "setup.eval_batch_size=16", f"workspace={tmp_path}",
                                  "training.epochs=1", "method=slm_plaus_linear"]))
    assert res.status == "completed"
    for key in ("test_acc", "test_macro_f1", "test_task_ref", "test_comp_aopc", "test_suff_aopc_unirex",
                "test_plaus_auprc", "test_plaus_ref_auprc", "test_plaus_ref_token_f1"):
        assert res.metrics.get(key) is not None, key
    assert res.metrics["test_task_ref"] == res.metrics["test_macro_f1"]
    out, n = export_eraser(res.run_dir, "test", tmp_path / "test_decoded.jsonl")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert n == len(lines) == 24
    splits, documents = generate_nli_splits({"train": 48, "val": 24, "test": 24})
    doc_lengths = {d: sum(len(s) for s in sents) for d, sents in documents.items()}
    assert ref_verify(lines, doc_lengths) == []
    for ln in lines:
        assert sorted(r["docid"].rsplit("_", 1)[1] for r in ln["rationales"]) == ["hypothesis", "premise"]
    ref = ref_eraser_scores(lines, splits["test"], doc_lengths)
    for key, value in ref.items():
        assert res.metrics[f"test_{key}"] == pytest.approx(value, abs=1e-9), key
    assert RunDir(res.run_dir).meta()["dataset"] == DEMO_NLI
