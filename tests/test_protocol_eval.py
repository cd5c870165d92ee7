"""Issue 22, the evaluation side of ``protocol`` (``reference`` | ``eraser``), and FRESH's plausibility.

Every expected number here is computed by hand from the reference's formulas (or scikit-learn's
``precision_recall_curve`` + ``auc``, which is what the reference and ERASER call) on small inputs; the
evaluator is run on a tiny BERT and a handful of demo rows.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
import torch
from evalkit import TinyClassifier, split_dataset

from unirex.evaluate import evaluate
from unirex.rationale import Scoring


def _auprc(truth, scores) -> float:
    from sklearn.metrics import auc, precision_recall_curve

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, _ = precision_recall_curve(np.asarray(truth, dtype=int), np.asarray(scores, dtype=np.float64))
    return float(auc(r, p))


@pytest.fixture(scope="module")
def model(tiny_arch):
    return TinyClassifier(tiny_arch).eval()


@pytest.fixture(scope="module")
def split(small_demo_dir, tiny_arch):
    return split_dataset(small_demo_dir, "demo", "test", tiny_arch, max_length=64, rows=range(6))


def _pruned(ds):
    """The split as FRESH sees it: each row's attention mask is [CLS] plus its first two NON-gold
    document tokens, so every gold token is pruned (what ``unirex.teacher.fresh_table`` does, with a
    teacher that missed the evidence)."""
    masks = []
    for expl, gold, mask in zip(ds.table["explainable"].to_list(), ds.table["rationale"].to_list(),
                                ds.table["attention_mask"].to_list()):
        keep = [0] * len(mask)
        keep[0] = 1
        picked = [j for j, (e, g) in enumerate(zip(expl, gold)) if e and not g][:2]
        for j in picked:
            keep[j] = 1
        masks.append(keep)
    return ds.with_table(ds.table.with_columns(pl.Series("attention_mask", masks, dtype=ds.table.schema["attention_mask"])))


def _fresh_explain(batch):
    """FRESH's extractor: 1 on the kept document tokens, 0 elsewhere (``FreshExtractor``)."""
    return (batch["explainable"].bool() & batch["attention_mask"].bool()).float()


@pytest.mark.parametrize("protocol", ["eraser", "reference"])
def test_fresh_pruned_gold_tokens_count_as_misses(model, split, protocol):
    """Issue 22 section 1: FRESH's pruned mask must not shrink what plausibility covers. Every gold token
    was pruned, so the kept tokens (score 1) are all misses and the gold ones (score 0) all count."""
    ds, built = split
    fresh = _pruned(ds)
    res = evaluate(model, fresh, _fresh_explain, batch_size=4, source=built.summary["source"],
                   scoring=Scoring(select_then_predict=True, hard_k=100.0, protocol=protocol))
    m = res.metrics
    table = ds.table
    aus, rec = [], []
    for gold, mask, keep, expl in zip(table["rationale"].to_list(), table["attention_mask"].to_list(),
                                      fresh.table["attention_mask"].to_list(), table["explainable"].to_list()):
        n = sum(mask)  # the ORIGINAL input's non-padding positions
        truth = np.asarray(gold[:n]) > 0
        s = np.asarray([float(k and e) for k, e in zip(keep[:n], expl[:n])])
        assert truth.any() and not (truth & (s > 0)).any()  # every gold token pruned
        aus.append(_auprc(truth, s))
        rec.append(0.0)
    assert m["plaus_ref_auprc"] == pytest.approx(np.mean(aus), abs=1e-12)
    # subword ERASER-style curves: over the document tokens of the original input; nothing gold is hit
    assert m["plaus_sub_token_r"] == pytest.approx(0.0)
    assert m["plaus_sub_auprc"] < 0.5
    # ERASER's word level already covers every word: a pruned gold word scores 0, a miss
    assert m["plaus_token_r"] == pytest.approx(0.0)


# --- item 1: which tokens top-k can pick ----------------------------------------------------------
# a hand-built row: [CLS] d1 d2 d3 [SEP] q1 q2 [SEP] [PAD]   (ids 101 / 102 / 0 as BERT's)
IDS = torch.tensor([[101, 11, 12, 13, 102, 21, 22, 102, 0]])
AM = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1, 0]])
EXPL = torch.tensor([[0, 1, 1, 1, 0, 0, 0, 0, 0]], dtype=torch.bool)


def test_selectable_reference_is_every_token_but_cls_and_sep_query_included():
    from unirex.rationale import selectable_mask

    ref = selectable_mask(IDS, AM, EXPL, "reference")[0].tolist()
    assert ref == [False, True, True, True, False, True, True, False, False]
    assert selectable_mask(IDS, AM, EXPL, "eraser")[0].tolist() == EXPL[0].tolist()
    with pytest.raises(ValueError, match="protocol"):
        selectable_mask(IDS, AM, EXPL, "paper")


def test_selectable_reference_on_a_pruned_input_finds_the_separator_from_the_original():
    """FRESH: the model reads [CLS] d2 q1 only; the closing [SEP] is found from the original input."""
    from unirex.rationale import selectable_mask

    pruned = torch.tensor([[1, 0, 1, 0, 0, 1, 0, 0, 0]])
    got = selectable_mask(IDS, pruned, EXPL, "reference", input_mask=AM)[0].tolist()
    assert got == [False, False, True, False, False, True, False, False, False]
    assert selectable_mask(IDS, pruned, EXPL, "eraser", input_mask=AM)[0].tolist() == [
        False, False, True, False, False, False, False, False, False]


@pytest.mark.parametrize("k,ref_expect,eraser_expect", [
    # n = 8 non-padding tokens: count = max(1, round(7 * k / 100)): k=50 -> 4 (reference), capped at the 3
    # document tokens under eraser; k=10 -> 1
    (50, {5, 6, 2, 1}, {2, 1, 3}),
    (10, {5}, {2}),
])
def test_topk_picks_the_query_only_under_reference(k, ref_expect, eraser_expect):
    from unirex.rationale import selectable_mask, topk_mask

    # the query scores highest; the separators and [CLS] higher still (never picked)
    scores = torch.tensor([[9.0, 0.5, 0.7, 0.1, 9.0, 0.9, 0.8, 9.0, 9.0]])
    for protocol, want in (("reference", ref_expect), ("eraser", eraser_expect)):
        sel = topk_mask(scores, selectable_mask(IDS, AM, EXPL, protocol), AM, k)[0]
        assert set(torch.nonzero(sel).flatten().tolist()) == want, protocol


def test_ties_keep_the_earlier_position_under_both_protocols():
    """Item 8: equal scores are broken by position (stable sort), the earlier token first, under either
    protocol (the reference's torch.argsort leaves the order of ties unspecified)."""
    from unirex.rationale import selectable_mask, topk_mask

    scores = torch.zeros(1, 9)
    for protocol, first_two in (("reference", [1, 2]), ("eraser", [1, 2])):
        sel = topk_mask(scores, selectable_mask(IDS, AM, EXPL, protocol), AM, 25)[0]  # round(7 * .25) = 2
        assert torch.nonzero(sel).flatten().tolist() == first_two
    sel = topk_mask(scores, selectable_mask(IDS, AM, EXPL, "reference"), AM, 50)[0]  # 4: d1 d2 d3 q1
    assert torch.nonzero(sel).flatten().tolist() == [1, 2, 3, 5]
