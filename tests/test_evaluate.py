"""The batched evaluator: re-packing, chunk planning, agreement with a one-example-at-a-time reference,
chunk-size and batch-order invariance, saved outputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from evalkit import TinyClassifier, random_scores, split_dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unirex.data import SplitDataset
from unirex.evaluate import EvaluationCancelled, evaluate, load_outputs, plan_chunks, save_outputs
from unirex.rationale import repack

BINS = (1, 5, 10, 20, 50)


@pytest.fixture(scope="module")
def model(tiny_arch):
    return TinyClassifier(tiny_arch).eval()


@pytest.fixture(scope="module")
def split(small_demo_dir, tiny_arch):
    return split_dataset(small_demo_dir, "demo", "test", tiny_arch, max_length=64, rows=range(10))


@pytest.fixture(scope="module")
def scores(split):
    return random_scores(split[0].table, seed=1)


@pytest.fixture(scope="module")
def result(model, split, scores):
    ds, built = split
    return evaluate(model, ds, scores, batch_size=4, chunk_size=64, source=built.summary["source"])


def test_repack_deletes_and_shifts_left():
    ids = torch.tensor([[101, 5, 6, 7, 102], [101, 8, 9, 102, 0]])
    tt = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]])
    keep = torch.tensor([[1, 0, 1, 0, 1], [1, 1, 1, 1, 0]], dtype=torch.bool)
    out = repack({"input_ids": ids, "token_type_ids": tt, "attention_mask": keep.long()}, keep, pad_token_id=0)
    out_ids, attn, out_tt = out["input_ids"], out["attention_mask"], out["token_type_ids"]
    assert out_ids.tolist() == [[101, 6, 102, 0], [101, 8, 9, 102]]
    assert attn.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert out_tt.tolist() == [[0, 0, 1, 0], [0, 0, 0, 0]]


def test_plan_chunks_is_optimal_and_bounded():
    def cost(plan, lengths, overhead):
        return sum(overhead + (e - s) * lengths[e - 1] for s, e in plan)

    rng = np.random.default_rng(0)
    for _ in range(30):
        lengths = np.sort(rng.integers(1, 60, size=int(rng.integers(1, 8))))
        cs = int(rng.integers(1, 5))
        plan = plan_chunks(lengths, cs, overhead=8)
        assert plan[0][0] == 0 and plan[-1][1] == len(lengths)
        assert all(a[1] == b[0] for a, b in zip(plan, plan[1:])) and all(0 < e - s <= cs for s, e in plan)
        best = min(  # brute force over all cut sets
            cost(p, lengths, 8) for p in (
                list(zip((0,) + cuts, cuts + (len(lengths),)))
                for r in range(len(lengths))
                for cuts in itertools.combinations(range(1, len(lengths)), r))
            if all(e - s <= cs for s, e in p))
        assert cost(plan, lengths, 8) == pytest.approx(best)


def _reference_topk(scores, explainable, k):
    """Independent top-k: count = max(1, round((n-1)k/100)) over the n tokens, capped at the explainable
    ones; highest score first, earlier position on ties."""
    n = len(scores)
    cand = [i for i in range(n) if explainable[i]]
    count = min(max(1, round((n - 1) * k / 100)), len(cand))
    return set(sorted(cand, key=lambda i: (-scores[i], i))[:count])


@torch.no_grad()
def _probs_one(model, ids, tt):
    logits = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                   token_type_ids=torch.tensor([tt]))
    return torch.softmax(logits.double(), -1)[0].numpy()


def test_matches_one_example_at_a_time_reference(model, split, scores, result):
    ds, _ = split
    out = result.outputs
    t = ds.table
    for j in range(len(out)):
        row = int(out.index[j])
        ids, tt = t["input_ids"][row].to_list(), t["token_type_ids"][row].to_list()
        expl, wid = t["explainable"][row].to_list(), t["word_ids"][row].to_list()
        s = scores[row]
        assert out.annotation_id[j] == t["annotation_id"][row]
        np.testing.assert_allclose(out.probs[j], _probs_one(model, ids, tt), atol=1e-5)
        assert out.pred[j] == int(np.argmax(out.probs[j]))
        for b, k in enumerate(BINS):
            sel = _reference_topk(s, expl, k)
            comp = [i for i in range(len(ids)) if i not in sel]
            suff = [i for i in range(len(ids)) if i in sel or not expl[i]]
            np.testing.assert_allclose(out.comp_probs[j, b], _probs_one(model, [ids[i] for i in comp], [tt[i] for i in comp]), atol=1e-5)
            np.testing.assert_allclose(out.suff_probs[j, b], _probs_one(model, [ids[i] for i in suff], [tt[i] for i in suff]), atol=1e-5)
        # word level: subword scores summed per word; hard words = words with a subword in the top 10 %
        n_words = sum(t["doc_word_counts"][row].to_list())
        ws = np.zeros(n_words)
        for i, w in enumerate(wid):
            if w >= 0:
                ws[w] += float(np.float32(s[i]))
        np.testing.assert_allclose(out.word_scores[j], ws, atol=1e-6)
        hard = {wid[i] for i in _reference_topk(s, expl, 10)}
        assert set(np.flatnonzero(out.hard_words[j]).tolist()) == hard
        assert out.hard_comp_probs[j] == pytest.approx(out.comp_probs[j, BINS.index(10)])


def test_chunk_sizes_1_and_64_agree(model, split, scores, result):
    ds, built = split
    one = evaluate(model, ds, scores, batch_size=4, chunk_size=1, source=built.summary["source"])
    a, b = one.outputs, result.outputs
    assert one.stats["forward_passes"] == 11 * len(ds) and result.stats["forward_passes"] < one.stats["forward_passes"]
    assert np.array_equal(a.index, b.index) and np.array_equal(a.pred, b.pred)
    for name in ("probs", "comp_probs", "suff_probs", "hard_comp_probs", "hard_suff_probs"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-6, rtol=0)
    assert all(np.array_equal(x, y) for x, y in zip(a.word_scores, b.word_scores))
    assert all(np.array_equal(x, y) for x, y in zip(a.hard_words, b.hard_words))
    for key, v in result.metrics.items():
        assert one.metrics[key] == pytest.approx(v, abs=1e-6), key


def test_callable_explainer_equals_precomputed_scores(model, split, scores, result):
    ds, _ = split

    def explain(batch):
        L = batch["input_ids"].shape[1]
        rows = [np.pad(scores[i], (0, L - len(scores[i]))) for i in batch["index"].tolist()]
        return torch.tensor(np.stack(rows), dtype=torch.float32)

    again = evaluate(model, ds, explain, batch_size=3, chunk_size=16)
    np.testing.assert_allclose(again.outputs.comp_probs, result.outputs.comp_probs, atol=1e-6)
    assert again.metrics["plaus_token_f1"] == pytest.approx(result.metrics["plaus_token_f1"])


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(perm=st.permutations(range(10)), batch_size=st.sampled_from([2, 3, 10]))
def test_batch_order_shuffle_changes_nothing(model, split, scores, result, perm, batch_size):
    ds, built = split
    shuffled = SplitDataset(ds.table[list(perm)], ds.pad_token_id, ds.labels)
    s2 = [scores[i] for i in perm]
    r = evaluate(model, shuffled, s2, batch_size=batch_size, chunk_size=7, source=built.summary["source"])
    by_id = {a: j for j, a in enumerate(result.outputs.annotation_id)}
    for j, a in enumerate(r.outputs.annotation_id):
        k = by_id[a]
        np.testing.assert_allclose(r.outputs.comp_probs[j], result.outputs.comp_probs[k], atol=1e-6)
        np.testing.assert_allclose(r.outputs.suff_probs[j], result.outputs.suff_probs[k], atol=1e-6)
        assert np.array_equal(r.outputs.hard_words[j], result.outputs.hard_words[k])
    for key, v in result.metrics.items():
        if v is not None:
            assert r.metrics[key] == pytest.approx(v, abs=1e-6), key


def test_cost_is_below_three_quarters_of_eleven_full_passes(result, split):
    ds, _ = split
    lengths = np.array([len(x) for x in ds.table["input_ids"].to_list()])
    naive = sum(11 * len(c) * c.max() for c in np.array_split(lengths, np.arange(4, len(lengths), 4)))
    assert result.stats["positions"] < 0.75 * naive


def test_metrics_are_sane(result):
    m = result.metrics
    assert 0 <= m["acc"] <= 1 and -1 <= m["comp_aopc"] <= 1 and -1 <= m["suff_aopc"] <= 1
    assert m["comp"] == pytest.approx(m["comp_k10"]) and m["suff"] == pytest.approx(m["suff_k10"])
    assert m["comp_aopc"] == pytest.approx(np.mean([m[f"comp_k{k}"] for k in BINS]))
    assert 0 <= m["plaus_auprc"] <= 1 and 0 <= m["plaus_sub_auprc"] <= 1
    assert result.stats["gold_spans"] == "evidences"
    assert any(abs(m[f"comp_k{k}"]) > 1e-4 for k in BINS)  # the model reacts to deletions


def test_hard_k_outside_the_bins_adds_a_variant(model, split, scores, result):
    ds, _ = split
    r = evaluate(model, ds, scores, batch_size=5, hard_k=100)
    assert r.outputs.comp_probs.shape == result.outputs.comp_probs.shape
    # k = 100 keeps every document word in the hard rationale
    assert all(h[: len(h)].sum() > 0 for h in r.outputs.hard_words)
    assert r.metrics["plaus_token_r"] > result.metrics["plaus_token_r"]


def test_save_and_load_outputs_roundtrip(tmp_path, result, split):
    _, built = split
    path = save_outputs(tmp_path / "run", "test", result, built)
    assert path == tmp_path / "run" / "outputs" / "eval_test.parquet"
    out, meta = load_outputs(tmp_path / "run", "test")
    o = result.outputs
    assert meta["split_table"] == str(built.path) and meta["labels"] == o.labels and meta["bins"] == list(BINS)
    assert meta["metrics"]["comp_aopc"] == result.metrics["comp_aopc"]
    for name in ("index", "label", "pred", "probs", "comp_probs", "suff_probs", "hard_comp_probs", "hard_suff_probs"):
        assert np.array_equal(getattr(out, name), getattr(o, name)), name
    assert all(np.array_equal(x, y) for x, y in zip(out.word_scores, o.word_scores))
    assert all(np.array_equal(x, y) for x, y in zip(out.hard_words, o.hard_words))


def test_progress_and_cancel(model, split, scores):
    ds, _ = split
    seen = []
    evaluate(model, ds, scores, batch_size=4, progress=lambda d, n: seen.append((d, n)))
    assert seen == [(4, 10), (8, 10), (10, 10)]
    with pytest.raises(EvaluationCancelled):
        evaluate(model, ds, scores, batch_size=4, should_stop=lambda: True)


def test_reference_variants_score_every_non_padding_subword(model, split, scores, result):
    """UNIREX's calc_plaus: per example over all non-padding positions ([CLS], [SEP] included, gold 0
    there), scikit-learn's PR curve + auc and macro F1 of scores > 0; task_ref is macro F1 on the demo."""
    import warnings

    from sklearn.metrics import auc, f1_score, precision_recall_curve

    ds, _ = split
    table = ds.table
    aus, f1s = [], []
    for i, (gold, mask) in enumerate(zip(table["rationale"].to_list(), table["attention_mask"].to_list())):
        n = sum(mask)
        truth, s = np.array(gold[:n]) > 0, np.asarray(scores[i][:n], dtype=np.float64)
        assert truth.any() and not truth[0] and not truth[n - 1]  # [CLS] and the last [SEP] are counted, as gold 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, r, _ = precision_recall_curve(truth.astype(int), s)
        aus.append(auc(r, p))
        f1s.append(f1_score(truth.astype(int), (s > 0).astype(int), average="macro"))
    m = result.metrics
    assert m["plaus_ref_auprc"] == pytest.approx(np.mean(aus), abs=1e-12)
    assert m["plaus_ref_token_f1"] == pytest.approx(np.mean(f1s), abs=1e-12)
    assert m["plaus_ref_auprc"] != pytest.approx(m["plaus_sub_auprc"])  # the token sets differ
    assert result.stats["task_ref_metric"] == "macro_f1" and m["task_ref"] == m["macro_f1"]
    # the dataset name picks the reference's task metric
    r = evaluate(model, ds, scores, batch_size=4, dataset_name="sst")
    assert r.stats["task_ref_metric"] == "acc" and r.metrics["task_ref"] == r.metrics["acc"]
    # nothing ERASER reports moves
    for k, v in result.metrics.items():
        if v is not None and "ref" not in k:
            assert r.metrics[k] == pytest.approx(v, abs=1e-9), k
