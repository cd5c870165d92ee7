"""The attribution and extractor registry, and plugins (``UNIREX_PLUGINS``): a Captum class registered
under a new name by a plugin module gives, in training, evaluation, saved attributions and Explain, the
numbers the built-in name gives; unknown names are refused with a did-you-mean; a broken plugin is a
one-line error; the variable is read from the process environment only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from cli import main
from unirex import registry
from unirex.config import resolve_config
from unirex.engine import resolve_run_config, run
from unirex.errors import UnirexError
from unirex.runs import RunDir
from workbench import Workbench

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "tests.plugins.ig_alias"
ALIAS, BUILTIN = "ig-alias", "integrated-gradients"


def _forget_plugin() -> None:
    registry.unregister_attribution(ALIAS)
    sys.modules.pop(PLUGIN, None)


@pytest.fixture
def ig_alias(monkeypatch):
    """``UNIREX_PLUGINS`` names the test plugin, loaded as the CLI, the app and the workers load it."""
    _forget_plugin()
    monkeypatch.setenv(registry.ENV_PLUGINS, PLUGIN)
    assert registry.load_plugins() == (PLUGIN,)
    yield ALIAS
    _forget_plugin()


@pytest.fixture
def base(tmp_path, tiny_arch, small_demo_dir):
    return [f"arch={tiny_arch}", f"data_dir={small_demo_dir}", "data.max_length=64", "setup.train_batch_size=8",
            "setup.eval_batch_size=16", f"workspace={tmp_path}"]


def test_the_plugin_registers_a_spec_like_the_builtin_one(ig_alias):
    spec, builtin = registry.get_attribution(ig_alias), registry.get_attribution(BUILTIN)
    assert spec.captum() is builtin.captum() and not spec.builtin and builtin.builtin
    assert (spec.differentiable, spec.needs_baseline) == (builtin.differentiable, builtin.needs_baseline)
    assert ig_alias in registry.attribution_names() and ig_alias in registry.attribution_names(post_hoc=True)
    assert ig_alias in Workbench.extractors()  # the Explain tab's picker
    assert resolve_config(["method=aa_sum_comp_suff_plaus", f"model.attr_algo={ig_alias}"]).model.attr_algo == ig_alias
    with pytest.raises(UnirexError, match="already registered .*built-in"):
        registry.register_attribution(BUILTIN, spec.captum())


def test_a_registered_name_trains_evaluates_saves_and_explains_as_the_builtin_one(ig_alias, base, tmp_path, capsys):
    def train(algo):
        res = run(resolve_run_config(base + [
            "method=aa_sum_comp_suff_plaus", f"model.attr_algo={algo}", "debug=True", "save_checkpoint=True",
            "model.save_outputs=True", "training.eval_splits='dev,test'"]))
        assert res.status == "completed", res.error
        rd = RunDir(res.run_dir)
        metrics = [(m["split"], m["epoch"], m["step"], m["name"], m["value"]) for m in rd.metrics()
                   if not m["name"].endswith("_per_s")]  # timings differ, the numbers must not
        return res, metrics, pl.read_parquet(rd.attrs_path("dev"))

    ours, theirs = train(ig_alias), train(BUILTIN)
    names = {name for split, _, _, name, _ in ours[1] if split == "train"}
    assert {"loss", "task_loss", "comp_loss", "suff_loss", "plaus_loss"} <= names  # the training losses
    assert {"comp_aopc", "suff_aopc", "plaus_auprc"} <= {name for split, *_, name, _ in ours[1] if split == "test"}
    assert ours[1] == theirs[1]  # training losses and evaluation metrics, every value equal
    # saved attributions (what FRESH / L2E read) carry the registered name and the same scores
    assert set(ours[2]["attr_algo"]) == {ig_alias} and set(theirs[2]["attr_algo"]) == {BUILTIN}
    assert ours[2]["scores"].to_list() == theirs[2]["scores"].to_list()
    from unirex.teacher import load_teacher_scores

    ds_table = ours[2].select("annotation_id").with_columns(
        input_ids=pl.Series([[0] * len(s) for s in ours[2]["scores"].to_list()]))
    assert load_teacher_scores(tmp_path / "runs", ours[0].run_id, "dev", ds_table, ig_alias) == ours[2]["scores"].to_list()

    # Explain: the checkpoint's own extractor, and the post-hoc algorithm by name, through the CLI
    text = "the plot was not good . i found it very boring but the cast was wonderful ."
    w = ["--workspace", str(tmp_path)]
    scores = {}
    for res, algo in ((ours[0], ig_alias), (theirs[0], BUILTIN)):
        for extractor in ("own", algo):
            assert main([*w, "explain", "--run", res.run_id, "--text", text, "--extractor", extractor, "--json"]) == 0
            out = json.loads(capsys.readouterr().out)
            scores[(algo, extractor == "own")] = (out["word_scores"], out["probs"], out["comprehensiveness"])
    assert scores[(ig_alias, True)] == scores[(BUILTIN, True)]
    assert scores[(ig_alias, False)] == scores[(BUILTIN, False)]
    assert any(s != 0 for s in scores[(ig_alias, False)][0])


def test_an_unknown_algorithm_is_refused_with_a_did_you_mean(ig_alias):
    with pytest.raises(UnirexError, match="did you mean 'integrated-gradients'"):
        resolve_config(["model.attr_algo=integrated-gradient"])
    with pytest.raises(UnirexError, match="did you mean 'ig-alias'"):
        resolve_config(["model.attr_algo=ig-alais"])
    with pytest.raises(UnirexError, match="did you mean 'self_lm'"):
        resolve_config(["model.explainer_type=self-lm"])
    with pytest.raises(UnirexError, match="unknown attribution algorithm 'ig_alias' .did you mean 'ig-alias'"):
        registry.get_attribution("ig_alias")
    from unirex.inference import text_scorer

    with pytest.raises(UnirexError, match="unknown extractor 'deeplift'"):  # not offered post hoc
        text_scorer(None, "deeplift")


def test_without_the_plugin_the_name_is_unknown():
    _forget_plugin()
    with pytest.raises(UnirexError, match="model.attr_algo='ig-alias' is not one of"):
        resolve_config(["model.attr_algo=ig-alias"])


@pytest.mark.parametrize("module,why", [("tests.plugins.no_such_plugin", "ModuleNotFoundError"),
                                        ("tests.plugins.broken", "RuntimeError: this plugin is broken on purpose")])
def test_a_bad_plugin_is_a_one_line_error_naming_it(monkeypatch, capsys, module, why):
    monkeypatch.setenv(registry.ENV_PLUGINS, f"{PLUGIN}, {module}")
    try:
        with pytest.raises(UnirexError) as e:
            registry.load_plugins()
        msg = str(e.value)
        assert "\n" not in msg and f"'{module}'" in msg and why in msg and registry.ENV_PLUGINS in msg
        assert main(["methods"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: UNIREX_PLUGINS: cannot import plugin module")
    finally:
        _forget_plugin()
        sys.modules.pop("tests.plugins.broken", None)


def test_unirex_plugins_is_read_from_the_environment_only(tmp_path):
    _forget_plugin()
    for override in (f"UNIREX_PLUGINS={PLUGIN}", f"+UNIREX_PLUGINS={PLUGIN}", f"model.UNIREX_PLUGINS={PLUGIN}"):
        with pytest.raises(UnirexError, match="unknown config key"):
            resolve_config([override, "model.attr_algo=input-x-gradient"])
    with pytest.raises(UnirexError):  # what the app's Train tab submits: overrides, checked before queueing
        Workbench(tmp_path).submit([f"UNIREX_PLUGINS={PLUGIN}", "model.attr_algo=ig-alias"])
    assert PLUGIN not in sys.modules and ALIAS not in registry.attribution_names()
    # the Explain tab's extractor names an algorithm, never a module to import
    from unirex.inference import text_scorer

    with pytest.raises(UnirexError, match="unknown extractor"):
        text_scorer(None, PLUGIN)
    assert PLUGIN not in sys.modules


def test_a_new_process_loads_the_plugins_of_its_environment():
    env = {**os.environ, "PYTHONPATH": str(ROOT), registry.ENV_PLUGINS: PLUGIN}
    out = subprocess.run([sys.executable, "-m", "unirex", "explain", "--help"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and ALIAS in out.stdout
    env[registry.ENV_PLUGINS] = "tests.plugins.broken"
    out = subprocess.run([sys.executable, "-m", "unirex", "methods"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "'tests.plugins.broken'" in out.stderr


def test_a_registered_extractor_type_trains_without_editing_the_callers(tiny_arch, toy_batch):
    """An extractor type is one class with ``from_config`` and ``scores``: the config accepts it, the builder
    builds it, the objective trains through its interface, the model card describes it."""
    import torch

    from unirex.hub import _extractor_text
    from unirex.models import build_model
    from unirex.models.extractors import Extractor, mask_scores
    from unirex.objective import compute_losses

    class FirstTokens(Extractor):  # scores fall with the position: the first explainable tokens are the rationale
        kind = "first_tokens"

        @classmethod
        def from_config(cls, cfg, task_lm, new_encoder):
            return cls(), 1

        def scores(self, batch, task_lm, target=None, **kwargs):
            pos = torch.arange(batch["input_ids"].shape[1], dtype=torch.float32, device=batch["input_ids"].device)
            return mask_scores(-pos.expand(batch["input_ids"].shape).clone(), batch["explainable"])

    registry.register_extractor("first_tokens", FirstTokens, describe=lambda m: "the first tokens")
    try:
        cfg = resolve_config([f"arch={tiny_arch}", "model=expl_reg", "model.explainer_type=first_tokens",
                              "model.comp_wt=0.5", "model.suff_wt=0.5"])
        model = build_model(cfg, num_classes=2)
        assert isinstance(model.extractor, FirstTokens)
        batch = toy_batch(4)
        losses = compute_losses(batch, model, cfg)
        assert {"task_loss", "comp_loss", "suff_loss"} <= set(losses) and torch.isfinite(losses["loss"])
        scores = model.explain(batch)
        assert scores.shape == batch["input_ids"].shape and not scores.requires_grad
        assert _extractor_text(cfg) == "the first tokens"
        with pytest.raises(UnirexError, match="needs a learned token head"):  # it declared no token head
            resolve_config([f"arch={tiny_arch}", "model=expl_reg", "model.explainer_type=first_tokens",
                            "model.l2e=True", "model.l2e_wt=0.5", "data.l2e_exp_id=x"])
    finally:
        registry.unregister_extractor("first_tokens")
    with pytest.raises(UnirexError, match="model.explainer_type='first_tokens' is not one of"):
        resolve_config(["model.explainer_type=first_tokens"])
