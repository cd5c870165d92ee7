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


# --- item 2: evaluation inputs --------------------------------------------------------------------
REF_KEYS = ("comp_aopc_unirex", "suff_aopc_unirex", "task_ref")


@pytest.fixture(scope="module")
def with_query(split):
    """The demo rows with a two-token query appended, as a two-input task encodes it:
    ``[CLS] doc [SEP] q1 q2 [SEP]`` (segment 1, not explainable, no gold)."""
    ds, built = split
    t = ds.table
    sep = t["input_ids"].to_list()[0][-1]
    cols = {c: t[c].to_list() for c in ("input_ids", "attention_mask", "token_type_ids", "word_ids", "explainable",
                                         "rationale")}
    add = {"input_ids": None, "attention_mask": [1, 1, 1], "token_type_ids": [1, 1, 1], "word_ids": [-1, -1, -1],
           "explainable": [0, 0, 0], "rationale": [0, 0, 0]}
    new = {c: [] for c in cols}
    for i in range(t.height):
        for c in cols:
            extra = [cols["input_ids"][i][1], cols["input_ids"][i][2], sep] if c == "input_ids" else add[c]
            new[c].append(list(cols[c][i]) + extra)
    table = t.with_columns([pl.Series(c, v, dtype=t.schema[c]) for c, v in new.items()])
    return ds.with_table(table), built


def _scores_with_query(table, seed=3):
    """Precomputed scores, one per subword; the query tokens score high, so reference's top-k picks them."""
    rng = np.random.default_rng(seed)
    out = []
    for expl in table["explainable"].to_list():
        s = np.round(rng.normal(size=len(expl)), 2)
        s[-3:-1] = 5.0  # the two query tokens
        out.append(s)
    return out


def _probs(model, ids, mask=None, tt=None):
    ids = torch.as_tensor(ids).view(1, -1)
    mask = torch.ones_like(ids) if mask is None else torch.as_tensor(mask).view(1, -1)
    tt = torch.zeros_like(ids) if tt is None else torch.as_tensor(tt).view(1, -1)
    with torch.no_grad():
        return torch.softmax(model(input_ids=ids, attention_mask=mask, token_type_ids=tt).double(), -1)[0].numpy()


def _ref_topk(scores, n, cand, k):
    """The reference's top-k over candidate positions, by hand: count max(1, round((n - 1) k / 100)),
    highest first, ties to the earlier position."""
    count = min(max(1, round((n - 1) * k / 100)), len(cand))
    return sorted(sorted(cand, key=lambda j: (-scores[j], j))[:count])


def test_eraser_metrics_are_the_same_under_both_protocols(model, with_query):
    """ERASER's metrics (the export's numbers, plaus_*, comp/suff AOPC, acc, ...) do not depend on the
    protocol; only the UNIREX-style ones computed on the reference's inputs move."""
    ds, built = with_query
    sc = _scores_with_query(ds.table)
    for stp in (False, True):
        r = {p: evaluate(model, ds, sc, batch_size=3, source=built.summary["source"],
                         scoring=Scoring(select_then_predict=stp, protocol=p)) for p in ("eraser", "reference")}
        for k, v in r["eraser"].metrics.items():
            if k not in REF_KEYS:
                assert r["reference"].metrics[k] == (pytest.approx(v, abs=1e-12) if v is not None else None), (stp, k)
        for a, b in zip(r["eraser"].outputs.word_scores, r["reference"].outputs.word_scores):
            assert np.array_equal(a, b)
        assert r["eraser"].outputs.ref is None and r["reference"].outputs.ref is not None
        assert any(r["reference"].metrics[k] != pytest.approx(r["eraser"].metrics[k]) for k in REF_KEYS), stp


def test_reference_inputs_of_a_whole_input_model(model, with_query):
    """Under reference: sufficiency's input is [CLS] + the rationale only (no [SEP], no query);
    comprehensiveness' is everything but the rationale; the rationale may hold query tokens."""
    ds, built = with_query
    sc = _scores_with_query(ds.table)
    res = evaluate(model, ds, sc, batch_size=3, scoring=Scoring(protocol="reference"))
    comps, suffs, picked_query = [], [], False
    for i, ids in enumerate(ds.table["input_ids"].to_list()):
        n = len(ids)
        cand = [j for j in range(1, n) if not (ids[j] == ids[-1] and not ds.table["explainable"][i][j])]
        tt = ds.table["token_type_ids"][i].to_list()
        full = _probs(model, ids, tt=tt)
        y = int(full.argmax())
        c_row, s_row = [], []
        for k in (1, 5, 10, 20, 50):
            sel = _ref_topk(sc[i], n, cand, k)
            picked_query |= (n - 3) in sel
            keep_c = [j for j in range(n) if j not in sel]
            keep_s = [0] + sel
            c_row.append(full[y] - _probs(model, [ids[j] for j in keep_c], tt=[tt[j] for j in keep_c])[y])
            s_row.append(full[y] - _probs(model, [ids[j] for j in keep_s], tt=[tt[j] for j in keep_s])[y])
        comps.append(sum(c_row) / 6), suffs.append(sum(s_row) / 6)
    assert picked_query
    assert res.metrics["comp_aopc_unirex"] == pytest.approx(np.mean(comps), abs=1e-5)
    assert res.metrics["suff_aopc_unirex"] == pytest.approx(np.mean(suffs), abs=1e-5)


def test_reference_inputs_of_a_select_then_predict_model(model, with_query):
    """A2R / FRESH under reference: the base of bin k is [CLS] + its rationale (deleted, re-packed),
    comprehensiveness' input is the reference's empty one (every position padding, attention mask all 0),
    sufficiency is 0, and task_ref pools the task predictions from [CLS] + the rationale masked in place."""
    ds, built = with_query
    sc = _scores_with_query(ds.table)
    rows = ds.table["input_ids"].to_list()
    res = evaluate(model, ds, sc, batch_size=len(rows), scoring=Scoring(select_then_predict=True, protocol="reference"))
    L = max(len(r) for r in rows)
    empty = _probs(model, [0] * L, mask=[0] * L)
    comps, y_true, y_task = [], [], []
    for i, ids in enumerate(rows):
        n = len(ids)
        cand = [j for j in range(1, n) if not (ids[j] == ids[-1] and not ds.table["explainable"][i][j])]
        tt = ds.table["token_type_ids"][i].to_list()
        row = []
        for k in (1, 5, 10, 20, 50):
            keep = [0] + _ref_topk(sc[i], n, cand, k)
            base = _probs(model, [ids[j] for j in keep], tt=[tt[j] for j in keep])
            y = int(base.argmax())
            row.append(base[y] - empty[y])
            in_place = _probs(model, ids + [0] * (L - n), mask=[int(j in keep) for j in range(L)], tt=tt + [0] * (L - n))
            y_task.append(int(in_place.argmax())), y_true.append(int(ds.table["label"][i]))
        comps.append(sum(row) / 6)
    m = res.metrics
    assert m["comp_aopc_unirex"] == pytest.approx(np.mean(comps), abs=1e-5)
    assert m["suff_aopc_unirex"] == 0.0
    from unirex.metrics.task import macro_f1

    assert m["task_ref"] == pytest.approx(macro_f1(np.array(y_true), np.array(y_task)), abs=1e-12)


def test_select_then_predict_gets_erasers_lenient_input_under_eraser(model, with_query):
    """The same leniency for every method: under eraser, A2R's / FRESH's bin input is the special tokens,
    the query and the rationale (ERASER's sufficiency input), the empty one the special tokens and the
    query; not [CLS] alone as before issue 22."""
    ds, _ = with_query
    sc = _scores_with_query(ds.table)
    res = evaluate(model, ds, sc, batch_size=3, scoring=Scoring(select_then_predict=True, protocol="eraser"))
    o = res.outputs
    for j, i in enumerate(o.index.tolist()):
        ids = ds.table["input_ids"][i].to_list()
        expl = ds.table["explainable"][i].to_list()
        tt = ds.table["token_type_ids"][i].to_list()
        n = len(ids)
        always = [p for p in range(n) if not expl[p]]
        assert n - 2 in always and n - 3 in always  # the query stays
        empty = _probs(model, [ids[p] for p in always], tt=[tt[p] for p in always])
        assert np.allclose(o.comp_probs[j, 0], empty, atol=1e-5)
        for b, k in enumerate(o.bins):
            sel = _ref_topk(sc[i], n, [p for p in range(n) if expl[p]], k)
            keep = sorted(always + sel)
            assert np.allclose(o.bin_probs[j, b], _probs(model, [ids[p] for p in keep], tt=[tt[p] for p in keep]),
                               atol=1e-5), (i, k)


# --- item 1 on the training side: masks and baselines read the same rule ----------------------------


def _query_batch():
    return {"input_ids": IDS.clone(), "attention_mask": AM.clone(), "explainable": EXPL.clone(),
            "rationale": torch.tensor([[0, 1, 0, 0, 0, 0, 0, 0, 0]], dtype=torch.float),
            "token_type_ids": torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1, 0]]), "index": torch.tensor([0])}


def test_inv_and_rand_baselines_cover_the_query_only_under_reference():
    from unirex.models.extractors.baselines import inv_scores, rand_scores
    from unirex.rationale import mark_selectable

    ref = mark_selectable(_query_batch(), "reference")
    era = mark_selectable(_query_batch(), "eraser")
    # UNIREX's inv baseline is 1 - gold: 1 on every candidate that is not gold, the query included
    assert inv_scores(ref)[0].tolist() == [0, 0, 1, 1, 0, 1, 1, 0, 0]
    assert inv_scores(era)[0].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0]
    assert inv_scores(_query_batch())[0].tolist() == inv_scores(era)[0].tolist()  # unmarked: eraser
    r_ref, r_era = rand_scores(ref, seed=1)[0], rand_scores(era, seed=1)[0]
    assert (r_ref[[5, 6]] != 0).all() and (r_era[[5, 6]] == 0).all()
    assert torch.equal(r_ref[[1, 2, 3]], r_era[[1, 2, 3]])  # the document's scores do not depend on it


def test_training_removal_keeps_a_query_token_picked_under_reference():
    """The training masks (comp's 'remove', suff's / A2R's 'only') act on the candidates: a query token in
    the rationale is removed (comp) or kept (suff) under reference; under eraser it cannot be picked."""
    from unirex.rationale import candidates, keep_mask, mark_selectable, topk_mask

    scores = torch.tensor([[0.0, 0.1, 0.2, 0.3, 0.0, 0.9, 0.0, 0.0, 0.0]])
    ref = mark_selectable(_query_batch(), "reference")
    r = topk_mask(scores, candidates(ref), AM, 10)  # count 1: the query token q1 (position 5)
    assert torch.nonzero(r[0]).flatten().tolist() == [5]
    assert keep_mask(AM, candidates(ref), r, "only")[0].tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 0]
    assert keep_mask(AM, candidates(ref), r, "remove")[0].tolist() == [1, 1, 1, 1, 1, 0, 1, 1, 0]
    era = mark_selectable(_query_batch(), "eraser")
    r = topk_mask(scores, candidates(era), AM, 10)
    assert torch.nonzero(r[0]).flatten().tolist() == [3]


# --- end to end: a few presets train and score under each protocol ----------------------------------
PRESETS = (["method=aa_sum_inv_comp_suff"], ["method=a2r", "model.expl_head_mlp_hidden_dim=16"])


@pytest.mark.parametrize("protocol", ["reference", "eraser"])
def test_debug_presets_run_under_each_protocol(tmp_path, common, small_heads, protocol):
    import json

    from unirex.engine import resolve_run_config, run

    base = [*common, *small_heads, f"workspace={tmp_path}", "debug=True", f"protocol={protocol}"]
    teacher = run(resolve_run_config(base + ["model.explainer_type=attr_algo", "model.attr_algo=input-x-gradient",
                                             "model.save_outputs=True"]))
    assert teacher.status == "completed"
    runs = [teacher]
    for extra in PRESETS:
        runs.append(run(resolve_run_config(base + extra)))
    runs.append(run(resolve_run_config(base + ["method=fresh", f"data.fresh_exp_id={teacher.run_id}",
                                               "data.fresh_attr_algo=input-x-gradient"])))
    for res in runs:
        assert res.status == "completed", res.run_id
        assert json.loads((res.run_dir / "config.json").read_text())["protocol"] == protocol
        for key in ("test_comp_aopc", "test_plaus_auprc", "test_plaus_ref_auprc", "test_comp_aopc_unirex", "test_task_ref"):
            assert res.metrics[key] is not None and np.isfinite(res.metrics[key]), (res.run_id, key)
