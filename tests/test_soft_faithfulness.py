"""The faithfulness metrics beside ERASER's (``eval.extra_metrics``): soft comprehensiveness / sufficiency equal
ERASER's at 0/1 scores, max-sensitivity is 0 for scores that ignore the input and > 0 for a gradient, and
diagnosticity is 1 for the rationale a hand-built additive model decides by and a fair coin for a random
extractor; the knob is validated, the numbers are seeded, saved with the outputs, logged by a run and compared."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from evalkit import TinyClassifier, random_scores, split_dataset

from unirex.errors import UnirexError
from unirex.evaluate import evaluate, load_outputs, save_outputs
from unirex.extra_eval import ExtraMetrics, normalised_scores
from unirex.metrics.extra import per_example
from unirex.metrics.registry import Direction, computed_metrics, get_metric
from unirex.rationale import topk_mask

EXTRA_KEYS = ("soft_comp", "soft_suff", "sensitivity_max", "diag_comp", "diag_suff")


def _padded(scores, batch) -> torch.Tensor:
    """``[B, L]`` rows of precomputed per-subword scores for a collated batch."""
    L = batch["input_ids"].shape[1]
    rows = [np.pad(np.asarray(scores[i], dtype=np.float32)[:L], (0, max(0, L - len(scores[i]))))
            for i in batch["index"].tolist()]
    return torch.from_numpy(np.stack(rows)).to(batch["input_ids"].device)


class WordVotes(torch.nn.Module):
    """A hand-built additive classifier: each token the model reads casts a vote ``w[token]`` (a 1-dim word
    embedding), ``logits = [-v, v]`` with ``v`` the sum of the votes. The demo's sentiment adjectives vote
    +-1, every other token a small seeded amount, so each token's contribution to the predicted label is
    ``w[token] * sign(v)`` and the top-k of those contributions is exactly the set whose deletion lowers,
    and whose keeping alone raises, the predicted label's probability most."""

    def __init__(self, tokenizer, seed: int = 0):
        from unirex.data.demo import ADJECTIVES

        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.nn.Embedding(len(tokenizer), 1)
        with torch.no_grad():
            self.emb.weight.copy_(torch.randn((len(tokenizer), 1), generator=g) * 0.05)
            for label, sign in (("POS", 1.0), ("NEG", -1.0)):
                for word in ADJECTIVES[label]:
                    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
                    self.emb.weight[ids[0], 0] = sign

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.emb

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        v = (self.emb(input_ids)[..., 0] * attention_mask).sum(1)
        return torch.stack([-v, v], dim=-1)

    def contributions(self, batch) -> torch.Tensor:
        """``[B, L]``: each token's vote for the label the model predicts (the deciding words score highest)."""
        with torch.no_grad():
            v = self(batch["input_ids"], batch["attention_mask"])[:, 1]
            return self.emb(batch["input_ids"])[..., 0] * torch.sign(v).unsqueeze(1)


@pytest.fixture(scope="module")
def tiny(tiny_arch):
    return TinyClassifier(tiny_arch).eval()


@pytest.fixture(scope="module")
def split(small_demo_dir, tiny_arch):
    return split_dataset(small_demo_dir, "demo", "test", tiny_arch, max_length=64, rows=range(8))


@pytest.fixture(scope="module")
def train_split(small_demo_dir, tiny_arch):
    return split_dataset(small_demo_dir, "demo", "train", tiny_arch, max_length=64)


# ------------------------------------------------------------------------------------------------ soft


def test_soft_equal_erasers_at_hard_scores_and_no_sensitivity_without_the_input(tiny, split):
    """Scores that are 1 on the top-10% rationale and 0 elsewhere: the soft inputs are ERASER's comp / suff
    inputs (factor 0 deletes, factor 1 keeps), so soft_comp / soft_suff equal ERASER's top-level comp / suff
    (both one input per example, averaged over examples), per example too. The scores are read off fixed
    numbers, never off the input, so perturbing the input's embeddings cannot move them: sensitivity 0."""
    ds, _ = split
    base = random_scores(ds.table, seed=3)

    def hard(batch):
        return topk_mask(_padded(base, batch), batch["explainable"], batch["attention_mask"], 10).float()

    res = evaluate(tiny, ds, hard, batch_size=5, hard_k=10,
                   extra=ExtraMetrics(("soft", "sensitivity"), sensitivity_samples=2))
    o = res.outputs
    assert res.metrics["comp"] != pytest.approx(0.0, abs=1e-3)  # the comparison means something
    assert res.metrics["soft_comp"] == pytest.approx(res.metrics["comp"], abs=1e-6)
    assert res.metrics["soft_suff"] == pytest.approx(res.metrics["suff"], abs=1e-6)
    np.testing.assert_allclose(o.extra.soft_comp_probs, o.hard_comp_probs, atol=1e-6)
    np.testing.assert_allclose(o.extra.soft_suff_probs, o.hard_suff_probs, atol=1e-6)
    assert o.extra.random_comp_probs is None and res.metrics["diag_comp"] is None  # only what was asked
    assert res.metrics["sensitivity_max"] == 0.0 and o.extra.sensitivity.shape == (len(ds),)


def test_normalised_scores_min_max_per_row():
    s = torch.tensor([[2.0, -1.0, 5.0, 9.0], [3.0, 3.0, 3.0, 0.0]])
    cand = torch.tensor([[True, True, True, False], [True, True, False, False]])
    got = normalised_scores(s, cand)
    assert got.tolist() == [[0.5, 0.0, 1.0, 0.0], [0.5, 0.5, 0.0, 0.0]]  # a flat row: 0.5, nothing preferred


# --------------------------------------------------------------------------------------------- sensitivity


def test_sensitivity_positive_and_seeded_for_a_gradient(tiny_arch, split):
    """Input x gradient (the task LM's own explainer) moves with its input: > 0, the same numbers whatever
    batch an example shares (the noise is seeded per example), smaller for a smaller radius."""
    from unirex.config import resolve_config
    from unirex.models import build_model

    ds, _ = split
    ds = ds.head(4)
    model = build_model(resolve_config([f"arch={tiny_arch}", "model=lm"]), num_classes=2).eval()
    knobs = dict(sensitivity_samples=2, sensitivity_radius=0.05, seed=1)
    a = evaluate(model, ds, model.explain, batch_size=4, extra=ExtraMetrics(("sensitivity",), **knobs))
    b = evaluate(model, ds, model.explain, batch_size=3, extra=ExtraMetrics(("sensitivity",), **knobs))
    sens = a.outputs.extra.sensitivity
    assert (sens > 0).all() and np.isfinite(sens).all()
    np.testing.assert_allclose(b.outputs.extra.sensitivity, sens, rtol=1e-4, atol=1e-6)
    small = evaluate(model, ds, model.explain, batch_size=4,
                     extra=ExtraMetrics(("sensitivity",), **{**knobs, "sensitivity_radius": 1e-5}))
    assert small.metrics["sensitivity_max"] < a.metrics["sensitivity_max"]  # the radius is honoured


# ----------------------------------------------------------------------------------------- diagnosticity


def test_diagnosticity_one_for_the_deciding_words(bundled_tokenizer, train_split):
    """The hand-built model's top-k contributions are the best set of their size for comp and for suff; a
    random set of that size does as well only by drawing the same set (or one worth exactly as much)."""
    ds, _ = train_split
    model = WordVotes(bundled_tokenizer)
    res = evaluate(model, ds, model.contributions, batch_size=16, hard_k=10, extra=ExtraMetrics(("diag",), seed=0))
    o = res.outputs
    wins = per_example(o)
    comp = o.hard_comp_probs[np.arange(len(o.pred)), o.pred]
    suff = o.hard_suff_probs[np.arange(len(o.pred)), o.pred]
    rcomp = o.extra.random_comp_probs[np.arange(len(o.pred)), o.pred]
    rsuff = o.extra.random_suff_probs[np.arange(len(o.pred)), o.pred]
    # every example is won, except where the random draw is worth exactly as much (a short review whose top-k
    # is one word can be drawn again): a tie, never a loss
    assert np.all((wins["diag_comp"] == 1.0) | np.isclose(comp, rcomp, atol=1e-6))
    assert np.all((wins["diag_suff"] == 1.0) | np.isclose(suff, rsuff, atol=1e-6))
    assert res.metrics["diag_comp"] >= 0.95 and res.metrics["diag_suff"] >= 0.95
    # the random rationale has the extractor's size, from the document tokens only
    assert res.metrics["comp"] > 0.2


def test_diagnosticity_a_fair_coin_for_a_random_extractor(bundled_tokenizer, train_split):
    """Random scores against a random rationale of the same size: each comparison is won with probability 1/2
    (the two sets are exchangeable; the model's votes are continuous, so ties have probability ~0). Over n
    comparisons the fraction is Binomial(n, 1/2) / n: within z * sqrt(1/4n) of 1/2, z = 3.29 (two-sided 0.1%)."""
    ds, _ = train_split
    model = WordVotes(bundled_tokenizer)
    wins = {"diag_comp": [], "diag_suff": []}
    for seed in range(6):
        scores = [np.random.default_rng(100 + seed).random(len(ids)) for ids in ds.table["input_ids"].to_list()]
        res = evaluate(model, ds, scores, batch_size=32, hard_k=10, extra=ExtraMetrics(("diag",), seed=seed))
        for key, values in per_example(res.outputs).items():
            wins[key].extend(values.tolist())
    n = len(wins["diag_comp"])
    tol = 3.29 * math.sqrt(0.25 / n)
    for key, values in wins.items():
        assert abs(np.mean(values) - 0.5) <= tol, (key, np.mean(values), tol, n)


def test_diagnosticity_independent_of_batching_and_saved(tiny, split, tmp_path):
    ds, built = split
    scores = random_scores(ds.table, seed=5)
    extra = ExtraMetrics(("soft", "diag"), seed=3)
    a = evaluate(tiny, ds, scores, batch_size=3, extra=extra)
    b = evaluate(tiny, ds, scores, batch_size=5, chunk_size=5, extra=ExtraMetrics(("diag",), seed=3))
    np.testing.assert_allclose(a.outputs.extra.random_comp_probs, b.outputs.extra.random_comp_probs, atol=1e-6)
    np.testing.assert_allclose(a.outputs.extra.random_suff_probs, b.outputs.extra.random_suff_probs, atol=1e-6)
    other = evaluate(tiny, ds.head(4), scores, batch_size=4, extra=ExtraMetrics(("diag",), seed=4))
    assert not np.allclose(other.outputs.extra.random_comp_probs, a.outputs.extra.random_comp_probs[:4])
    assert a.stats["extra_metrics"] == "soft,diag"
    # graded scores are not a hard rationale: the soft numbers are not ERASER's
    assert a.metrics["soft_suff"] != pytest.approx(a.metrics["suff"], abs=1e-4)
    # saved with the outputs, and the metrics recomputed from the saved columns are the evaluation's
    save_outputs(tmp_path, "test", a, built=built)
    loaded, meta = load_outputs(tmp_path, "test")
    again = computed_metrics(loaded)
    for key in ("soft_comp", "soft_suff", "diag_comp", "diag_suff"):
        assert again[key] == pytest.approx(a.metrics[key]) and meta["metrics"][key] == pytest.approx(a.metrics[key])
    assert again["sensitivity_max"] is None
    # the comparison's bootstrap resamples them per example: the contributions sum back to the metric
    from unirex.per_example import load_contributions

    ex = load_contributions(tmp_path, "test")
    for key in ("soft_comp", "soft_suff", "diag_comp", "diag_suff"):
        assert ex.metrics[key].value == pytest.approx(a.metrics[key])


def test_select_then_predict_has_no_soft_or_random_prediction(tiny, split):
    """A2R / FRESH predict from their own hard rationale: a soft or random rationale has no prediction of its
    own to score, so those metrics are None (not a number computed on the wrong input)."""
    from unirex.rationale import Scoring

    ds, _ = split
    res = evaluate(tiny, ds.head(4), random_scores(ds.table, seed=2), batch_size=4,
                   scoring=Scoring(select_then_predict=True), extra=ExtraMetrics(("soft", "diag")))
    assert all(res.metrics[k] is None for k in ("soft_comp", "soft_suff", "diag_comp", "diag_suff"))


# ------------------------------------------------------------------------------------ settings and fronts


def test_unknown_extra_metric_is_refused_with_the_closest(tmp_path, capsys):
    from cli import main
    from unirex.config import resolve_config

    cfg = resolve_config(["eval.extra_metrics=soft,diag,sensitivity"])
    assert cfg.eval.extra_metrics == "soft,diag,sensitivity"
    with pytest.raises(UnirexError, match=r"unknown metric 'sensitivty' \(did you mean 'sensitivity'\?\)"):
        resolve_config(["eval.extra_metrics=soft,sensitivty"])
    with pytest.raises(UnirexError, match="eval.sensitivity_samples must be >= 1"):
        resolve_config(["eval.sensitivity_samples=0"])
    with pytest.raises(UnirexError, match="unknown metric 'roar'"):
        ExtraMetrics(("roar",))
    # the CLI: one line, exit 2, before any compute (the comma list is one value, not a sweep needing -m)
    assert main(["--no-progress", f"workspace={tmp_path}", "eval.extra_metrics=soft,dig"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean 'diag'" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_run_hands_its_settings_to_every_evaluation(tmp_path):
    from unirex.config import resolve_config
    from unirex.engine import Engine
    from workbench.sweeps import is_sweep

    cfg = resolve_config(["eval.extra_metrics=diag,soft", "eval.sensitivity_samples=2", "seed=7",
                          f"workspace={tmp_path}"])
    assert Engine(cfg).extra_metrics() == ExtraMetrics(("soft", "diag"), 2, 0.02, 7)
    assert Engine(resolve_config([f"workspace={tmp_path}"])).extra_metrics().groups == ()  # off by default
    assert not is_sweep(["eval.extra_metrics=soft,diag"])  # one setting, not a sweep of two runs


def test_registered_for_the_comparison_with_directions(tmp_path, capsys):
    from unirex.runs import RunDir
    from workbench import RunFilter, Workbench
    from workbench.compare import compare_metrics

    assert set(EXTRA_KEYS) <= set(compare_metrics())
    assert {k: get_metric(k).direction for k in EXTRA_KEYS} == {
        "soft_comp": Direction.HIGHER, "soft_suff": Direction.LOWER, "sensitivity_max": Direction.LOWER,
        "diag_comp": Direction.HIGHER, "diag_suff": Direction.HIGHER}
    for seed, value in enumerate((0.25, 0.75)):  # a run's final evaluation, as the engine logs it
        rd = RunDir.create(tmp_path / "runs", {"seed": seed}, {"method": "m", "dataset": "demo", "arch": "default",
                                                               "seed": seed, "mode": "train"})
        rd.log_metrics({"acc": 0.5, "diag_comp": value, "sensitivity_max": value / 10}, split="test")
        rd.set_status("completed")
    wb = Workbench(tmp_path)
    wb.sync()
    cmp = wb.compare(RunFilter(status="completed"), split="test", by=("method",))
    assert {"diag_comp", "sensitivity_max"} <= set(cmp.metrics)
    row = cmp.table.filter(cmp.table["method"] == "m").row(0, named=True)
    assert row["diag_comp_mean"] == pytest.approx(0.5) and row["sensitivity_max_mean"] == pytest.approx(0.05)
    # the tables show them where the comparison holds them, and no empty column where it does not
    from cli import main
    from ui.compare import table_view

    headers, _ = table_view(cmp)
    assert {"diag. comp ↑", "max-sensitivity ↓"} <= set(headers) and "soft comp ↑" not in headers
    assert main(["compare", "--workspace", str(tmp_path)]) == 0
    head = capsys.readouterr().out.splitlines()
    assert any("diag_comp" in line and "sensitivity_max" in line and "soft_comp" not in line for line in head)


@pytest.mark.long
def test_a_run_logs_them_and_the_comparison_shows_them(tmp_path, tiny_overrides):
    """End to end (a debug run, ~15 s of CPU: ``-m long``): the run's evaluations compute what
    ``eval.extra_metrics`` asks, log it with the run's metrics, and the comparison reads it."""
    from unirex.engine import resolve_run_config, run
    from workbench import RunFilter, Workbench

    ws = tmp_path / "ws"
    res = run(resolve_run_config([*tiny_overrides, f"workspace={ws}", "debug=True", "model=lm", "training.epochs=1",
                                  "training.eval_splits=test", "eval.extra_metrics=soft,diag"]))
    assert res.status == "completed"
    wb = Workbench(ws)
    wb.sync()
    final = wb.run(res.run_id).final["test"]
    assert {"soft_comp", "soft_suff", "diag_comp", "diag_suff"} <= set(final)
    assert 0.0 <= final["diag_comp"] <= 1.0
    cmp = wb.compare(RunFilter(status="completed"), split="test", by=("method",), include_debug=True)
    assert "soft_comp" in cmp.metrics
