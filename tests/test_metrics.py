"""ERASER metrics, faithfulness, task metrics and NRG against hand-worked values and an independent
re-implementation of ERASER's scorer formulas (set-based, with scikit-learn's curve and ``auc``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from unirex.metrics import (ScoredDocument, accuracy, aopc, aopc_unirex, auprc, average_precision,
                            faithfulness_metrics, iou_f1, macro_f1, nrg, plausibility_metrics, pr_curve,
                            prob_drop, spans_from_mask, token_prf)

from evalkit import ref_auprc, ref_iou_macro_f1, ref_token_prf  # noqa: E402  (independent ERASER formulas)


def _docs_to_ref(docs):
    truth = {(d.key, i) for d in docs for i in np.flatnonzero(d.truth)}
    pred = {(d.key, i) for d in docs for i in np.flatnonzero(d.hard)}
    tspans = {(d.key, s, e) for d in docs for s, e in d.spans()}
    pspans = {(d.key, s, e) for d in docs for s, e in spans_from_mask(d.hard)}
    return truth, pred, tspans, pspans


def doc(key, truth, scores, hard, spans=None):
    return ScoredDocument(key=key, truth=np.array(truth, bool), scores=np.array(scores, float),
                          hard=np.array(hard, bool), gold_spans=spans)


# --- AUPRC ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("truth, scores, expected", [
    ([1, 0, 0], [0.9, 0.5, 0.1], 1.0),  # the gold token ranked first
    ([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3], 0.75),  # all tied: one point (p=0.5, r=1) joined to (1, 0)
    ([0, 1, 1, 0], [0.9, 0.5, 0.5, 0.1], 1 / 3),  # tie between the two gold tokens
    ([0, 0, 0], [0.1, 0.5, 0.2], 0.5),  # no gold token: recall set to 1 everywhere (ERASER keeps it)
    ([1, 1, 1], [0.1, 0.5, 0.2], 1.0),  # rationale covering the whole document
])
def test_auprc_hand_values(truth, scores, expected):
    assert auprc(truth, scores) == pytest.approx(expected, abs=1e-12)
    assert auprc(truth, scores) == pytest.approx(ref_auprc(truth, scores), abs=1e-12)


def test_average_precision_matches_sklearn_on_random_cases():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    for i in range(300):
        n = int(rng.integers(2, 15))
        y = rng.integers(0, 2, n)
        if y.sum() in (0, n):
            continue
        s = rng.integers(0, 3, n).astype(float) if i % 2 else rng.normal(size=n)  # ties half of the time
        assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
        assert auprc(y, s) == pytest.approx(ref_auprc(y, s), abs=1e-12)


def test_pr_curve_ends_at_full_precision_zero_recall():
    p, r = pr_curve([0, 1, 1], [0.2, 0.8, 0.5])
    assert p[-1] == 1.0 and r[-1] == 0.0 and np.all(np.diff(r) <= 0)


# --- token P/R/F1 and IOU F1 ----------------------------------------------------------------------


def test_token_prf_hand_case_two_documents_per_annotation():
    docs = [
        doc(("a1", "premise"), [0, 1, 1, 0], [0, 0, 0, 0], [0, 1, 0, 1]),  # P 1/2, R 1/2, F1 1/2
        doc(("a1", "hypothesis"), [0, 0, 0], [0, 0, 0], [0, 0, 0]),  # nothing either side: not an instance
        doc(("a2", "d"), [1, 1, 1], [0, 0, 0], [1, 1, 1]),  # rationale covering the whole document: 1, 1, 1
        doc(("a3", "d"), [1, 0, 0], [0, 0, 0], [0, 0, 0]),  # empty predicted rationale: P 0, R 0, F1 0
    ]
    m = token_prf((d.truth, d.hard) for d in docs)
    assert m["token_p"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert m["token_r"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert m["token_f1"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert m["token_micro_p"] == pytest.approx(4 / 5) and m["token_micro_r"] == pytest.approx(4 / 6)
    truth, pred, _, _ = _docs_to_ref(docs)
    assert (m["token_p"], m["token_r"], m["token_f1"]) == pytest.approx(ref_token_prf(truth, pred))


def test_iou_f1_several_gold_spans_and_erasers_double_match():
    # gold spans (0,2) and (5,8); predictions (0,2) exact, (5,7) IOU 2/3, (9,10) no overlap
    m = iou_f1([([(0, 2), (5, 8)], [(0, 2), (5, 7), (9, 10)])])
    assert m["iou_r"] == pytest.approx(1.0) and m["iou_p"] == pytest.approx(2 / 3)
    assert m["iou_f1"] == pytest.approx(2 * (2 / 3) / (1 + 2 / 3))
    # ERASER counts each prediction: two halves of one gold span both reach IOU 0.5 -> recall 2
    m = iou_f1([([(0, 4)], [(0, 2), (2, 4)])])
    assert m["iou_r"] == pytest.approx(2.0) and m["iou_p"] == pytest.approx(1.0)
    assert m["iou_f1"] == pytest.approx(4 / 3)
    # below the threshold: IOU 1/3
    assert iou_f1([([(0, 3)], [(0, 1)])])["iou_f1"] == 0.0


def test_plausibility_metrics_match_reference_on_hand_cases():
    docs = [
        doc(("a1", "premise"), [0, 1, 1, 0, 1], [0.1, 0.9, 0.9, 0.2, 0.3], [0, 1, 1, 0, 0], ((1, 3), (4, 5))),
        doc(("a1", "hypothesis"), [0, 0, 1], [0.5, 0.5, 0.5], [1, 1, 1], ((2, 3),)),  # ties + whole-doc prediction
        doc(("a2", "d"), [0, 0, 0, 0], [0.4, 0.3, 0.2, 0.1], [1, 0, 0, 0], ()),  # no gold (empty rationale)
        doc(("a3", "d"), [1, 1, 1, 1], [0.4, 0.3, 0.2, 0.1], [0, 0, 0, 0], ((0, 2), (2, 4))),  # touching gold spans
    ]
    m = plausibility_metrics(docs)
    assert m["auprc"] == pytest.approx(np.mean([ref_auprc(d.truth, d.scores) for d in docs]), abs=1e-12)
    truth, pred, tspans, pspans = _docs_to_ref(docs)
    p, r, f1 = ref_token_prf(truth, pred)
    assert (m["token_p"], m["token_r"], m["token_f1"]) == pytest.approx((p, r, f1), abs=1e-12)
    assert m["iou_f1"] == pytest.approx(ref_iou_macro_f1(tspans, pspans), abs=1e-12)
    # hand value for the first document: perfect first span -> AUPRC of the ranked list
    assert auprc(docs[0].truth, docs[0].scores) == pytest.approx(ref_auprc(docs[0].truth, docs[0].scores))
    # AP skips single-class documents (a2, a3)
    assert m["ap"] == pytest.approx(np.mean([average_precision(d.truth, d.scores) for d in docs[:2]]))


def test_spans_from_mask():
    assert spans_from_mask([0, 1, 1, 0, 1]) == [(1, 3), (4, 5)]
    assert spans_from_mask([1, 1, 1]) == [(0, 3)]
    assert spans_from_mask([]) == [] and spans_from_mask([0, 0]) == []


# --- faithfulness ---------------------------------------------------------------------------------


def test_comprehensiveness_sufficiency_aopc_hand_values():
    probs = np.array([[0.8, 0.2], [0.3, 0.7]])
    pred = probs.argmax(1)
    comp = np.array([[[0.6, 0.4], [0.5, 0.5]], [[0.5, 0.5], [0.9, 0.1]]])  # K=2 bins
    suff = np.array([[[0.8, 0.2], [0.7, 0.3]], [[0.2, 0.8], [0.3, 0.7]]])
    m = faithfulness_metrics(probs, comp, suff, pred, bins=(1, 5))
    assert m["comp_k1"] == pytest.approx(((0.8 - 0.6) + (0.7 - 0.5)) / 2)
    assert m["comp_k5"] == pytest.approx(((0.8 - 0.5) + (0.7 - 0.1)) / 2)
    assert m["suff_k1"] == pytest.approx(((0.8 - 0.8) + (0.7 - 0.8)) / 2)
    assert m["comp_aopc"] == pytest.approx((0.2 + 0.3 + 0.2 + 0.6) / 4)
    assert m["comp_aopc_unirex"] == pytest.approx(((0.2 + 0.3) / 3 + (0.2 + 0.6) / 3) / 2)
    lo = lambda p: np.log(p / (1 - p))  # noqa: E731
    assert m["comp_lo_k1"] == pytest.approx(((lo(0.8) - lo(0.6)) + (lo(0.7) - lo(0.5))) / 2)


probs_strategy = arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(2, 4)),
                        elements=st.floats(0.01, 10.0)).map(lambda a: a / a.sum(axis=1, keepdims=True))


@settings(max_examples=60, deadline=None)
@given(probs=probs_strategy, data=st.data())
def test_aopc_in_unit_interval_and_empty_rationale_gives_zero(probs, data):
    n, c = probs.shape
    k = data.draw(st.integers(1, 5))
    raw = data.draw(arrays(np.float64, (n, k, c), elements=st.floats(0.01, 10.0)))
    variants = raw / raw.sum(axis=2, keepdims=True)
    pred = probs.argmax(1)
    drops = prob_drop(probs, variants, pred)
    assert -1.0 <= aopc(drops) <= 1.0 and -1.0 <= aopc_unirex(drops) <= 1.0
    # an empty rationale deletes nothing: the comprehensiveness input is the input itself
    same = np.repeat(probs[:, None, :], k, axis=1)
    assert np.all(prob_drop(probs, same, pred) == 0.0)
    # the order of examples changes nothing
    perm = data.draw(st.permutations(range(n)))
    m1 = faithfulness_metrics(probs, variants, variants, pred, bins=tuple(range(1, k + 1)))
    m2 = faithfulness_metrics(probs[perm], variants[perm], variants[perm], pred[perm], bins=tuple(range(1, k + 1)))
    assert m1 == pytest.approx(m2, rel=1e-12, abs=1e-15)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_plausibility_independent_of_instance_order(data):
    n_docs = data.draw(st.integers(1, 5))
    docs = []
    for i in range(n_docs):
        n = data.draw(st.integers(1, 8))
        truth = data.draw(arrays(np.bool_, n))
        scores = data.draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 0.5, 1.0, 2.0])))
        hard = data.draw(arrays(np.bool_, n))
        docs.append(ScoredDocument(key=(str(i),), truth=truth, scores=scores, hard=hard))
    perm = data.draw(st.permutations(range(n_docs)))
    a, b = plausibility_metrics(docs), plausibility_metrics([docs[i] for i in perm])
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] is None and b[k] is None) or a[k] == pytest.approx(b[k], abs=1e-12)
    truth, pred, tspans, pspans = _docs_to_ref(docs)
    if truth or pred:
        assert a["token_f1"] == pytest.approx(ref_token_prf(truth, pred)[2], abs=1e-12)
    assert a["iou_f1"] == pytest.approx(ref_iou_macro_f1(tspans, pspans), abs=1e-12)
    assert a["auprc"] == pytest.approx(np.mean([ref_auprc(d.truth, d.scores) for d in docs]), abs=1e-12)


# --- task -----------------------------------------------------------------------------------------


def test_accuracy_and_macro_f1():
    from sklearn.metrics import f1_score

    y, p = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    assert accuracy(y, p) == pytest.approx(3 / 5)
    # F1: class 0 = 2*1/(2+1+1) = 0.5, class 1 = 2*2/(4+1) = 0.8, class 2 = 0
    assert macro_f1(y, p) == pytest.approx((0.5 + 0.8 + 0) / 3)
    assert macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro"))


# --- NRG ------------------------------------------------------------------------------------------


def test_nrg_direction_aware_with_components():
    runs = {
        "a": {"comp_aopc": 0.5, "suff_aopc": 0.1, "plaus_auprc": 0.2, "plaus_token_f1": 0.3, "plaus_iou_f1": 0.1, "macro_f1": 0.9},
        "b": {"comp_aopc": 0.3, "suff_aopc": 0.3, "plaus_auprc": 0.6, "plaus_token_f1": 0.5, "plaus_iou_f1": 0.1, "macro_f1": 0.8},
        "c": {"comp_aopc": 0.1, "suff_aopc": 0.2, "plaus_auprc": 0.4, "plaus_token_f1": 0.1, "plaus_iou_f1": 0.1, "macro_f1": 0.7},
    }
    r = nrg(runs, convention="eraser")
    assert r.convention == "eraser"
    assert r.normalized["a"]["suff_aopc"] == 1.0 and r.normalized["b"]["suff_aopc"] == 0.0  # lower is better
    assert r.normalized["c"]["suff_aopc"] == pytest.approx(0.5)
    assert r.normalized["a"]["plaus_iou_f1"] == 1.0  # all tied
    assert r.by_desideratum["a"]["faithfulness"] == pytest.approx(1.0)
    assert r.by_desideratum["b"]["plausibility"] == pytest.approx((1.0 + 1.0 + 1.0) / 3)
    assert r.by_desideratum["c"]["plausibility"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert r.nrg["a"] == pytest.approx((1.0 + (0 + 0.5 + 1) / 3 + 1.0) / 3)
    assert r.nrg["c"] == pytest.approx((0.25 + 0.5 + 0.0) / 3)
    assert {row["run"] for row in r.rows()} == {"a", "b", "c"}


def test_nrg_skips_a_desideratum_that_some_run_lacks():
    r = nrg({"a": {"comp_aopc": 0.2, "suff_aopc": 0.1, "macro_f1": 0.5, "plaus_auprc": None},
             "b": {"comp_aopc": 0.4, "suff_aopc": 0.2, "macro_f1": 0.7}}, convention="eraser")
    assert r.missing == ["plausibility"]
    assert r.nrg["b"] == pytest.approx((0.5 + 1.0) / 2)


def test_nrg_default_is_the_papers_composition():
    runs = {
        "a": {"comp_aopc_unirex": 0.5, "suff_aopc_unirex": 0.1, "plaus_ref_auprc": 0.2, "task_ref": 0.9,
              "plaus_auprc": 0.9, "plaus_token_f1": 0.9, "plaus_iou_f1": 0.9, "macro_f1": 0.1},
        "b": {"comp_aopc_unirex": 0.3, "suff_aopc_unirex": 0.3, "plaus_ref_auprc": 0.6, "task_ref": 0.8,
              "plaus_auprc": 0.1, "plaus_token_f1": 0.1, "plaus_iou_f1": 0.1, "macro_f1": 0.9},
        "c": {"comp_aopc_unirex": 0.1, "suff_aopc_unirex": 0.2, "plaus_ref_auprc": 0.4, "task_ref": 0.7,
              "plaus_auprc": 0.5, "plaus_token_f1": 0.5, "plaus_iou_f1": 0.5, "macro_f1": 0.5},
    }
    r = nrg(runs)
    assert r.convention == "paper"
    assert r.used == {"faithfulness": ["comp_aopc_unirex", "suff_aopc_unirex"], "plausibility": ["plaus_ref_auprc"],
                      "task": ["task_ref"]}
    # a: faith (1 + 1) / 2, plaus 0, task 1; c: faith (0 + 0.5) / 2, plaus 0.5, task 0
    assert r.nrg["a"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert r.nrg["b"] == pytest.approx(((0.5 + 0.0) / 2 + 1.0 + 0.5) / 3)
    assert r.nrg["c"] == pytest.approx(((0.0 + 0.5) / 2 + 0.5 + 0.0) / 3)
    # the ERASER convention reads other metrics (these runs lack ERASER's comp_aopc / suff_aopc)
    e = nrg(runs, convention="eraser")
    assert e.used == {"plausibility": ["plaus_auprc", "plaus_token_f1", "plaus_iou_f1"], "task": ["macro_f1"]}
    assert e.missing == ["faithfulness"]
    assert e.nrg == pytest.approx({"a": (1.0 + 0.0) / 2, "b": (0.0 + 1.0) / 2, "c": (0.5 + 0.5) / 2})
    # an explicit spec wins over the convention
    own = nrg(runs, {"task": {"macro_f1": False}})
    assert own.convention is None and own.nrg["a"] == 1.0


def test_nrg_unknown_convention_is_a_clear_error():
    from unirex.errors import UnirexError
    from unirex.metrics import CONVENTIONS, nrg_spec

    assert CONVENTIONS == ("paper", "eraser")
    with pytest.raises(UnirexError, match="unknown NRG convention 'unirex'.*paper, eraser"):
        nrg({"a": {"task_ref": 1.0}}, convention="unirex")
    assert nrg_spec("eraser")["task"] == {"macro_f1": True}


def test_nrg_aopc_scaling_does_not_move_nrg():
    """ERASER's mean over bins and UNIREX's sum / (|K| + 1) differ by a constant factor: same NRG."""
    rng = np.random.default_rng(0)
    per_bin = {r: rng.uniform(-0.1, 0.5, size=(20, 5)) for r in "abcd"}
    f_eraser = {r: {"comp_aopc": aopc(v)} for r, v in per_bin.items()}
    f_unirex = {r: {"comp_aopc": aopc_unirex(v)} for r, v in per_bin.items()}
    spec = {"faithfulness": {"comp_aopc": True}}
    a, b = nrg(f_eraser, spec), nrg(f_unirex, spec)
    assert a.nrg == pytest.approx(b.nrg, abs=1e-12)


# --- UNIREX's reference variants ------------------------------------------------------------------


def test_reference_token_f1_is_macro_over_both_classes_at_threshold_zero():
    from sklearn.metrics import f1_score

    from unirex.metrics import token_f1_ref

    truth = [0, 1, 1, 0, 0]
    scores = [0.5, -1.0, 2.0, 0.0, -0.3]  # predicted: positions 0 and 2 (0.0 is not > 0)
    # class 1: tp 1, fp 1, fn 1 -> 0.5; class 0: tp 2 (3, 4), fp 1 (1), fn 1 (0) -> 4/6
    assert token_f1_ref(truth, scores) == pytest.approx((0.5 + 4 / 6) / 2)
    assert token_f1_ref(truth, scores) == pytest.approx(f1_score(truth, [1, 0, 1, 0, 0], average="macro"))
    # nothing predicted: class 1 scores 0, class 0 still counts
    assert token_f1_ref(truth, [-1.0] * 5) == pytest.approx((0.0 + 2 * 3 / (2 * 3 + 2)) / 2)
    # ERASER's token F1 of the same prediction is the F1 of the rationale class alone
    assert token_prf([(np.array(truth, bool), np.array([1, 0, 1, 0, 0], bool))])["token_f1"] == pytest.approx(0.5)


def test_reference_plausibility_counts_examples_without_gold_as_zero():
    from unirex.metrics import reference_plausibility

    # sorted: 0.9 (gold), 0.8, 0.3 (gold), 0.1 -> points (P, R) = (1, .5), (.5, .5), (2/3, 1), (.5, 1)
    # trapezoids from recall 1 down to 0: 0 + (2/3 + 1/2)/2 * 0.5 + 0 + 1 * 0.5
    one = ([0, 1, 0, 1], np.array([0.1, 0.9, 0.8, 0.3]), True)
    expected_auprc = (2 / 3 + 0.5) / 2 * 0.5 + 0.5
    assert ref_auprc([0, 1, 0, 1], [0.1, 0.9, 0.8, 0.3]) == pytest.approx(expected_auprc)
    # token F1: predicted all 4 positive: class 1 F1 = 2*2/(4+2) = 2/3, class 0 F1 = 0
    r = reference_plausibility([one])
    assert r == pytest.approx({"auprc": expected_auprc, "token_f1": (2 / 3 + 0) / 2})
    no_gold = ([0, 0, 0], np.array([1.0, 2.0, 3.0]), False)
    r2 = reference_plausibility([one, no_gold])
    assert r2 == pytest.approx({"auprc": expected_auprc / 2, "token_f1": 1 / 6})
    assert reference_plausibility([no_gold]) == {"auprc": None, "token_f1": None}


def test_reference_task_metric_per_dataset():
    from unirex.metrics import reference_task_metric, task_ref
    from unirex.metrics.reference import binary_f1

    assert [reference_task_metric(d) for d in ("sst", "cose", "esnli", "movies", "multirc", "demo", "demo_nli", None)] \
        == ["acc", "acc", "macro_f1", "macro_f1", "macro_f1", "macro_f1", "macro_f1", "macro_f1"]
    assert reference_task_metric("stf") == "binary_f1"
    y, p = [0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2]
    assert task_ref(y, p, "sst") == (pytest.approx(4 / 6), "acc")
    # F1: class 0 = 4/5, class 1 = 2/4, class 2 = 2/3
    assert task_ref(y, p, "esnli") == (pytest.approx((0.8 + 0.5 + 2 / 3) / 3), "macro_f1")
    assert binary_f1([0, 1, 1, 0], [1, 1, 0, 0]) == pytest.approx(0.5)
