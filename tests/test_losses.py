"""UNIREX's losses: formulas, the top-k rule, and which parameters each loss trains (tiny BERT)."""

from __future__ import annotations

import math

import pytest
import torch

from unirex import losses as L
from unirex.config import resolve_config
from unirex.models import build_model
from unirex.objective import compute_losses
from unirex.rationale import repack, topk_count, topk_mask



@pytest.fixture(scope="module")
def batch(toy_batch):
    return toy_batch(8)


@pytest.fixture(scope="session")
def make_cfg(tiny_arch, small_heads):
    """``make_cfg(*overrides)``: a config on the tiny BERT with small explainer heads."""
    return lambda *overrides: resolve_config([f"arch={tiny_arch}", *small_heads, *overrides])


# ------------------------------------------------------------------------------------ formulas
def test_comprehensiveness_and_sufficiency_criteria():
    full, other = torch.tensor([0.5, 0.5, 3.0]), torch.tensor([0.2, 4.0, 0.1])
    # comp margin m=1: max(-1, L(x) - L(x\r)) + 1
    assert torch.allclose(L.comp_loss(full, other), torch.tensor([1.3, 0.0, 3.9]))
    assert torch.allclose(L.comp_loss(full, other, "diff"), full - other)
    # suff margin m=0.1: max(-0.1, L(r) - L(x)) + 0.1
    assert torch.allclose(L.suff_loss(full, other), torch.tensor([0.0, 3.6, 0.0]))
    assert torch.allclose(L.suff_loss(full, other, "mae"), (other - full).abs())
    assert torch.allclose(L.suff_loss(full, other, "mse"), (other - full) ** 2)
    lf, lo = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert L.suff_loss(full[:1], other[:1], "kldiv", logits_full=lf, logits_only=lf).item() == pytest.approx(0.0, abs=1e-7)
    assert L.suff_loss(full[:1], other[:1], "kldiv", logits_full=lf, logits_only=lo).item() > 0


def test_jensen_shannon_divergence_bounds():
    a, b = torch.tensor([[5.0, -5.0], [0.3, 0.1]]), torch.tensor([[-5.0, 5.0], [0.3, 0.1]])
    js = L.js_divergence(a, b)
    assert torch.allclose(js, L.js_divergence(b, a))
    assert js[1].item() == pytest.approx(0.0, abs=1e-7)
    assert 0.6 < js[0].item() <= math.log(2) + 1e-6


def test_plausibility_bce_uses_pos_weight():
    scores = torch.tensor([[2.0, -1.0, 0.5, 9.0]])
    gold = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    mask = torch.tensor([[True, True, True, False]])  # the last token is not scored
    # 1 positive, 2 negatives among the masked tokens -> pos_weight 2
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        scores[mask], gold[mask], pos_weight=torch.tensor(2.0))
    assert L.plaus_loss(scores, gold, mask).item() == pytest.approx(expected.item())


def test_topk_rule_counts_non_padding_tokens_and_selects_explainable_only():
    # n = 6 non-padding tokens -> 50%: round(5 * 0.5) = 2 (half to even); 1%: max(1, 0) = 1
    assert topk_count(6, 50) == 2 and topk_count(6, 1) == 1
    scores = torch.tensor([[100.0, 3.0, 1.0, 2.0, 5.0, 50.0, 0.0]])
    expl = torch.tensor([[False, True, True, True, True, False, False]])
    am = torch.tensor([[1, 1, 1, 1, 1, 1, 0]])
    assert topk_mask(scores, expl, am, 50).tolist() == [[False, True, False, False, True, False, False]]
    assert topk_mask(scores, expl, am, 100).sum() == 4  # capped at the explainable tokens
    packed = repack({"input_ids": torch.tensor([[1, 2, 3, 4, 5, 6, 0]]), "label": torch.tensor([1])},
                    torch.tensor([[True, False, True, False, True, True, False]]))
    assert packed["input_ids"].tolist() == [[1, 3, 5, 6]]


# ---------------------------------------------------------------------------- gradient targets
def _grad_norms(loss, modules: dict) -> dict[str, float]:
    named = {k: [p for p in m.parameters() if p.requires_grad] for k, m in modules.items()}
    flat = [p for ps in named.values() for p in ps]
    grads = torch.autograd.grad(loss, flat, allow_unused=True, retain_graph=True)
    out, i = {}, 0
    for k, ps in named.items():
        gs = grads[i:i + len(ps)]
        i += len(ps)
        out[k] = sum(float(g.abs().sum()) for g in gs if g is not None)
    return out


CASES = [
    # (overrides, loss name, parts that must get a gradient, parts that must not)
    (["method=dlm_comp_suff_plaus_linear"], "task_loss", {"task_lm"}, {"extractor"}),
    (["method=dlm_comp_suff_plaus_linear"], "comp_loss", {"task_lm"}, {"extractor"}),
    (["method=dlm_comp_suff_plaus_linear"], "suff_loss", {"task_lm"}, {"extractor"}),
    (["method=dlm_comp_suff_plaus_linear"], "plaus_loss", {"extractor"}, {"task_lm"}),
    (["method=sgt"], "suff_loss", {"task_lm"}, set()),
    (["method=slm_plaus_linear"], "plaus_loss", {"extractor", "encoder"}, {"task_head"}),
    (["method=aa_sum_comp_suff_plaus"], "plaus_loss", {"encoder"}, set()),
    (["method=aa_mlp_comp_suff_plaus"], "plaus_loss", {"extractor", "encoder"}, set()),
    (["method=aa_sum_gold_comp_suff"], "comp_loss", {"task_lm"}, set()),
    (["method=l2e", "data.l2e_exp_id=teacher"], "l2e_loss", {"extractor"}, {"task_lm"}),
    (["method=a2r"], "a2r_loss", {"a2r", "extractor", "task_lm"}, set()),
    (["method=a2r"], "task_loss", {"task_lm"}, {"a2r", "extractor"}),
    (["method=dlm_comp_suff_plaus_linear", "model.rationale_relaxation=straight_through"], "comp_loss",
     {"task_lm", "extractor"}, set()),
]


@pytest.mark.parametrize("overrides,name,trained,untouched", CASES,
                         ids=[f"{c[0][0].split('=')[1]}-{c[1]}" + ("-st" if len(c[0]) > 1 and "relax" in c[0][1] else "")
                              for c in CASES])
def test_each_loss_is_finite_and_trains_only_its_parameters(make_cfg, batch, overrides, name, trained, untouched):
    cfg = make_cfg(*overrides)
    model = build_model(cfg, 2).train()
    losses = compute_losses(batch, model, cfg)
    assert name in losses and torch.isfinite(losses[name])
    parts = {"task_lm": model.task_lm, "encoder": model.task_lm.encoder, "task_head": model.task_lm.classifier,
             "extractor": model.extractor}
    if model.a2r is not None:
        parts["a2r"] = model.a2r
    norms = _grad_norms(losses[name], {k: parts[k] for k in trained | untouched})
    for k in trained:
        assert norms[k] > 0, f"{name} gives no gradient to {k}"
    for k in untouched:
        assert norms[k] == 0, f"{name} should not train {k}"


def test_thirty_steps_of_plausibility_training_lower_the_plausibility_loss(make_cfg, batch):
    cfg = make_cfg("method=slm_plaus_linear", "model.task_wt=0.0")
    model = build_model(cfg, 2).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = []
    for _ in range(30):
        losses = compute_losses(batch, model, cfg)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        history.append(losses["plaus_loss"].item())
    assert history[-1] < 0.7 * history[0], history
