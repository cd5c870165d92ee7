"""The config: the paper's key names, Hydra-style overrides, errors that suggest the right key."""

from __future__ import annotations

import pytest

from unirex.config import (MODEL_GROUPS, RunConfig, expand_sweep, from_dict, resolve_config, to_dict, to_overrides,
                           valid_keys)
from unirex.errors import UnirexError

# every key the UNIREX README uses (issue 5's list)
PAPER_KEYS = [
    "seed", "save_checkpoint", "debug", "data_dir", "arch", "logger.offline", "model.explainer_type",
    "model.attr_algo", "model.attr_pooling", "model.attr_mlp_hidden_dim", "model.attr_mlp_hidden_layers",
    "model.optimizer.lr", "setup.train_batch_size", "setup.accumulate_grad_batches", "setup.eff_train_batch_size",
    "setup.eval_batch_size", "setup.num_workers", "model.task_wt", "model.comp_wt", "model.suff_wt",
    "model.suff_criterion", "model.plaus_wt", "model.expl_head_type", "model.expl_head_mlp_hidden_dim",
    "model.expl_head_mlp_hidden_layers", "model.save_outputs", "model.exp_id", "data.fresh_exp_id",
    "data.fresh_attr_algo", "data.fresh_topk", "data.l2e_exp_id", "data.l2e_attr_algo", "model.l2e",
    "model.l2e_wt", "model.a2r_wt", "model.ig_steps", "model.return_convergence_delta", "model.internal_batch_size",
    "model.measure_attrs_runtime", "training.ckpt_path", "training.eval_splits",
]


def test_every_key_of_the_paper_exists():
    keys = set(valid_keys())
    assert not [k for k in PAPER_KEYS if k not in keys]


def test_paper_command_resolves_with_quoted_values():
    # as the shell hands them over from: training.ckpt_path="'ER-XXXX/checkpoints/epoch=X-step=XXXX.ckpt'"
    cfg = resolve_config([
        "logger.offline=True", "training=evaluate", "training.ckpt_path='ER-XXXX/checkpoints/epoch=X-step=XXXX.ckpt'",
        "training.eval_splits='train,dev,test'", "data=sst", "model=lm", "model.explainer_type=attr_algo",
        "model.attr_algo=input-x-gradient", "model.attr_pooling=sum", "model.save_outputs=True",
        "model.exp_id=ER-XXXX", "setup.train_batch_size=32", "setup.accumulate_grad_batches=1",
        "setup.eff_train_batch_size=32", "setup.eval_batch_size=32", "setup.num_workers=3"])
    assert cfg.training.mode == "evaluate" and cfg.data.dataset == "sst"
    assert cfg.training.ckpt_path == "ER-XXXX/checkpoints/epoch=X-step=XXXX.ckpt"
    assert cfg.training.splits == ["train", "dev", "test"]
    assert cfg.model.save_outputs is True and cfg.logger.offline is True and cfg.setup.num_workers == 3


def test_group_selection_applies_first_whatever_its_position():
    cfg = resolve_config(["model.comp_wt=0.1", "model=expl_reg"])
    assert cfg.model.name == "expl_reg" and cfg.model.comp_wt == 0.1
    assert cfg.model.suff_wt == MODEL_GROUPS["expl_reg"]["suff_wt"]
    assert resolve_config(["model=a2r"]).model.explainer_type == "lm"
    with pytest.raises(UnirexError, match="lm, expl_reg, fresh, a2r"):
        resolve_config(["model=expl"])


def test_unknown_key_suggests_the_closest_ones():
    with pytest.raises(UnirexError, match="model.comp_wt"):
        resolve_config(["model.comp_wtt=0.5"])
    with pytest.raises(UnirexError, match="model.optimizer.lr"):
        resolve_config(["model.lr=1e-5"])
    with pytest.raises(UnirexError, match="bad value for model.comp_wt"):
        resolve_config(["model.comp_wt=high"])
    with pytest.raises(UnirexError, match="is not one of"):
        resolve_config(["model.suff_criterion=kl"])


def test_batch_sizes_must_agree():
    assert resolve_config(["setup.train_batch_size=8", "setup.eff_train_batch_size=32"]).setup.accumulate_grad_batches == 4
    assert resolve_config(["setup.train_batch_size=8"]).setup.eff_train_batch_size == 8
    with pytest.raises(UnirexError, match="eff_train_batch_size"):
        resolve_config(["setup.train_batch_size=8", "setup.accumulate_grad_batches=2", "setup.eff_train_batch_size=32"])


def test_dict_roundtrip_and_overrides():
    cfg = resolve_config(["method=aa_mlp_comp_suff_plaus", "seed=2", "model.topk=[1,10]"])
    assert from_dict(to_dict(cfg)) == cfg
    assert resolve_config(to_overrides(cfg)) == cfg
    assert isinstance(cfg, RunConfig) and cfg.model.topk == [1.0, 10.0]
    with pytest.raises(UnirexError, match="model.comp_wt"):
        from_dict({"model": {"comp_wtt": 1.0}})


def test_sweep_expands_comma_lists_but_not_quoted_values():
    runs = expand_sweep(["seed=0,1,2", "model=lm,expl_reg", "training.eval_splits='dev,test'"])
    assert len(runs) == 6
    assert runs[1] == ["seed=0", "model=expl_reg", "training.eval_splits='dev,test'"]
    assert resolve_config(runs[1]).training.splits == ["dev", "test"]


def test_dataset_is_an_alias_of_the_data_group():
    from unirex.config import expand_sweep

    runs = [resolve_config(c) for c in expand_sweep(["dataset=sst,stf", "seed=0,1"])]
    assert [(c.data.dataset, c.seed) for c in runs] == [("sst", 0), ("sst", 1), ("stf", 0), ("stf", 1)]
