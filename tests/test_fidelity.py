"""Issue 12, "paper fidelity": each preset trains and scores as UNIREX's reference code does.

Every expected value here is written by hand or by an independent few-line computation (plain
``math`` or ``torch.nn.functional``), never by calling the function under test.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
import torch.nn.functional as F

from unirex import losses as L
from unirex.config import resolve_config
from unirex.data import SplitDataset
from unirex.data.sampling import HalfSupervisedBatchSampler
from unirex.config import identify_method
from unirex.errors import UnirexError
from unirex.evaluate import evaluate, select_then_predict_keep_masks
from unirex.config import method_config
from unirex.methods import check_settings
from unirex.models import A2RAttentionPredictor, build_model
from unirex.models.extractors import ordinal_scores
from unirex.objective import compute_losses, fresh_keep, plausibility_subset
from unirex.rationale import Scoring, keep_mask, topk_count



def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _batch(ids, explainable, label=0, **extra):
    """A hand-made one-or-more-row batch (no padding unless the rows say so)."""
    ids = torch.tensor(ids)
    b = {"input_ids": ids, "attention_mask": (ids != 0).long(), "token_type_ids": torch.zeros_like(ids),
         "explainable": torch.tensor(explainable, dtype=torch.bool), "rationale": torch.zeros(ids.shape),
         "label": torch.tensor(label if isinstance(label, list) else [label] * ids.shape[0]),
         "has_rationale": torch.zeros(ids.shape[0], dtype=torch.bool), "index": torch.arange(ids.shape[0])}
    b.update(extra)
    return b


# ------------------------------------------------------------------------------ 5. SGT kldiv
def test_sgt_kldiv_is_kl_of_rationale_from_full_averaged_over_classes():
    full, only = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    pf = [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]
    pr = [0.5, 0.5]
    # UNIREX: F.kl_div(log p_full, p_suff, reduction='none') then a mean over the classes
    expected = sum(r * (math.log(r) - math.log(f)) for r, f in zip(pr, pf)) / 2  # 0.21689...
    got = L.suff_loss(torch.zeros(1), torch.zeros(1), "kldiv", logits_full=full, logits_only=only)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.2168905, abs=1e-6)
    # the former KL(p_full || p_rationale) summed over classes is another number (0.3278)
    old = sum(f * (math.log(f) - math.log(r)) for r, f in zip(pr, pf))
    assert abs(got.item() - old) > 0.1
    # the reference's own expression, written out with torch
    ref = F.kl_div(F.log_softmax(full, 1), F.softmax(only, 1), reduction="none").mean()
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)


# ------------------------------------------------------------------------------------ 1. A2R
def test_a2r_divergence_is_unirex_js_div_and_js_is_the_textbook_one():
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])  # p = (.5, .5), q = (.75, .25)
    p, q = [0.5, 0.5], [0.75, 0.25]
    m = [(x + y) / 2 for x, y in zip(p, q)]  # (.625, .375)
    kl = lambda u, v: sum(x * math.log(x / y) for x, y in zip(u, v))  # noqa: E731
    jsd_unirex = 0.5 * (kl(m, p) + kl(m, q))  # F.kl_div(input, target) = KL(target || input)
    js_textbook = 0.5 * (kl(p, m) + kl(q, m))
    assert jsd_unirex == pytest.approx(0.034841, abs=1e-6) and js_textbook == pytest.approx(0.033822, abs=1e-6)
    assert L.a2r_divergence(a, b, "jsd").item() == pytest.approx(jsd_unirex, rel=1e-6)
    assert L.a2r_divergence(a, b, "js").item() == pytest.approx(js_textbook, rel=1e-6)
    ref = 0.5 * (F.kl_div(F.log_softmax(a, 1), (F.softmax(a, 1) + F.softmax(b, 1)) / 2, reduction="batchmean")
                 + F.kl_div(F.log_softmax(b, 1), (F.softmax(a, 1) + F.softmax(b, 1)) / 2, reduction="batchmean"))
    assert L.a2r_divergence(a, b).item() == pytest.approx(ref.item(), rel=1e-5)


def test_a2r_attention_is_a_softmax_over_non_padding_positions():
    logits = torch.tensor([[1.0, 2.0, 0.0, 5.0]])
    am = torch.tensor([[1, 1, 1, 0]])
    z = math.exp(1) + math.exp(2) + 1
    expected = [math.exp(1) / z, math.exp(2) / z, 1 / z, 0.0]
    assert A2RAttentionPredictor.attention(logits, am)[0].tolist() == pytest.approx(expected, rel=1e-6)


@pytest.fixture(scope="module")
def a2r_model(tiny_arch, small_heads):
    cfg = resolve_config(["method=a2r", f"arch={tiny_arch}", "model.topk=[50]", "model.plaus_wt=0.0", *small_heads])
    model = build_model(cfg, 2).eval()  # eval: no dropout, so a hand forward gives the same logits
    fixed = torch.tensor([[[0.0], [4.0], [3.0], [2.0], [1.0], [0.0]]])  # the generator's token logits
    model.extractor.token_logits = lambda batch, *a, **k: fixed.expand(batch["input_ids"].shape[0], -1, -1)
    return cfg, model


def test_a2r_trains_on_its_rationale_alone(a2r_model):
    cfg, model = a2r_model
    b = _batch([[101, 2000, 2001, 2002, 2003, 102]], [[False, True, True, True, True, False]], label=1)
    losses = compute_losses(b, model, cfg)
    # n = 6 tokens, k = 50%: round(5 * 0.5) = 2 (half to even) -> the two best tokens, positions 1 and 2;
    # the predictor sees [CLS] and them through the attention mask, as UNIREX's expls mask
    lm = model.task_lm
    rationale_only = lm(input_ids=b["input_ids"], attention_mask=torch.tensor([[1, 1, 1, 0, 0, 0]]),
                        token_type_ids=b["token_type_ids"])
    assert losses["task_loss"].item() == pytest.approx(F.cross_entropy(rationale_only, b["label"]).item(), rel=1e-5)
    full = lm(input_ids=b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"])
    assert abs(losses["task_loss"].item() - F.cross_entropy(full, b["label"]).item()) > 1e-6
    att = model.a2r(b, torch.tensor([[0.0, 4.0, 3.0, 2.0, 1.0, 0.0]]))
    expected = 0.5 * (F.kl_div(F.log_softmax(rationale_only, 1), (rationale_only.softmax(1) + att.softmax(1)) / 2,
                               reduction="batchmean")
                      + F.kl_div(F.log_softmax(att, 1), (rationale_only.softmax(1) + att.softmax(1)) / 2,
                                 reduction="batchmean"))
    assert losses["a2r_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert losses["loss"].item() == pytest.approx(losses["task_loss"].item() + 0.5 * losses["a2r_loss"].item(), rel=1e-5)


class _CountingModel(torch.nn.Module):
    """logit_0 = sum of kept tokens' weights (5 -> 1, 6 -> 1, 7 -> -3, [SEP]=102 -> 5), logit_1 = 0."""

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        w = torch.zeros(200)
        w[5], w[6], w[7], w[102] = 1.0, 1.0, -3.0, 5.0
        l0 = (w[input_ids] * attention_mask).sum(1)
        return torch.stack([l0, torch.zeros_like(l0)], 1)


def _tiny_split():
    rows = {"input_ids": [[101, 5, 6, 7, 8, 102], [101, 7, 6, 102]],
            "explainable": [[0, 1, 1, 1, 1, 0], [0, 1, 1, 0]], "word_ids": [[-1, 0, 1, 2, 3, -1], [-1, 0, 1, -1]]}
    table = pl.DataFrame({
        **rows, "attention_mask": [[1] * 6, [1] * 4], "token_type_ids": [[0] * 6, [0] * 4],
        "rationale": [[0] * 6, [0] * 4], "label": [0, 0], "has_rationale": [False, False],
        "annotation_id": ["a", "b"], "docids": [["a"], ["b"]], "doc_word_counts": [[4], [2]],
        "rationale_words": [[0] * 4, [0] * 2]})
    return SplitDataset(table, 0, ["x", "y"])


@pytest.mark.parametrize("protocol", ["eraser", "reference"])
def test_select_then_predict_scoring_as_unirex_scores_a2r(protocol):
    """Issue 22: ERASER's metrics give A2R the input every method gets (special tokens + rationale), under
    either protocol; the reference's strict input ([CLS] + rationale) scores the UNIREX-style metrics
    under ``protocol=reference``."""
    ds = _tiny_split()
    scores = [np.array([0, 4, 3, 2, 1, 0.0]), np.array([0, 5, 1, 0.0])]
    r = evaluate(_CountingModel(), ds, scores, bins=(20, 50), batch_size=2,
                 scoring=Scoring(select_then_predict=True, hard_k=50, protocol=protocol))
    # ERASER's inputs keep [SEP] (weight 5) with the rationale:
    # row 0 (n = 6): 20% -> 1 token {5}: [CLS 5 SEP] -> logit 6; 50% -> 2 tokens {5, 6}: [CLS 5 6 SEP] -> 7
    # row 1 (n = 4): 20% -> {7}: [CLS 7 SEP] -> 2; 50% -> {7, 6}: [CLS 7 6 SEP] -> 3
    # no document token left: [CLS SEP] -> logit 5
    p = {(0, 20): _sigmoid(6), (0, 50): _sigmoid(7), (1, 20): _sigmoid(2), (1, 50): _sigmoid(3)}
    empty = _sigmoid(5)
    assert r.outputs.bin_probs[:, :, 0].ravel().tolist() == pytest.approx([p[0, 20], p[0, 50], p[1, 20], p[1, 50]])
    # comp(k) = p_k(y_k) - p(y_k | nothing), y_k the bin's own prediction (class 0 everywhere here)
    comp20 = ((p[0, 20] - empty) + (p[1, 20] - empty)) / 2
    comp50 = ((p[0, 50] - empty) + (p[1, 50] - empty)) / 2
    assert r.metrics["comp_k20"] == pytest.approx(comp20) and r.metrics["comp_k50"] == pytest.approx(comp50)
    assert r.metrics["comp_aopc"] == pytest.approx((comp20 + comp50) / 2)
    assert r.metrics["suff_k20"] == 0.0 and r.metrics["suff_k50"] == 0.0 and r.metrics["suff_aopc"] == 0.0
    # the task score pools the 2 x 2 predictions: all class 0, all right
    assert r.metrics["acc"] == pytest.approx(1.0)
    # the export's single prediction is the hard_k bin's
    assert r.outputs.pred.tolist() == [0, 0] and r.outputs.probs[0, 0] == pytest.approx(p[0, 50])
    if protocol == "eraser":
        assert r.metrics["comp_aopc_unirex"] == pytest.approx((comp20 + comp50) / 3)
        return
    # the reference's inputs, as UNIREX scores A2R: [CLS] + rationale, [SEP] never kept:
    # row 0: {5} -> 1, {5, 6} -> 2; row 1: {7} -> -3, {7, 6} -> -2; comprehensiveness' empty input
    # (padding, attention mask all 0) -> logit 0 -> p = 0.5
    q = {(0, 20): _sigmoid(1), (0, 50): _sigmoid(2), (1, 20): _sigmoid(-3), (1, 50): _sigmoid(-2)}
    ref20 = ((q[0, 20] - 0.5) + ((1 - q[1, 20]) - 0.5)) / 2  # row 1 predicts class 1 there
    ref50 = ((q[0, 50] - 0.5) + ((1 - q[1, 50]) - 0.5)) / 2
    assert r.metrics["comp_aopc_unirex"] == pytest.approx((ref20 + ref50) / 3)  # sum over bins / (|K| + 1)
    assert r.metrics["suff_aopc_unirex"] == 0.0
    # task_ref pools the in-place predictions: row 0 right twice, row 1 (gold 0) wrong twice; macro F1
    assert r.metrics["task_ref"] == pytest.approx((2 * 2 / (2 * 2 + 0 + 2) + 0.0) / 2)


def test_select_then_predict_variants_keep_the_special_tokens_and_the_rationale():
    """ERASER's inputs for A2R / FRESH (issue 22: the same leniency as every method): special tokens and
    query stay; the reference's strict [CLS] + rationale is :class:`unirex.evaluate.ReferenceScoring`'s."""
    scores = torch.tensor([[0.0, 4, 3, 2, 1, 0]])
    expl = torch.tensor([[False, True, True, True, True, False]])
    keep, sels = select_then_predict_keep_masks(scores, expl, torch.ones(1, 6, dtype=torch.long), (20, 50))
    assert keep.long().tolist() == [[1, 1, 0, 0, 0, 1], [1, 1, 1, 0, 0, 1], [1, 0, 0, 0, 0, 1]]


def test_a2r_and_fresh_models_are_scored_select_then_predict(a2r_model):
    _, model = a2r_model
    assert model.scoring == Scoring(select_then_predict=True, protocol="reference")  # the config's default
    fresh = method_config("fresh", ["data.fresh_exp_id=x"])
    assert fresh.model.topk == [100.0]  # UNIREX's FRESH config: eval_topk [100]
    from unirex.models.builder import model_scoring

    assert model_scoring(fresh) == Scoring(select_then_predict=True, hard_k=100.0, protocol="reference")
    assert model_scoring(method_config("slm_plaus_linear")) == Scoring(protocol="reference")
    # the run's protocol travels with the scoring; eraser is a bare evaluation's default
    assert model_scoring(method_config("slm_plaus_linear", ["protocol=eraser"])) == Scoring()


# ---------------------------------------------------------------------------------- 2. FRESH
def test_fresh_count_truncates_as_unirex_builds_its_rationale():
    assert topk_count(101, 29, rule="floor") == 28  # int(29 / 100 * 100) = int(28.999999999999996)
    assert topk_count(101, 29) == 29
    assert topk_count(12, 50, rule="floor") == 5 and topk_count(12, 50) == 6  # 5.5: truncated vs half-even
    assert topk_count(3, 10, rule="floor") == 1  # at least one token


def test_fresh_input_is_cls_plus_the_teachers_binary_topk(tiny_arch):
    ids = [[101] + list(range(2000, 2010)) + [102]]  # n = 12
    expl = [[False] + [True] * 10 + [False]]
    teacher = torch.tensor([[9.0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99]])
    b = _batch(ids, expl, teacher_scores=teacher)
    # k = 50%: int(0.5 * 11) = 5 tokens, the five best explainable ones (positions 6..10); [SEP] is dropped
    assert fresh_keep(b, 50).long().tolist() == [[1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0]]
    cfg = resolve_config(["method=fresh", "data.fresh_exp_id=x", "data.fresh_topk=50", f"arch={tiny_arch}"])
    model = build_model(cfg, 2).eval()
    losses = compute_losses(b, model, cfg)
    lm = model.task_lm
    masked = lm(input_ids=b["input_ids"], attention_mask=torch.tensor([[1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0]]),
                token_type_ids=b["token_type_ids"])
    assert losses["task_loss"].item() == pytest.approx(F.cross_entropy(masked, b["label"]).item(), rel=1e-5)
    # its rationale is that binary selection
    pruned = dict(b, attention_mask=fresh_keep(b, 50).long())
    assert model.explain(pruned).tolist() == [[0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0]]


# ------------------------------------------------------------------------------ 3. AA plausibility
def test_aa_plausibility_detaches_the_gradient_factor(tiny_arch, small_heads, toy_batch):
    b = toy_batch(3)
    base = ["method=aa_sum_comp_suff_plaus", f"arch={tiny_arch}", "model.comp_wt=0", "model.suff_wt=0", *small_heads]
    model = build_model(resolve_config(base), 2).eval()
    lm, ext = model.task_lm, model.extractor
    emb = lm.encoder.get_input_embeddings().weight
    # the reference: Captum's input x gradient, the gradient taken without create_graph
    x = lm.embed(b["input_ids"])
    xg = x.detach().requires_grad_(True)
    logits = lm(inputs_embeds=xg, attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"])
    (g,) = torch.autograd.grad(logits.gather(1, b["label"].view(-1, 1)).sum(), xg)
    expected = (x * g).sum(-1) * b["explainable"]
    scores = ext.scores(b, lm, target=b["label"], grad="detach")
    assert torch.allclose(scores, expected, atol=1e-5)
    # d(sum of scores)/d(embedding row of token t) = sum of the (constant) gradients at t's positions
    (d_emb,) = torch.autograd.grad(scores.sum(), emb)
    want = torch.zeros_like(emb).index_add_(0, b["input_ids"][b["explainable"]], g[b["explainable"]])
    assert torch.allclose(d_emb, want, atol=1e-5)
    # the plausibility loss reaches the word embeddings only, not the layers above nor the head
    for mode, layers_trained in (("detach", False), ("create_graph", True)):
        cfg = resolve_config(base + [f"model.attr_grad={mode}"])
        model = build_model(cfg, 2).eval()
        loss = compute_losses(b, model, cfg)["plaus_loss"]
        enc = model.task_lm.encoder
        layer = [p for p in enc.encoder.parameters()]
        grads = torch.autograd.grad(loss, [enc.get_input_embeddings().weight, *layer], allow_unused=True)
        assert grads[0] is not None and grads[0].abs().sum() > 0
        assert (sum(float(x.abs().sum()) for x in grads[1:] if x is not None) > 0) == layers_trained, mode


def test_attr_grad_is_a_documented_choice_with_the_reference_as_default():
    assert resolve_config(["method=aa_sum_comp_suff_plaus"]).model.attr_grad == "detach"
    with pytest.raises(UnirexError, match="attr_grad"):
        resolve_config(["model.attr_grad=double"])


# --------------------------------------------------------------------- 4. partial supervision
def test_partial_supervision_subset_is_ceil_of_n_times_pct():
    assert int(plausibility_subset(10, 0.25).sum()) == 3  # ceil(2.5)
    assert int(plausibility_subset(100, 0.07).sum()) == 7  # not ceil(7.000000000000001) = 8
    assert int(plausibility_subset(200, 0.001).sum()) == 1  # ceil(0.2)
    # a fixed subset: the run's seed does not move it (data.plaus_frac_seed does)
    assert torch.equal(plausibility_subset(50, 0.2, seed=0), plausibility_subset(50, 0.2, seed=0))


def test_every_batch_is_half_supervised_as_unirex_samples():
    sup = plausibility_subset(10, 0.25).tolist()  # 3 supervised, 7 not
    s_idx = {i for i, s in enumerate(sup) if s}
    sampler = HalfSupervisedBatchSampler(sup, batch_size=4, factor=2.0, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    batches = list(sampler)
    # 4 - int(max(1, 4 / 2)) = 2 unsupervised examples per batch: 7 -> 4 batches (2, 2, 2, 1)
    assert len(sampler) == 4 and len(batches) == 4
    assert [len(b) for b in batches] == [4, 4, 4, 4]  # the last batch is filled up with 3 supervised ones
    unsup_seen = [i for b in batches for i in b if i not in s_idx]
    assert sorted(unsup_seen) == sorted(set(range(10)) - s_idx)  # each unsupervised example once
    for b in batches:
        assert sum(i in s_idx for i in b) >= 2 and len(set(b)) == len(b)
    assert batches == list(HalfSupervisedBatchSampler(sup, 4, 2.0, True, torch.Generator().manual_seed(0)))


# ------------------------------------------------------------------------------------ 6. L2E
def test_l2e_bins_by_mean_positive_and_mean_negative_with_a_class_for_zero():
    scores = torch.tensor([[7.0, 3.0, 1.0, -2.0, -4.0, 0.0, 2.0, -9.0]])
    expl = torch.tensor([[False, True, True, True, True, True, True, False]])
    # explainable scores 3, 1, -2, -4, 0, 2: mean positive (3 + 1 + 2) / 3 = 2, mean negative -3
    # 3 > 2 -> 4; 0 < 1 <= 2 -> 3; -3 <= -2 < 0 -> 1; -4 < -3 -> 0; 0 -> 2; 2 <= 2 -> 3
    assert L.l2e_targets(scores, expl).tolist() == [[-100, 4, 3, 1, 0, 2, 3, -100]]


def test_l2e_inference_is_argmax_class_minus_two_and_ig_steps_default_three():
    logits = torch.tensor([[[0.0, 0, 5, 0, 0], [9, 0, 0, 0, 0], [0, 0, 0, 0, 7], [0, 3, 0, 0, 0]]])
    assert ordinal_scores(logits).tolist() == [[0.0, -2.0, 2.0, -1.0]]
    assert resolve_config([]).model.ig_steps == 3


# -------------------------------------------------------------------------------- 7. defaults
PAPER_L2E = ["save_checkpoint=True", "data=sst", "data.l2e_exp_id=ER-XXXX", "data.l2e_attr_algo=integrated-gradients",
             "model=expl_reg", "model.explainer_type=lm", "model.expl_head_type=linear", "model.task_wt=1.0",
             "model.plaus_wt=0.5", "model.l2e=True", "model.l2e_wt=0.5", "model.optimizer.lr=2e-5",
             "setup.train_batch_size=32", "setup.accumulate_grad_batches=1", "setup.eff_train_batch_size=32",
             "setup.eval_batch_size=32", "setup.num_workers=3", "seed=0"]


def test_expl_reg_starts_from_the_reference_defaults_and_the_paper_l2e_command_is_l2e():
    m = resolve_config(["model=expl_reg"]).model
    assert (m.comp_wt, m.suff_wt, m.plaus_wt, m.explainer_type, m.expl_head_type) == (0.0, 0.0, 0.0, "self_lm", "linear")
    cfg = resolve_config(PAPER_L2E)
    assert (cfg.model.comp_wt, cfg.model.suff_wt) == (0.0, 0.0)
    assert identify_method(cfg) == "l2e"


@pytest.mark.parametrize("extra,match", [
    (["model.comp_wt=0.5"], "l2e=True trains without comprehensiveness"),
    (["model.suff_wt=0.5"], "l2e=True trains without comprehensiveness"),
])
def test_l2e_with_comp_or_suff_is_refused(extra, match):
    with pytest.raises(UnirexError, match=match):
        resolve_config(PAPER_L2E + extra)


def test_a2r_with_comp_or_suff_is_refused():
    with pytest.raises(UnirexError, match="model=a2r trains without"):
        resolve_config(["method=a2r", "model.comp_wt=0.5"])
    check_settings(resolve_config(["method=a2r"]))


# ------------------------------------------------------------------- 8. training-time inputs
def test_training_sufficiency_keeps_cls_and_the_rationale_comprehensiveness_keeps_the_rest():
    # [CLS] d1 d2 [SEP] q1 [SEP] pad: only the document tokens are explainable
    am = torch.tensor([[1, 1, 1, 1, 1, 1, 0]])
    expl = torch.tensor([[False, True, True, False, False, False, False]])
    r = torch.tensor([[False, True, False, False, False, False, False]])
    assert keep_mask(am, expl, r, "only").tolist() == [[1, 1, 0, 0, 0, 0, 0]]  # UNIREX's expls
    assert keep_mask(am, expl, r, "remove").tolist() == [[1, 0, 1, 1, 1, 1, 0]]  # UNIREX's inv_expls


def test_sufficiency_pass_sees_cls_and_rationale_only(tiny_arch):
    # a gold rationale makes the top-k known: 20% of n = 6 is round(5 * 0.2) = 1 token, position 2
    cfg = resolve_config(["method=aa_sum_gold_comp_suff", f"arch={tiny_arch}", "model.topk=[20]", "model.comp_wt=0",
                          "model.suff_criterion=diff"])
    model = build_model(cfg, 2).eval()
    b = _batch([[101, 2000, 2001, 2002, 2003, 102]], [[False, True, True, True, True, False]], label=1)
    b["rationale"] = torch.tensor([[0.0, 0, 1, 0, 0, 0]])
    lm = model.task_lm
    kw = dict(input_ids=b["input_ids"], token_type_ids=b["token_type_ids"])
    ce = lambda am: F.cross_entropy(lm(attention_mask=torch.tensor([am]), **kw), b["label"]).item()  # noqa: E731
    full = ce([1, 1, 1, 1, 1, 1])
    expected = ce([1, 0, 1, 0, 0, 0]) - full  # L(r) - L(x), r = [CLS] + the rationale, no [SEP]
    got = compute_losses(b, model, cfg)["suff_loss"].item()
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-6)
    other = ce([1, 0, 1, 0, 0, 1]) - full  # what the former rule kept ([SEP] too)
    assert abs(other - got) > 1e-4
