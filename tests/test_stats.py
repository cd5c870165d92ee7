"""The comparison's statistics checked where the truth is known (simulated per-example data, seeded)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from unirex.metrics.nrg import nrg
from unirex.metrics.stats import (Kind, adjust, bootstrap, combine, f1_rows, holm, mean_rows, nrg_replicates, paired,
                                  pairwise)
from unirex.metrics.task import macro_f1

B = 400  # resamples per simulated comparison (the fronts draw 1,000)


def _pair_p(a, b, seed):
    res = bootstrap({"a": [{"m": mean_rows(a)}], "b": [{"m": mean_rows(b)}]}, n_resamples=B, seed=seed)
    return paired(res.estimates["a"]["m"], res.estimates["b"]["m"])


def test_combine_recomputes_corpus_metrics_exactly():
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    c = f1_rows(y, p, 3)
    assert c.value == pytest.approx(macro_f1(y, p))
    idx = rng.integers(0, 50, 50)  # a resample: the counts-weighted sums give the metric of the resampled data
    w = np.bincount(idx, minlength=50).astype(float)
    assert combine(Kind.MACRO_F1, w @ c.rows) == pytest.approx(macro_f1(y[idx], p[idx]))
    only_two = f1_rows(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)  # class 2 never seen: left out as sklearn does
    assert only_two.value == pytest.approx(macro_f1([0, 0, 1], [0, 1, 1]))
    assert mean_rows(np.array([1.0, 0.0, 0.5])).value == pytest.approx(0.5)


def test_same_distribution_is_called_different_at_the_nominal_rate():
    """300 simulated pairs of methods whose per-example scores share a distribution (and are correlated by
    example, as two methods on one test set are): rejected at alpha 0.05 in 2-9% of them."""
    rng = np.random.default_rng(7)
    rejected = 0
    sims = 300
    for s in range(sims):
        difficulty = rng.normal(0, 1, 120)
        a = difficulty + rng.normal(0, 1, 120)
        b = difficulty + rng.normal(0, 1, 120)
        rejected += _pair_p(a, b, s)[3] < 0.05
    assert 0.02 <= rejected / sims <= 0.09, rejected / sims


def test_planted_difference_found_with_the_predicted_power():
    """A planted difference delta = 0.25 on N = 100 examples with per-example difference sd 1: a two-sided
    test at 0.05 has power Phi(delta sqrt(N) / sd - 1.96) + Phi(-delta sqrt(N) / sd - 1.96) = 0.705; the
    simulated rate over 200 pairs is within 0.1 of it."""
    rng = np.random.default_rng(11)
    delta, n, sims = 0.25, 100, 200
    z = delta * math.sqrt(n)
    predicted = norm.cdf(z - 1.96) + norm.cdf(-z - 1.96)
    assert predicted == pytest.approx(0.705, abs=0.01)
    hits = 0
    for s in range(sims):
        base = rng.normal(0, 1, n)
        a = base + delta + rng.normal(0, math.sqrt(0.5), n)
        b = base + rng.normal(0, math.sqrt(0.5), n)
        d, lo, hi, p = _pair_p(a, b, s)
        hits += p < 0.05
        assert (p < 0.05) == (not lo <= 0 <= hi) or abs(p - 0.05) < 0.02  # the interval and the test agree
    assert abs(hits / sims - predicted) < 0.1, (hits / sims, predicted)


def test_intervals_cover_the_true_mean_about_95_percent():
    rng = np.random.default_rng(3)
    sims, cover = 300, 0
    for s in range(sims):
        x = rng.exponential(0.3, 150)  # skewed, as a per-example AOPC is; true mean 0.3
        lo, hi = bootstrap({"g": [{"m": mean_rows(x)}]}, n_resamples=B, seed=s).estimates["g"]["m"].interval()
        cover += lo <= 0.3 <= hi
    assert 0.91 <= cover / sims <= 0.98, cover / sims


def test_accuracy_interval_with_several_seeds_covers_the_method_mean():
    """Three seeds of one method (a seed shifts accuracy by sd 0.02) on the same 300 examples: the
    hierarchical interval covers the method's expected accuracy on these examples' population most of the
    time."""
    rng = np.random.default_rng(5)
    sims, cover = 200, 0
    for s in range(sims):
        p_ex = np.clip(rng.beta(4, 2, 300), 0, 1)  # example difficulty; the true accuracy is 4/6
        runs = [{"acc": mean_rows((rng.random(300) < np.clip(p_ex + rng.normal(0, 0.02), 0, 1)).astype(float))}
                for _ in range(3)]
        res = bootstrap({"g": runs}, n_resamples=B, seed=s)
        lo, hi = res.estimates["g"]["acc"].interval()
        cover += lo <= 4 / 6 <= hi
    assert 0.88 <= cover / sims <= 0.99, cover / sims
    assert res.seeds == {"g": 3}


def test_holm_matches_the_textbook_example():
    # Holm (1979)-style worked example: sorted p 0.01, 0.02, 0.03, 0.04 among 4 -> 0.04, 0.06, 0.06, 0.06
    assert holm([0.03, 0.01, 0.04, 0.02]).tolist() == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert np.isnan(holm([float("nan"), 0.5])[0]) and holm([float("nan"), 0.5])[1] == 0.5


def test_pairwise_adjusts_over_pairs_and_finds_the_planted_winner():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 1, 400)
    groups = {name: [{"m": mean_rows(base + shift + rng.normal(0, 0.5, 400))} for _ in range(2)]
              for name, shift in (("good", 0.5), ("mid", 0.0), ("same", 0.0))}
    res = bootstrap(groups, n_resamples=1000)
    tests = adjust(pairwise(res, "m"))
    by = {(t.a, t.b): t for t in tests}
    assert by[("good", "mid")].significant and by[("good", "same")].significant
    assert by[("good", "mid")].diff > 0 and by[("good", "mid")].ci_low > 0
    assert all(t.p_adj >= t.p for t in tests)
    again = adjust(pairwise(bootstrap(groups, n_resamples=1000), "m"))  # the fixed seed: the same numbers
    assert [t.p for t in again] == [t.p for t in tests]


def test_nrg_replicates_redo_nrg_on_each_resample():
    rng = np.random.default_rng(4)
    groups = {g: [{"c": mean_rows(rng.normal(mu, 0.3, 200)), "s": mean_rows(rng.normal(0.2, 0.3, 200))}]
              for g, mu in (("x", 0.3), ("y", 0.1), ("z", 0.2))}
    spec = {"faithfulness": {"c": True, "s": False}}
    res = bootstrap(groups, n_resamples=300)
    reps = nrg_replicates(res, spec)
    point = nrg({g: {m: e.point for m, e in res.estimates[g].items()} for g in groups}, spec)
    b = 17  # one resample: the vectorised NRG equals nrg() on that resample's values
    one = nrg({g: {m: float(e.replicates[b]) for m, e in res.estimates[g].items()} for g in groups}, spec)
    for g in groups:
        assert reps[g][b] == pytest.approx(one.nrg[g])
        assert reps[g].min() <= point.nrg[g] <= reps[g].max()
    assert nrg_replicates(res, {"task": {"missing": True}}) == {}


def test_per_example_statistics_give_back_the_evaluators_metrics(tmp_path, tiny_arch, small_demo_dir):
    """Summed over all examples, the per-example statistics of a real (tiny) evaluation equal the
    evaluator's numbers, corpus-level ones (macro F1, IOU F1) included; saved and loaded, the same."""
    from evalkit import TinyClassifier, random_scores, split_dataset

    from unirex.evaluate import evaluate, save_outputs
    from unirex.per_example import load_contributions

    ds, built = split_dataset(small_demo_dir, "demo", "test", tiny_arch, max_length=64, rows=range(12))
    result = evaluate(TinyClassifier(tiny_arch).eval(), ds, random_scores(ds.table, seed=3), batch_size=4,
                      source=built.summary["source"])
    save_outputs(tmp_path / "run", "test", result, built)
    ex = load_contributions(tmp_path / "run", "test")
    assert len(ex.keys) == 12
    for name in ("acc", "macro_f1", "task_ref", "comp_aopc", "suff_aopc", "comp_aopc_unirex", "suff_k20",
                 "plaus_ref_auprc", "plaus_ref_token_f1", "plaus_auprc", "plaus_token_f1", "plaus_iou_f1"):
        assert ex.metrics[name].value == pytest.approx(result.metrics[name], abs=1e-9), name
    sub = ex.take(ex.keys[:5])
    assert sub.metrics["acc"].rows.shape == (5, 2)
