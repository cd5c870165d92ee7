"""Slow integration tests on the real bundled MiniLM and the demo dataset (1,000 train examples; minutes, still in `make test`).

- Task LM (input-x-gradient explanations) reaches test accuracy >= 0.90 after one seeded epoch on 1,000 examples.
- SLM (plaus) gives clearly more plausible rationales (test AUPRC) than Task LM + input-x-gradient.
- Training's comp/suff variants give the same logits, losses and gradients dropped as masked.
"""

from __future__ import annotations

import pytest

from unirex.engine import resolve_run_config, run

pytestmark = pytest.mark.slow
COMMON = ["data=demo", "data.num_train=1000", "arch=default", "data.max_length=128", "training.epochs=1", "setup.train_batch_size=8",
          "setup.eval_batch_size=32", "model.optimizer.lr=5e-5", "training.eval_splits=test", "seed=0"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("minilm-ws")


@pytest.fixture(scope="module")
def task_lm_run(workspace):
    res = run(resolve_run_config(COMMON + [f"workspace={workspace}", "method=task_lm"]))
    assert res.status == "completed"
    return res


def test_task_lm_learns_the_demo_in_one_epoch(task_lm_run):
    acc = task_lm_run.metrics["test_acc"]
    print(f"Task LM test acc {acc:.4f}, AUPRC {task_lm_run.metrics['test_plaus_auprc']:.4f}")
    assert acc >= 0.90


def test_slm_plaus_is_more_plausible_than_input_x_gradient(workspace, task_lm_run):
    slm = run(resolve_run_config(COMMON + [f"workspace={workspace}", "method=slm_plaus_linear"]))
    assert slm.status == "completed"
    base, ours = task_lm_run.metrics["test_plaus_auprc"], slm.metrics["test_plaus_auprc"]
    print(f"test AUPRC: Task LM + input-x-gradient {base:.4f}, SLM (plaus) {ours:.4f}; SLM acc {slm.metrics['test_acc']:.4f}")
    assert ours >= base + 0.15
    assert slm.metrics["test_acc"] >= 0.85  # plausibility training does not cost the task


@pytest.mark.parametrize("method", ["slm_comp_suff_plaus_linear", "aa_sum_comp_suff"])
def test_dropped_variants_equal_masked_ones_on_minilm(small_demo_dir, method):
    """model.rationale_removal=drop against =mask on MiniLM (eval mode): per-variant logits, every loss
    and every gradient within 1e-5 (gradients relative to each tensor's scale, at least 1)."""
    import torch

    from unirex.config import resolve_config
    from unirex.data import load_split
    from unirex.models import build_model
    from unirex.models.removal import resolve_removal, variant_logits
    from unirex.objective import compute_losses

    ds, _ = load_split(small_demo_dir, "demo", "train", arch="default", max_length=128)
    batch = ds.collate([ds[i] for i in range(4)])
    model = build_model(resolve_config(["arch=default", f"method={method}"]), 2).eval()
    assert resolve_removal("drop", model.task_lm.encoder).removal == "drop"
    g = torch.Generator().manual_seed(0)
    expl = batch["explainable"].bool()
    variants = [((torch.rand(expl.shape, generator=g) < f) & expl, mode) for f in (0.05, 0.5) for mode in ("remove", "only")]
    with torch.no_grad():
        for a, b in zip(variant_logits(model.task_lm, batch, variants, removal="mask"),
                        variant_logits(model.task_lm, batch, variants, removal="drop")):
            assert torch.allclose(a, b, atol=1e-5, rtol=0), (a - b).abs().max()
    out = {}
    for removal in ("mask", "drop"):
        cfg = resolve_config(["arch=default", f"method={method}", f"model.rationale_removal={removal}"])
        model.zero_grad(set_to_none=True)
        losses = compute_losses(batch, model, cfg)
        losses["loss"].backward()
        out[removal] = ({k: float(v.detach()) for k, v in losses.items()},
                        {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    (lm_, gm), (ld, gd) = out["mask"], out["drop"]
    assert {"comp_loss", "suff_loss"} <= lm_.keys()
    for k in lm_:
        assert abs(lm_[k] - ld[k]) <= 1e-5, k
    assert gm.keys() == gd.keys()
    worst = max(float((gm[n] - gd[n]).abs().max()) / max(1.0, float(gm[n].abs().max())) for n in gm)
    print(f"{method}: largest gradient difference {worst:.2e} (of each tensor's scale)")
    assert worst <= 1e-5
