"""The post-hoc explainers beyond the gradient methods: ``lime``, ``kernel-shap``, ``occlusion`` (over word
features), ``attention`` and ``attention-rollout``, each against a case checked by hand, and each where
an attribution algorithm is accepted (training baselines and their saved attributions, a FRESH teacher,
evaluation, measured runtime, Explain and its picker, ``explain --extractor``)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from cli import main
from unirex import registry
from unirex.config import resolve_config
from unirex.engine import resolve_run_config, run
from unirex.errors import UnirexError
from unirex.models.extractors import AttributionExtractor
from unirex.models.extractors.attention import rollout
from unirex.models.extractors.perturbation import word_features
from unirex.registry import ExplainerSettings
from unirex.runs import RunDir

NEW = ("lime", "kernel-shap", "occlusion", "attention", "attention-rollout")
KEY_WEIGHT = 3.0


class OneWordDecides(nn.Module):
    """A hand-built classifier: class 1's logit is ``KEY_WEIGHT`` times the number of visible subwords of id
    20 or 21 (the two subwords of the key word), class 0's is 0. Nothing else matters."""

    num_choices = None

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs):
        key = ((input_ids == 20) | (input_ids == 21)) & attention_mask.bool()
        one = KEY_WEIGHT * key.float().sum(1) / 2  # both subwords visible: logit 3
        return torch.stack([torch.zeros_like(one), one], -1)


def three_words(rows: int = 1) -> dict:
    """``[CLS] a key_1 key_2 b [SEP]``: three words, the middle one in two subwords (word 1)."""
    ids = torch.tensor([[101, 10, 20, 21, 30, 102]] * rows)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids),
            "word_ids": torch.tensor([[-1, 0, 1, 1, 2, -1]] * rows),
            "explainable": torch.tensor([[0, 1, 1, 1, 1, 0]] * rows).bool()}


def per_word(scores: torch.Tensor, batch: dict, row: int = 0) -> list[float]:
    """Subword scores summed per word (as Explain and the ERASER metrics pool them)."""
    w = batch["word_ids"][row]
    return [float(scores[row][w == i].sum()) for i in range(int(w.max()) + 1)]


# the drop of p(class 1) when the key word is hidden: sigmoid(3) - 1/2
KEY_DROP = float(torch.sigmoid(torch.tensor(KEY_WEIGHT)) - 0.5)


def test_word_features_group_subwords_and_skip_special_tokens():
    feat, counts = word_features(three_words())
    assert feat[0].tolist() == [-1, 0, 1, 1, 2, -1] and counts == [3]


def test_occlusion_is_leave_one_word_out_of_the_target_probability():
    batch = three_words()
    s = AttributionExtractor("occlusion").explain(batch, OneWordDecides())
    assert per_word(s, batch) == pytest.approx([0.0, KEY_DROP, 0.0], abs=1e-6)
    assert s[0, 2] == s[0, 3] == pytest.approx(KEY_DROP / 2)  # split evenly over the word's subwords
    assert s[0, 0] == s[0, 5] == 0  # special tokens are never features
    # a window of 2 words: windows {a, key} and {key, b} each drop KEY_DROP; a word scores their mean
    s2 = AttributionExtractor("occlusion", occlusion_window=2).explain(batch, OneWordDecides())
    assert per_word(s2, batch) == pytest.approx([KEY_DROP, KEY_DROP, KEY_DROP], abs=1e-6)
    # the class explained is the one given (training's gold label): p(class 0) rises when the key goes
    s0 = AttributionExtractor("occlusion").scores(batch, OneWordDecides(), target=torch.tensor([0]))
    assert per_word(s0, batch) == pytest.approx([0.0, -KEY_DROP, 0.0], abs=1e-6)


def test_occlusion_equals_leave_one_word_out_by_hand_on_a_tiny_bert(tiny_arch, toy_batch):
    from unirex.models.task_lm import TaskLM

    lm = TaskLM.from_arch(tiny_arch, 2).eval()
    batch = {k: v[:, :20] if v.dim() == 2 else v for k, v in toy_batch(2).items()}  # ~15 words a row: fast
    batch["attention_mask"][1, 14:] = 0  # the second row shorter: its padding is cut before the passes
    s = AttributionExtractor("occlusion").explain(batch, lm)
    row = 1
    keep = batch["attention_mask"][row].bool()
    ids, am, tt = (batch[k][row][keep].unsqueeze(0) for k in ("input_ids", "attention_mask", "token_type_ids"))
    wid = batch["word_ids"][row][keep]
    with torch.no_grad():
        p = torch.softmax(lm(ids, am, tt), -1)[0]
        target = int(p.argmax())
        words = sorted({int(w) for w in wid[batch["explainable"][row][keep]]})
        drops = []
        for w in words:
            hidden = am.clone()
            hidden[0, wid == w] = 0
            drops.append(float(p[target] - torch.softmax(lm(ids, hidden, tt), -1)[0, target]))
    got = [float(s[row][batch["word_ids"][row] == w].sum()) for w in words]
    assert got == pytest.approx(drops, abs=1e-5) and any(abs(d) > 1e-6 for d in drops)


def test_perturbations_run_with_the_hidden_words_deleted_give_the_masked_outputs(tiny_arch, toy_batch):
    """LIME's and KernelSHAP's samples hide about half the words: on an encoder with absolute positions the
    hidden words are deleted (each sample at its own length, original position ids) instead of masked; the
    outputs must equal hiding them through the attention mask at full length, whatever the chunk size."""
    from unirex.models.extractors.perturbation import row_output
    from unirex.models.removal import drop_support
    from unirex.models.task_lm import TaskLM

    # in float64, so deleting and masking differ by rounding far below the tolerance on any CPU (row_output hands
    # back float32: at most an ulp, about 6e-8, apart)
    lm = TaskLM.from_arch(tiny_arch, 2).eval().double()
    assert drop_support(lm.encoder)[0]  # the deleting path is the one under test
    batch = {k: v[:, :24] if v.dim() == 2 else v for k, v in toy_batch(1).items()}
    feat, counts = word_features(batch)
    z = (torch.rand(12, counts[0], generator=torch.Generator().manual_seed(0)) > 0.5).float()
    n = int(batch["attention_mask"][0].sum())
    ids, am, tt = (batch[k][:1, :n] for k in ("input_ids", "attention_mask", "token_type_ids"))
    on = feat[0, :n] >= 0
    expected = []
    with torch.no_grad():
        for zi in z:
            keep = am.clone()
            keep[0, on] = zi[feat[0, :n][on]].long()
            expected.append(torch.softmax(lm(ids, keep, tt).float(), -1)[0])
    expected = torch.stack(expected)
    for chunk in (None, 5):
        got = row_output(lm, batch, 0, feat[0], chunk)(z)
        assert torch.allclose(got, expected, rtol=0, atol=1e-6), chunk
    assert (expected[:, 1].max() - expected[:, 1].min()) > 5e-5  # the samples differ by 50x the tolerance and more


@pytest.mark.parametrize("algo", ["lime", "kernel-shap"])
def test_sampling_explainers_find_the_deciding_word_seeded(algo):
    batch = three_words()
    ex = AttributionExtractor(algo, n_samples=40, seed=3)
    s = ex.explain(batch, OneWordDecides())
    words = per_word(s, batch)
    assert max(range(3), key=words.__getitem__) == 1 and words[1] > 0.1
    assert abs(words[0]) < 0.05 * words[1] and abs(words[2]) < 0.05 * words[1]
    if algo == "kernel-shap":  # the model is linear in the key word's mask: Shapley values are exact
        assert words == pytest.approx([0.0, KEY_DROP, 0.0], abs=1e-4)
    assert torch.equal(s, ex.explain(batch, OneWordDecides()))  # seeded: the same scores again
    # each example is seeded alone: its scores do not depend on the batch it is in
    two = three_words(2)
    two["attention_mask"][1, 4] = 0  # the second row differs
    assert torch.equal(ex.explain(two, OneWordDecides())[0], s[0])


def test_attention_is_the_last_layers_cls_row_averaged_over_heads(tiny_arch, toy_batch):
    from transformers import BertModel

    from unirex.models.task_lm import TaskLM

    lm = TaskLM.from_arch(tiny_arch, 2).eval()
    batch = toy_batch(2)
    before = lm.encoder.config._attn_implementation
    got = {a: AttributionExtractor(a).explain(batch, lm) for a in ("attention", "attention-rollout")}
    assert lm.encoder.config._attn_implementation == before  # switched back after the eager pass
    eager = BertModel.from_pretrained(tiny_arch, attn_implementation="eager").eval()
    with torch.no_grad():
        att = eager(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    token_type_ids=batch["token_type_ids"], output_attentions=True).attentions
    expl = batch["explainable"].bool() & batch["attention_mask"].bool()
    heads = att[-1].shape[1]
    want = sum(att[-1][:, h, 0, :] for h in range(heads)) / heads
    assert torch.allclose(got["attention"], torch.where(expl, want, 0.0), atol=1e-6)
    # rollout by hand: each layer's head mean, plus the identity, rows normalised, multiplied layer by layer
    L = batch["input_ids"].shape[1]
    for b in range(2):
        r = torch.eye(L, dtype=torch.float64)
        for layer in att:
            a = layer[b].double().mean(0) * 0.5 + torch.eye(L, dtype=torch.float64) * 0.5
            r = (a / a.sum(1, keepdim=True)) @ r
        assert torch.allclose(got["attention-rollout"][b].double(), torch.where(expl[b], r[0], 0.0), atol=1e-6)


def test_rollout_of_two_hand_written_layers():
    a1 = torch.tensor([[[[0.5, 0.5], [0.0, 1.0]]]])  # [B=1, heads=1, 2, 2]
    a2 = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    # 0.5 A + 0.5 I: layer 1 [[.75, .25], [0, 1]], layer 2 [[.5, .5], [.5, .5]]; R = layer2 @ layer1
    assert torch.allclose(rollout([a1, a2])[0], torch.tensor([[0.375, 0.625], [0.375, 0.625]]))


def test_attention_trains_through_a_plausibility_loss_and_perturbation_refuses(tiny_arch, toy_batch, small_heads):
    from unirex.models import build_model
    from unirex.objective import compute_losses

    cfg = resolve_config([f"arch={tiny_arch}", "method=aa_sum_comp_suff_plaus", "model.attr_algo=attention",
                          *small_heads])
    model = build_model(cfg, num_classes=2)
    model.train()
    losses = compute_losses(toy_batch(4), model, cfg)
    losses["plaus_loss"].backward()
    grad = model.task_lm.encoder.encoder.layer[-1].attention.self.query.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0
    for algo in ("lime", "kernel-shap", "occlusion"):
        assert not registry.get_attribution(algo).differentiable
        with pytest.raises(UnirexError, match=f"needs an algorithm whose scores are differentiable.*attr_algo={algo} "
                                              "is not one$"):
            resolve_config(["method=aa_sum_comp_suff_plaus", f"model.attr_algo={algo}"])
    with pytest.raises(UnirexError, match="gives token scores directly; use model.attr_pooling=sum"):
        resolve_config([f"model.attr_algo={NEW[0]}", "model.attr_pooling=mlp"])


def test_bad_names_and_knobs_are_one_line_errors(capsys):
    with pytest.raises(UnirexError, match="did you mean 'kernel-shap'"):
        resolve_config(["model.attr_algo=kernel_shap"])
    with pytest.raises(UnirexError, match="unknown attribution algorithm 'limes' .did you mean 'lime'"):
        registry.get_attribution("limes")
    for key, value in (("model.attr_n_samples", 0), ("model.attr_n_samples", -5), ("model.occlusion_window", 0)):
        with pytest.raises(UnirexError) as e:
            resolve_config([f"{key}={value}", "model.attr_algo=lime"])
        assert "\n" not in str(e.value) and str(e.value).startswith(f"{key} must be >= 1")
    assert main(["model.attr_n_samples=0", "model.attr_algo=lime"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.attr_n_samples must be >= 1" in err


def test_the_new_algorithms_are_offered_everywhere_one_is_accepted():
    from workbench import Workbench

    assert set(NEW) <= set(registry.attribution_names(post_hoc=True))
    assert set(NEW) <= set(Workbench.extractors())  # the Explain tab's picker
    for algo in NEW:
        assert resolve_config([f"model.attr_algo={algo}"]).model.attr_algo == algo


def test_settings_reach_the_sampling_explainers():
    s = ExplainerSettings()
    assert (s.samples, s.chunk, s.window) == (registry.DEFAULT_N_SAMPLES, 64, 1)
    cfg = resolve_config(["model.attr_algo=lime", "model.attr_n_samples=7", "model.occlusion_window=3",
                          "model.internal_batch_size=5", "seed=9"])
    ex, _ = AttributionExtractor.from_config(cfg, SimpleNamespace(hidden_size=4), lambda: None)
    assert (ex.n_samples, ex.internal_batch_size, ex.occlusion_window, ex.seed) == (7, 5, 3, 9)


@pytest.fixture(scope="module")
def attention_run(tmp_path_factory, tiny_overrides):
    """``(workspace, RunResult)``: a debug baseline run with ``model.attr_algo=attention``, its attributions
    saved, its runtime measured, a checkpoint kept (the cheapest token explainer: one pass a batch; every token
    explainer goes through the same registry path)."""
    ws = tmp_path_factory.mktemp("ws-explainers")
    res = run(resolve_run_config([*tiny_overrides, f"workspace={ws}", "debug=True", "model.attr_algo=attention",
                                  "model.save_outputs=True", "model.measure_attrs_runtime=True",
                                  "save_checkpoint=True", "training.eval_splits='dev,test'"]))
    assert res.status == "completed", res.error
    return ws, res


def _explain_cli(ws, run_id: str, algo: str, capsys) -> dict:
    text = "the plot was not good . i found it very boring but the cast was wonderful ."
    assert main(["--workspace", str(ws), "explain", "--run", run_id, "--text", text, "--extractor", algo,
                 "--json"]) == 0, algo
    out = json.loads(capsys.readouterr().out)
    assert out["extractor"] == algo and len(out["word_scores"]) == len(text.split())
    assert any(v != 0 for v in out["word_scores"]), algo
    return out


def test_a_baseline_run_evaluates_saves_and_times_its_attributions_and_explain_uses_them(attention_run, capsys):
    import polars as pl

    ws, res = attention_run
    assert res.metrics["attrs_runtime_ms"] > 0  # measure runtime reports it with the others
    assert "test_comp_aopc" in res.metrics and "test_suff_aopc" in res.metrics  # evaluation
    saved = pl.read_parquet(RunDir(res.run_dir).attrs_path("train"))  # what FRESH and L2E read
    assert set(saved["attr_algo"]) == {"attention"} and all(any(v > 0 for v in s) for s in saved["scores"])
    for algo in ("lime", "attention-rollout"):  # explain --extractor on the checkpoint's task LM
        _explain_cli(ws, res.run_id, algo, capsys)


@pytest.mark.long
def test_a_fresh_student_reads_the_saved_attention_and_every_new_algorithm_explains(attention_run, common, capsys):
    ws, res = attention_run
    fresh = run(resolve_run_config([*common, f"workspace={ws}", "debug=True", "model=fresh",
                                    f"data.fresh_exp_id={res.run_id}", "data.fresh_topk=20",
                                    "data.fresh_attr_algo=attention"]))
    assert fresh.status == "completed", fresh.error
    for algo in NEW:
        _explain_cli(ws, res.run_id, algo, capsys)
