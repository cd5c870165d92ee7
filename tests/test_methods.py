"""The method presets: each builds and trains one step; contradictory settings fail before compute."""

from __future__ import annotations

import pytest
import torch

from unirex.config import resolve_config
from unirex.errors import UnirexError
from unirex.methods import METHODS, check_settings, get_method, list_methods
from unirex.models import build_model
from unirex.objective import compute_losses, plausibility_subset

TEACHER = {"fresh": ["data.fresh_exp_id=teacher"], "l2e": ["data.l2e_exp_id=teacher"]}
PAPER_METHODS = {"task_lm", "sgt", "fresh", "aa_sum_comp_suff", "aa_sum_gold_comp_suff", "aa_sum_inv_comp_suff",
                 "aa_sum_rand_comp_suff", "aa_sum_comp_suff_plaus", "aa_mlp_comp_suff_plaus", "dlm_plaus_linear",
                 "dlm_plaus_mlp", "slm_plaus_linear", "slm_plaus_mlp", "dlm_comp_suff_plaus_linear",
                 "dlm_comp_suff_plaus_mlp", "slm_comp_suff_plaus_linear", "slm_comp_suff_plaus_mlp", "l2e", "a2r"}


@pytest.fixture(scope="module")
def batch(toy_batch):
    return toy_batch(4)


def test_registry_names_every_method_of_the_paper():
    assert set(METHODS) == PAPER_METHODS
    assert [m.id for m in list_methods()] == list(METHODS)
    for m in list_methods():
        assert m.title and len(m.description) > 30 and m.overrides
    with pytest.raises(UnirexError, match="sgt"):
        get_method("sgtt")


@pytest.mark.parametrize("method", sorted(PAPER_METHODS))
def test_every_preset_builds_and_runs_one_training_step(method, tiny_arch, small_heads, batch):
    cfg = resolve_config([f"method={method}", f"arch={tiny_arch}", *small_heads, *TEACHER.get(method, [])])
    model = build_model(cfg, 2).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.task_lm.classifier.parameters()]
    losses = compute_losses(batch, model, cfg)
    assert torch.isfinite(losses["loss"])
    opt.zero_grad()
    losses["loss"].backward()
    opt.step()
    after = list(model.task_lm.classifier.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_presets_resolve_like_the_paper_commands():
    sgt = resolve_config(["method=sgt"])
    paper = resolve_config(["model=expl_reg", "model.explainer_type=attr_algo", "model.attr_algo=input-x-gradient",
                            "model.attr_pooling=sum", "model.task_wt=1.0", "model.comp_wt=0.0", "model.suff_wt=0.5",
                            "model.suff_criterion=kldiv", "model.plaus_wt=0.0"])
    assert sgt == paper
    # the user's overrides win over the preset's
    assert resolve_config(["model.comp_wt=0.25", "method=aa_sum_comp_suff"]).model.comp_wt == 0.25


@pytest.mark.parametrize("overrides,kwargs,match", [
    (["method=dlm_plaus_linear"], {"has_gold_rationales": False}, "gold rationales"),
    (["method=aa_sum_gold_comp_suff"], {"has_gold_rationales": False}, "gold rationales"),
    (["model=expl_reg", "model.explainer_type=lm", "model.l2e=True", "model.l2e_wt=0.5"], {}, "l2e_exp_id"),
    (["method=l2e", "data.l2e_exp_id=x"], {"teacher_available": False}, "saved attributions"),
    (["model=expl_reg", "model.l2e_wt=0.5"], {}, "model.l2e=True"),
    (["method=fresh"], {}, "fresh_exp_id"),
    (["model=lm", "model.comp_wt=0.5"], {}, "model=expl_reg"),
    (["model=expl_reg", "model.a2r_wt=0.5"], {}, "model=a2r"),
    (["model=expl_reg", "model.explainer_type=attr_algo", "model.attr_algo=gradient", "model.plaus_wt=0.5"], {},
     "differentiable"),
    (["model=expl_reg", "model.explainer_type=attr_algo", "model.attr_algo=integrated-gradients",
      "model.plaus_wt=0.5", "model.attr_grad=create_graph", "model.attr_pooling=sum"], {}, None),
    (["model=expl_reg", "model.explainer_type=attr_algo", "model.attr_algo=rand", "model.plaus_wt=0.5"], {},
     "nothing to train"),
    (["training=evaluate"], {}, "ckpt_path"),
])
def test_contradictory_settings_are_errors_before_compute(overrides, kwargs, match):
    if match is None:  # a setting that must pass
        check_settings(resolve_config(overrides), **kwargs)
        return
    with pytest.raises(UnirexError, match=match):
        cfg = resolve_config(overrides)
        check_settings(cfg, **kwargs)


def test_checks_pass_when_the_data_fits():
    cfg = resolve_config(["method=l2e", "data.l2e_exp_id=run1"])
    check_settings(cfg, has_gold_rationales=True, teacher_available=True)
    check_settings(resolve_config(["method=sgt"]), has_gold_rationales=False)


def test_plausibility_fraction_selects_an_exact_seeded_subset(tiny_arch, batch):
    sel = plausibility_subset(200, 0.1, seed=1)
    assert sel.sum() == 20 and torch.equal(sel, plausibility_subset(200, 0.1, seed=1))
    assert not torch.equal(sel, plausibility_subset(200, 0.1, seed=2))
    cfg = resolve_config(["method=dlm_plaus_linear", f"arch={tiny_arch}", "data.plaus_frac=0.5"])
    model = build_model(cfg, 2)
    with pytest.raises(UnirexError, match="plaus_mask"):
        compute_losses(batch, model, cfg)
    none = dict(batch, plaus_mask=torch.zeros(4, dtype=torch.bool))
    assert compute_losses(none, model, cfg)["plaus_loss"].item() == 0.0


@pytest.mark.parametrize("method", sorted(PAPER_METHODS))
def test_identify_method_recognises_every_preset(method):
    from unirex.config import identify_method

    assert identify_method(resolve_config([f"method={method}", *TEACHER.get(method, [])])) == method
