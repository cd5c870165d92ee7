"""Task LM, every rationale extractor, and the attribution algorithms (tiny BERT)."""

from __future__ import annotations

import pytest
import torch

from unirex.data import load_split
from unirex.models import TaskLM, TokenHead
from unirex.models.extractors import (AttributionExtractor, LMExtractor, SelfLMExtractor,
                                      captum_attributions, input_x_gradient, saliency)
from unirex.models.task_lm import load_encoder
from unirex.registry import attribution_specs

#: the built-in attribution algorithms (Captum's, then the gold / inv / rand scorers), as registered
BUILTIN_ALGOS = tuple(s.name for s in attribution_specs() if s.builtin)


@pytest.fixture(scope="module")
def split(small_demo_dir, tiny_arch):
    ds, _ = load_split(small_demo_dir, "demo", "train", arch=tiny_arch, max_length=64)
    return ds


@pytest.fixture(scope="module")
def batch(split):
    return split.collate([split[i] for i in range(6)])


@pytest.fixture(scope="module")
def task_lm(tiny_arch):
    torch.manual_seed(0)
    return TaskLM.from_arch(tiny_arch, num_classes=2, dropout=0.1).eval()


def test_task_lm_takes_ids_or_embeddings(task_lm, batch):
    kw = dict(attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"])
    a = task_lm(input_ids=batch["input_ids"], **kw)
    b = task_lm(inputs_embeds=task_lm.embed(batch["input_ids"]), **kw)
    assert a.shape == (6, 2)
    assert torch.allclose(a, b, atol=1e-6)


def test_rationale_removal_follows_unirex_masks(task_lm, batch):
    empty = torch.zeros_like(batch["explainable"])
    kw = dict(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"])
    full = task_lm(attention_mask=batch["attention_mask"], **kw)
    # removing nothing is the full input
    assert torch.allclose(task_lm.forward_rationale(batch, empty, "remove"), full, atol=1e-6)
    # keeping an empty rationale leaves the first token ([CLS]) alone, as UNIREX's expls mask
    first = torch.zeros_like(batch["attention_mask"])
    first[:, 0] = 1
    only = task_lm(attention_mask=first, **kw)
    assert torch.allclose(task_lm.forward_rationale(batch, empty, "only"), only, atol=1e-6)
    # removing every explainable token keeps the special tokens (UNIREX's inv_expls)
    special = batch["attention_mask"] * (~batch["explainable"]).long()
    rest = task_lm(attention_mask=special, **kw)
    assert torch.allclose(task_lm.forward_rationale(batch, batch["explainable"], "remove"), rest, atol=1e-6)
    assert not torch.allclose(rest, full, atol=1e-4)


def _extractors(tiny_arch, hidden):
    head = lambda out=1, t="linear": TokenHead(hidden, out, t, hidden_dim=16, hidden_layers=2)  # noqa: E731
    ex = {f"attr:{a}": AttributionExtractor(a, "sum", hidden, ig_steps=4, return_convergence_delta=True)
          for a in BUILTIN_ALGOS}
    ex["attr:input-x-gradient:mlp"] = AttributionExtractor("input-x-gradient", "mlp", hidden, 16, 2)
    ex["lm:linear"] = LMExtractor(load_encoder(tiny_arch), head())
    ex["lm:mlp"] = LMExtractor(load_encoder(tiny_arch), head(t="mlp"))
    ex["self_lm:linear"] = SelfLMExtractor(head())
    ex["self_lm:l2e"] = SelfLMExtractor(head(out=5))
    return ex


def test_every_extractor_scores_only_explainable_positions(task_lm, batch, tiny_arch):
    torch.manual_seed(0)
    expl = batch["explainable"]
    for name, ex in _extractors(tiny_arch, task_lm.hidden_size).items():
        s = ex.scores(batch, task_lm)
        assert s.shape == batch["input_ids"].shape, name
        assert torch.isfinite(s).all(), name
        assert (s[~expl] == 0).all(), f"{name}: non-zero score outside explainable positions"
        assert (s[expl] != 0).any(), f"{name}: no signal on explainable positions"


def test_differentiable_input_x_gradient_equals_captum(task_lm, batch):
    target = batch["label"]
    ours = input_x_gradient(task_lm, batch, target, create_graph=True)
    captum, _ = captum_attributions("input-x-gradient", task_lm, batch, target)
    assert ours.requires_grad
    assert torch.allclose(ours, captum, atol=1e-5, rtol=1e-4)
    sal, _ = captum_attributions("gradient", task_lm, batch, target)
    assert torch.allclose(saliency(task_lm, batch, target, create_graph=True), sal, atol=1e-5, rtol=1e-4)
    # double backward reaches the task LM's weights (the SDPA math kernel makes it possible on CPU)
    task_lm.zero_grad()
    ours.sum(-1).pow(2).sum().backward()
    grads = [p.grad for p in task_lm.encoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    task_lm.zero_grad()


def test_integrated_gradients_convergence_delta_shrinks_with_steps(task_lm, batch):
    """IG's completeness gap falls as the Riemann sum gets finer. A random tiny BERT is nearly linear in its
    embeddings, so in float32 the gap reaches rounding noise (about 1e-8) by 4 steps and the order of two noise
    values is the machine's: the model runs in float64 here (noise about 1e-14), and the ratios asserted are
    orders of magnitude, not a strict order of neighbouring values."""
    import copy

    model = copy.deepcopy(task_lm).double()
    deltas = {}
    for steps in (1, 2, 4, 64):
        _, d = captum_attributions("integrated-gradients", model, batch, batch["label"], ig_steps=steps,
                                   internal_batch_size=16, return_convergence_delta=True)
        deltas[steps] = d.abs().mean().item()
    assert deltas[1] > 1e-9  # the 1-step gap is far above float64 noise, so the ratios below mean something
    assert deltas[1] > 3 * deltas[2] > 9 * deltas[4]
    assert deltas[64] < deltas[1] / 1000


def test_gold_is_perfectly_plausible_and_inv_not_at_all(task_lm, batch):
    from sklearn.metrics import average_precision_score

    gold = AttributionExtractor("gold").scores(batch, task_lm)
    inv = AttributionExtractor("inv").scores(batch, task_lm)
    for i in range(batch["input_ids"].shape[0]):
        expl = batch["explainable"][i]
        truth = batch["rationale"][i][expl].numpy()
        if 0 < truth.sum() < truth.size:
            assert average_precision_score(truth, gold[i][expl].numpy()) == pytest.approx(1.0)
        g_hard, i_hard = gold[i][expl] > 0.5, inv[i][expl] > 0.5
        t = torch.from_numpy(truth > 0.5)
        assert torch.equal(g_hard, t)  # token F1 = 1
        assert not (i_hard & t).any()  # token F1 = 0: no gold token predicted


def test_rand_scores_are_seeded_per_example(task_lm, split):
    a = split.collate([split[i] for i in (0, 1)])
    b = split.collate([split[i] for i in (5, 1)])  # example 1 in another batch, other padding
    r = AttributionExtractor("rand", seed=3)
    sa, sb = r.scores(a, task_lm), r.scores(b, task_lm)
    n = int(a["attention_mask"][1].sum())
    assert torch.equal(sa[1, :n], sb[1, :n])
    assert not torch.equal(AttributionExtractor("rand", seed=4).scores(a, task_lm), sa)


def test_task_lm_save_and_load_roundtrip(task_lm, batch, tmp_path):
    task_lm.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
    loaded = TaskLM.from_pretrained(tmp_path / "ckpt").eval()
    kw = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert torch.allclose(loaded(**kw), task_lm(**kw), atol=1e-6)


def test_gradient_shap_is_reproducible_for_a_seed(task_lm, batch):
    """GradientShap draws its baselines from numpy and its noise from torch: the same seed gives the same
    attributions whatever numpy's global state, another seed other ones, and the caller's numpy state is
    left as it was."""
    import numpy as np

    np.random.seed(1)
    a, _ = captum_attributions("gradient-shap", task_lm, batch, batch["label"], seed=7)
    after_a = np.random.get_state()[1].copy()
    np.random.seed(2)
    b, _ = captum_attributions("gradient-shap", task_lm, batch, batch["label"], seed=7)
    c, _ = captum_attributions("gradient-shap", task_lm, batch, batch["label"], seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    np.random.seed(1)
    assert np.array_equal(np.random.get_state()[1], after_a)  # numpy's global state was put back
