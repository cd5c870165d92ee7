"""Training-time rationale removal: dropping the removed tokens (original positions kept) against the
attention mask (tiny random encoders): same logits, losses and gradients; which archs may drop."""

from __future__ import annotations

import json

import pytest
import torch

from unirex.config import resolve_config
from unirex.errors import UnirexError
from unirex.models import TaskLM, build_model
from unirex.models.removal import drop_support, original_position_ids, resolve_removal, variant_logits
from unirex.objective import compute_losses
from unirex.packing import run_packed

TOL = 1e-5


def _grad_close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Within 1e-5 of the tensor's own scale: a gradient row that sums thousands of float32 terms (the
    [CLS] embedding, segment 0) carries a summation-order error of about 1e-6 of its size."""
    return bool((a - b).abs().max() <= TOL * max(1.0, float(a.abs().max())))


def _random_rationales(batch, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    expl = batch["explainable"].bool()
    out = []
    for i in range(n):
        frac = (0.02, 0.1, 0.3, 0.6, 0.9)[i % 5]
        out.append((torch.rand(expl.shape, generator=g) < frac) & expl)
    return out


def _variants(batch, seed=0):
    rs = _random_rationales(batch, 5, seed)
    return [(r, mode) for r in rs for mode in ("remove", "only")]


def _encoder_positions(lm):
    """A forward hook on the encoder summing the positions of every call (batch x length)."""
    seen = []

    def hook(module, args, kwargs):
        x = kwargs.get("input_ids")
        x = kwargs.get("inputs_embeds") if x is None else x
        seen.append(x.shape[0] * x.shape[1])

    return seen, lm.encoder.register_forward_pre_hook(hook, with_kwargs=True)


# --------------------------------------------------------------------------- the default arch (BERT)
@pytest.fixture(scope="module")
def batch(toy_batch):
    b = toy_batch(8)
    # a query-like second segment: the last 6 non-padding tokens of each row, never explainable
    n = b["attention_mask"].sum(1)
    for i, ni in enumerate(n.tolist()):
        b["token_type_ids"][i, ni - 6 : ni] = 1
        b["explainable"][i, ni - 6 : ni] = 0
    return b


@pytest.fixture(scope="module")
def task_lm(tiny_arch):
    torch.manual_seed(0)
    return TaskLM.from_arch(tiny_arch, num_classes=3).eval()


def test_bert_drops_and_the_variants_equal_the_masked_ones(task_lm, batch):
    assert resolve_removal("drop", task_lm.encoder).removal == "drop"
    assert batch["attention_mask"].sum(1).unique().numel() > 1  # rows of different lengths (padding)
    variants = _variants(batch)
    masked = variant_logits(task_lm, batch, variants, removal="mask")
    seen, handle = _encoder_positions(task_lm)
    dropped = variant_logits(task_lm, batch, variants, removal="drop")
    handle.remove()
    assert len(masked) == len(dropped) == len(variants)
    for (r, mode), a, b in zip(variants, masked, dropped):
        assert a.shape == b.shape == (8, 3)
        assert torch.allclose(a, b, atol=TOL, rtol=0), f"{mode}: {(a - b).abs().max()}"
    # the dropped variants ran at their own lengths: far fewer positions than 10 full-length copies
    full = len(variants) * batch["input_ids"].numel()
    assert sum(seen) < 0.8 * full
    # and the variants differ from each other (the comparison is not vacuous)
    assert not torch.allclose(masked[0], masked[1], atol=1e-4)


@pytest.mark.parametrize("attention", ["eager", "sdpa-math"])
def test_drop_equals_mask_under_every_attention_kernel(tiny_arch, batch, attention):
    """Eager attention, and SDPA's math kernel (what the double backward of AA-Sum plausibility runs in)."""
    import contextlib

    from unirex.models.extractors import second_order_attention

    torch.manual_seed(0)
    lm = TaskLM.from_arch(tiny_arch, 2, attn_implementation="eager" if attention == "eager" else None).eval()
    ctx = second_order_attention() if attention == "sdpa-math" else contextlib.nullcontext()
    variants = _variants(batch, seed=5)
    with ctx:
        for a, b in zip(variant_logits(lm, batch, variants, removal="mask"), variant_logits(lm, batch, variants)):
            assert torch.allclose(a, b, atol=TOL, rtol=0)


def test_forward_rationale_takes_either_removal(task_lm, batch):
    r = _random_rationales(batch, 1, seed=3)[0]
    for mode in ("remove", "only"):
        a = task_lm.forward_rationale(batch, r, mode, removal="mask")
        b = task_lm.forward_rationale(batch, r, mode)  # drop is the default
        assert torch.allclose(a, b, atol=TOL, rtol=0)


def test_straight_through_factors_give_the_same_gradient_on_both_paths(task_lm, batch):
    variants = _variants(batch, seed=1)
    grads = {}
    for removal in ("mask", "drop"):
        scores = torch.randn(batch["input_ids"].shape, generator=torch.Generator().manual_seed(0), requires_grad=True)
        task_lm.zero_grad()
        logits = variant_logits(task_lm, batch, variants, torch.sigmoid(scores), removal)
        # a loss of the objective's scale (mean over examples and variants), as the losses are
        torch.stack([lg.log_softmax(-1)[:, 0].mean() for lg in logits]).mean().backward()
        grads[removal] = (scores.grad.clone(),
                          {n: p.grad.clone() for n, p in task_lm.named_parameters() if p.grad is not None})
    assert grads["mask"][0].abs().max() > 0  # the relaxation reaches the scores
    assert _grad_close(grads["mask"][0], grads["drop"][0])
    assert grads["mask"][1].keys() == grads["drop"][1].keys()
    for name, g in grads["mask"][1].items():
        assert _grad_close(g, grads["drop"][1][name]), f"{name}: {(g - grads['drop'][1][name]).abs().max()} of {g.abs().max()}"


METHODS = [
    ["method=slm_comp_suff_plaus_linear"],
    ["method=aa_sum_comp_suff"],
    ["method=aa_sum_comp_suff_plaus"],  # plausibility through attributions: a double backward
    ["method=sgt"],
    ["method=a2r"],
    ["method=dlm_comp_suff_plaus_linear", "model.rationale_relaxation=straight_through"],
    ["method=slm_comp_suff_plaus_linear", "model.rationale_relaxation=straight_through"],
]


@pytest.mark.parametrize("overrides", METHODS, ids=["+".join(o.split("=")[1] for o in ov) for ov in METHODS])
def test_losses_and_gradients_agree_between_drop_and_mask(tiny_arch, small_heads, toy_batch, overrides):
    batch = toy_batch(8)
    out = {}
    model = build_model(resolve_config([f"arch={tiny_arch}", *small_heads, *overrides]), 2).eval()  # dropout off
    for removal in ("mask", "drop"):
        cfg = resolve_config([f"arch={tiny_arch}", *small_heads, *overrides, f"model.rationale_removal={removal}"])
        model.zero_grad(set_to_none=True)
        seen, handle = _encoder_positions(model.task_lm)
        losses = compute_losses(batch, model, cfg)
        losses["loss"].backward()
        handle.remove()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        out[removal] = ({k: float(v.detach()) for k, v in losses.items()}, grads, sum(seen))
    (lm_, gm, pm), (ld, gd, pd) = out["mask"], out["drop"]
    assert lm_.keys() == ld.keys()
    assert any(k in lm_ for k in ("comp_loss", "suff_loss", "a2r_loss"))
    for k in lm_:
        assert ld[k] == pytest.approx(lm_[k], abs=TOL), k
    assert gm.keys() == gd.keys() and any(n.startswith("task_lm.") for n in gm)
    for name, g in gm.items():
        assert _grad_close(g, gd[name]), f"{name}: {(g - gd[name]).abs().max()} of {g.abs().max()}"
    assert pd < pm  # the dropped variants really ran shorter


def test_config_key_is_validated():
    assert resolve_config([]).model.rationale_removal == "drop"
    assert resolve_config(["model.rationale_removal=mask"]).model.rationale_removal == "mask"
    with pytest.raises(UnirexError, match="model.rationale_removal"):
        resolve_config(["model.rationale_removal=delete"])


def test_run_packed_puts_rows_back_in_order_and_back_propagates():
    keep = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 1], [1, 1, 1, 1]], dtype=torch.bool)
    values = torch.arange(16.0).view(4, 4).requires_grad_(True)
    out, cost = run_packed(lambda p: (p["v"] * p["attention_mask"]).sum(1), {"v": values}, keep, chunk_size=2)
    assert out.tolist() == [0 + 1 + 2, 4, 8 + 9 + 11, 12 + 13 + 14 + 15]
    out.sum().backward()
    assert values.grad.bool().tolist() == keep.tolist()
    assert cost.forward_passes == 2 and cost.positions < keep.numel()


# ------------------------------------------------------------------------------- other architectures
def _tiny(model_type: str, **extra):
    from transformers import AutoConfig, AutoModel

    kw = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
              max_position_embeddings=128)
    if model_type == "distilbert":
        kw = dict(vocab_size=99, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=128)
    if model_type == "albert":
        kw["embedding_size"] = 16
    kw.update(extra)
    torch.manual_seed(0)
    return AutoModel.from_config(AutoConfig.for_model(model_type, **kw))


def _arch_batch(encoder, seed=0):
    pad = getattr(encoder.config, "pad_token_id", None) or 0
    g = torch.Generator().manual_seed(seed)
    B, L = 4, 30
    ids = torch.randint(5, 99, (B, L), generator=g)
    lengths = torch.tensor([30, 24, 17, 9])
    am = (torch.arange(L) < lengths.unsqueeze(1)).long()
    ids = torch.where(am.bool(), ids, torch.full_like(ids, pad))
    expl = am.bool().clone()
    expl[:, 0] = False
    expl[torch.arange(B), lengths - 1] = False
    tt = torch.zeros_like(ids)
    if getattr(encoder.config, "type_vocab_size", 1) > 1:
        tt[:, 20:] = 1
        expl[:, 20:] = False
    return {"input_ids": ids, "attention_mask": am, "token_type_ids": tt, "explainable": expl}


DROP_ARCHS = [("bert", {}), ("roberta", {}), ("xlm-roberta", {}), ("camembert", {}), ("electra", {}),
              ("albert", {}), ("distilbert", {}), ("ernie", {}), ("data2vec-text", {}),
              ("roberta-prelayernorm", {}), ("big_bird", {"attention_type": "original_full"})]


@pytest.mark.parametrize("model_type,extra", DROP_ARCHS, ids=[a for a, _ in DROP_ARCHS])
def test_absolute_position_archs_drop_and_agree_with_the_mask(model_type, extra):
    lm = TaskLM(_tiny(model_type, **extra), 2).eval()
    assert resolve_removal("drop", lm.encoder, 30).removal == "drop", drop_support(lm.encoder)
    batch = _arch_batch(lm.encoder)
    variants = _variants(batch, seed=2)
    masked = variant_logits(lm, batch, variants, removal="mask")
    dropped = variant_logits(lm, batch, variants, removal="drop")
    for a, b in zip(masked, dropped):
        assert torch.allclose(a, b, atol=TOL, rtol=0), f"{model_type}: {(a - b).abs().max()}"
    # the positions given are the encoder's own: running the full input with them changes nothing
    full = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"])
    assert torch.allclose(lm(**full), lm(**full, position_ids=original_position_ids(lm.encoder, batch["input_ids"])),
                          atol=TOL, rtol=0)


NO_DROP_ARCHS = [("deberta-v2", {"relative_attention": True, "position_biased_input": False}, "relative"),
                 ("mpnet", {}, "relative"), ("mobilebert", {"embedding_size": 16}, "trigram"),
                 ("longformer", {"attention_window": 4}, "window"), ("roformer", {}, "rotary")]


@pytest.mark.parametrize("model_type,extra,why", NO_DROP_ARCHS, ids=[a for a, _, _ in NO_DROP_ARCHS])
def test_other_archs_fall_back_to_the_mask_and_say_why(model_type, extra, why):
    enc = _tiny(model_type, **extra)
    choice = resolve_removal("drop", enc)
    assert choice.removal == "mask" and model_type in choice.reason and why in choice.reason
    if model_type in ("longformer", "roformer"):
        return  # the fallback's logits are covered on the others (longformer needs padded windows)
    lm = TaskLM(enc, 2).eval()
    batch = _arch_batch(enc)
    variants = _variants(batch, seed=4)
    for a, b in zip(variant_logits(lm, batch, variants, removal="mask"), variant_logits(lm, batch, variants)):
        assert torch.equal(a, b)  # the same masked pass


def test_unknown_model_types_are_not_dropped():
    class Enc(torch.nn.Module):
        config = type("C", (), {"model_type": "newfangled"})()

        def forward(self, input_ids=None, position_ids=None):
            return input_ids

    ok, reason = drop_support(Enc())
    assert not ok and "newfangled" in reason


def test_big_bird_drops_only_while_it_attends_fully():
    enc = _tiny("big_bird", attention_type="block_sparse", block_size=4, num_random_blocks=1)  # full up to 28
    assert resolve_removal("drop", enc, 28).removal == "drop"
    assert resolve_removal("drop", enc, 29).removal == "mask"
    assert "28" in resolve_removal("drop", enc).reason
    assert resolve_removal("mask", enc, 10).removal == "mask"


# ------------------------------------------------------------------------------------------ the run
def test_a_run_records_the_removal_it_got(tmp_path, common):
    from unirex.engine import Engine, resolve_run_config, run

    base = common + [f"workspace={tmp_path}", "debug=True", "training.eval_splits=dev"]
    res = run(resolve_run_config(base + ["method=aa_sum_comp_suff"]))
    assert res.status == "completed"
    meta = json.loads((res.run_dir / "meta.json").read_text())
    assert meta["rationale_removal"] == "drop" and "bert" in meta["rationale_removal_reason"]
    # a run without comp/suff variants has nothing to record
    assert Engine(resolve_run_config(base + ["method=task_lm"])).rationale_removal() is None
