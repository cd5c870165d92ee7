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


def test_nrg_has_no_interval_when_a_metric_it_used_was_not_resampled():
    """A metric of the table's NRG that the saved outputs cannot give back (a reference run's UNIREX-style
    metrics) leaves NRG without an interval, rather than an interval of an NRG over fewer metrics."""
    from workbench.records import Uncertainty
    from workbench.stats import nrg_estimates

    rng = np.random.default_rng(5)
    groups = {g: [{"c": mean_rows(rng.normal(mu, 0.3, 200))}] for g, mu in (("x", 0.3), ("y", 0.1))}
    unc = Uncertainty(n_resamples=200, seed=0, alpha=0.05, bootstraps={"demo": bootstrap(groups, n_resamples=200)})
    spec = {"faithfulness": {"c": True}, "task": {"t": True}}
    assert nrg_estimates(unc, {"demo": {"faithfulness": ["c"], "task": ["t"]}}, spec, {"demo": ["x", "y"]}) == {}
    only_c = nrg_estimates(unc, {"demo": {"faithfulness": ["c"]}}, spec, {"demo": ["x", "y"]})
    assert set(only_c) == {"demo\x00x", "demo\x00y"}
    import polars as pl
    from workbench.records import Comparison

    def note(table):
        return Comparison(table=pl.DataFrame(table), runs=pl.DataFrame(), split="test", by=("method",), metrics=(),
                          convention="paper", nrg_metrics={}, uncertainty=unc).nrg_interval_note()

    assert "NRG has no interval" in note({"nrg": [1.0, 0.0], "nrg_ci_low": [None, None]})
    assert note({"nrg": [1.0, 0.0], "nrg_ci_low": [0.8, 0.0]}) is None


@pytest.mark.parametrize("protocol,stp", [("eraser", False), ("reference", False), ("reference", True)])
def test_per_example_statistics_give_back_the_evaluators_metrics(tmp_path, tiny_arch, small_demo_dir, protocol, stp):
    """Summed over all examples, the per-example statistics of a real (tiny) evaluation equal the
    evaluator's numbers, corpus-level ones (macro F1, IOU F1) included; saved and loaded, the same. Under
    ``protocol=reference`` too (a select-then-predict model's in-place ``task_ref`` included): the outputs keep
    the reference inputs' predictions, so the paper convention's NRG metrics all get an interval."""
    from evalkit import TinyClassifier, random_scores, split_dataset

    from unirex.evaluate import evaluate, save_outputs
    from unirex.per_example import load_contributions
    from unirex.rationale import Scoring

    ds, built = split_dataset(small_demo_dir, "demo", "test", tiny_arch, max_length=64, rows=range(12))
    result = evaluate(TinyClassifier(tiny_arch).eval(), ds, random_scores(ds.table, seed=3), batch_size=4,
                      source=built.summary["source"], scoring=Scoring(select_then_predict=stp, protocol=protocol))
    save_outputs(tmp_path / "run", "test", result, built)
    ex = load_contributions(tmp_path / "run", "test")
    assert len(ex.keys) == 12
    for name in ("acc", "macro_f1", "task_ref", "comp_aopc", "suff_aopc", "comp_aopc_unirex", "suff_aopc_unirex",
                 "suff_k20", "plaus_ref_auprc", "plaus_ref_token_f1", "plaus_auprc", "plaus_token_f1", "plaus_iou_f1"):
        assert name in ex.metrics, name
        assert ex.metrics[name].value == pytest.approx(result.metrics[name], abs=1e-9), name
    sub = ex.take(ex.keys[:5])
    assert sub.metrics["acc"].rows.shape == (5, 2)
    from unirex.per_example import consistent

    # a metric the outputs cannot reproduce (a protocol=reference evaluation's UNIREX-style AOPC, computed on
    # inputs the outputs do not keep) is dropped: no interval rather than a wrong one
    other = consistent(ex, {**result.metrics, "comp_aopc_unirex": result.metrics["comp_aopc_unirex"] + 0.1})
    assert "comp_aopc_unirex" not in other.metrics and "comp_aopc" in other.metrics


# --- the comparison: intervals, NRG per dataset, paired tests, through the workbench and the CLI ----------------

N_EX = 200


def _outputs(rng, acc: float, comp: float, n: int = N_EX):
    """Per-example outputs of a 2-label classifier that is right on about ``acc`` of the examples and whose
    rationale removal drops the predicted probability by about ``comp``."""
    from unirex.evaluate import EvalOutputs

    K, C = 5, 2
    label = rng.integers(0, C, n)
    pred = np.where(rng.random(n) < acc, label, 1 - label)
    top = rng.uniform(0.55, 0.95, n)
    probs = np.where(np.arange(C)[None] == pred[:, None], top[:, None], 1 - top[:, None])
    drop = np.clip(rng.normal(comp, 0.1, (n, K)), 0, None)
    p_comp = np.clip(top[:, None] - drop, 0.01, 0.99)
    p_suff = np.clip(top[:, None] - drop / 3, 0.01, 0.99)

    def variant(p):
        return np.where(np.arange(C)[None, None] == pred[:, None, None], p[..., None], 1 - p[..., None])

    return EvalOutputs(labels=["neg", "pos"], bins=(1, 5, 10, 20, 50), hard_k=10, index=np.arange(n),
                       annotation_id=[f"ex{i}" for i in range(n)], label=label, pred=pred, probs=probs,
                       comp_probs=variant(p_comp), suff_probs=variant(p_suff), hard_comp_probs=variant(p_comp)[:, 2],
                       hard_suff_probs=variant(p_suff)[:, 2], word_scores=[np.zeros(3)] * n,
                       hard_words=[np.zeros(3, bool)] * n)


def _run(ws, method, dataset, seed, acc, comp, rng, outputs=True):
    from unirex.evaluate import EvalResult, save_outputs, task_and_faithfulness
    from unirex.runs import RunDir

    rd = RunDir.create(ws / "runs", {"seed": seed}, {"method": method, "dataset": dataset, "arch": "default",
                                                       "seed": seed, "mode": "train"})
    out = _outputs(rng, acc, comp)
    metrics = {k: v for k, v in task_and_faithfulness(out, dataset_name=dataset).items()
               if k in ("acc", "macro_f1", "task_ref", "comp_aopc", "suff_aopc", "comp_aopc_unirex", "suff_aopc_unirex")}
    rd.log_metrics(metrics, "test")
    if outputs:
        save_outputs(rd.path, "test", EvalResult(metrics=metrics, outputs=out), {"dataset": dataset})
    rd.set_status("completed")
    return rd, metrics


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """Two datasets: on ``demo`` a strong method (3 seeds), a weak one (3 seeds) and a one-seed one; on ``other``
    two methods (one seed each) and one whose run has no per-example outputs."""
    ws = tmp_path_factory.mktemp("ws-stats")
    rng = np.random.default_rng(0)
    values = {}
    for seed in range(3):
        values[("strong", "demo", seed)] = _run(ws, "strong", "demo", seed, 0.9, 0.30, rng)[1]
        values[("weak", "demo", seed)] = _run(ws, "weak", "demo", seed, 0.6, 0.10, rng)[1]
    values[("single", "demo", 0)] = _run(ws, "single", "demo", 0, 0.75, 0.20, rng)[1]
    values[("strong", "other", 0)] = _run(ws, "strong", "other", 0, 0.55, 0.05, rng)[1]
    values[("weak", "other", 0)] = _run(ws, "weak", "other", 0, 0.95, 0.40, rng)[1]
    values[("blind", "other", 0)] = _run(ws, "blind", "other", 0, 0.7, 0.2, rng, outputs=False)[1]
    from workbench import Workbench

    wb = Workbench(ws)
    wb.sync()
    return ws, wb, values


def test_compare_adds_intervals_and_says_what_they_are_over(compared):
    from workbench import RunFilter

    ws, wb, values = compared
    cmp = wb.compare(RunFilter(status="completed"), by=("method", "dataset"), convention="eraser")
    t = {(r["method"], r["dataset"]): r for r in cmp.table.iter_rows(named=True)}
    for key, row in t.items():
        if key == ("blind", "other"):  # no per-example outputs: no interval (not zero), and said so
            assert row["acc_ci_low"] is None and row["ci_over"] is None
            assert "no per-example outputs" in cmp.uncertainty.left_out["other"]["blind / other"]
            continue
        for m in ("acc", "macro_f1", "comp_aopc", "suff_aopc"):
            assert row[f"{m}_ci_low"] < row[f"{m}_mean"] < row[f"{m}_ci_high"], (key, m)
        assert row["ci_over"] == ("seeds and examples" if key in {("strong", "demo"), ("weak", "demo")} else "examples")
    assert t[("strong", "demo")]["acc_mean"] == pytest.approx(np.mean([values[("strong", "demo", s)]["acc"]
                                                                       for s in range(3)]))
    half = (t[("strong", "demo")]["acc_ci_high"] - t[("strong", "demo")]["acc_ci_low"]) / 2
    assert 0.005 < half < 0.06  # 3 x 200 examples at 0.9: a binomial sd of about 0.012 per run
    assert t[("strong", "demo")]["acc_best"] and not t[("weak", "demo")]["acc_best"]
    assert cmp.uncertainty.n_resamples == 1000
    again = wb.compare(RunFilter(status="completed"), by=("method", "dataset"), convention="eraser")
    assert again.table["acc_ci_low"].to_list() == cmp.table["acc_ci_low"].to_list()  # a fixed seed


def test_nrg_is_per_dataset_and_the_summary_averages_them(compared):
    from unirex.metrics.nrg import nrg
    from workbench import RunFilter

    ws, wb, values = compared
    cmp = wb.compare(RunFilter(status="completed"), by=("method", "dataset"), convention="eraser")
    t = {(r["method"], r["dataset"]): r for r in cmp.table.iter_rows(named=True)}
    # each dataset's NRG is min-max over that dataset's groups alone ('weak' loses on demo, wins on other)
    assert t[("weak", "demo")]["nrg"] < t[("strong", "demo")]["nrg"]
    assert t[("weak", "other")]["nrg"] > t[("strong", "other")]["nrg"]
    demo = {m: {k: np.mean([values[(m, "demo", s)][k] for s in range(3 if m != "single" else 1)])
                for k in values[(m, "demo", 0)]} for m in ("strong", "weak", "single")}
    other = {m: values[(m, "other", 0)] for m in ("strong", "weak", "blind")}
    for ds, entries in (("demo", demo), ("other", other)):
        expected = nrg(entries, convention="eraser")
        for m in entries:
            assert t[(m, ds)]["nrg"] == pytest.approx(expected.nrg[m]), (m, ds)
    s = {r["method"]: r for r in cmp.nrg_summary.iter_rows(named=True)}
    assert s["strong"]["datasets"] == ["demo", "other"]
    assert s["strong"]["nrg_mean_over_datasets"] == pytest.approx((t[("strong", "demo")]["nrg"]
                                                                   + t[("strong", "other")]["nrg"]) / 2)
    by_method = wb.compare(RunFilter(status="completed"), by=("method",), convention="eraser")
    m = {r["method"]: r for r in by_method.table.iter_rows(named=True)}
    assert m["strong"]["nrg"] == pytest.approx(s["strong"]["nrg_mean_over_datasets"])  # never across datasets
    # NRG's interval: on demo every group has outputs; on other one lacks them, so no interval there
    for m in ("strong", "weak", "single"):
        row = t[(m, "demo")]
        assert row["nrg_ci_low"] - 1e-9 <= row["nrg"] <= row["nrg_ci_high"] + 1e-9
    # the extremes win and lose every metric on every resample; the one in between moves
    assert t[("strong", "demo")]["nrg_ci_low"] == t[("strong", "demo")]["nrg_ci_high"]
    assert t[("single", "demo")]["nrg_ci_low"] < t[("single", "demo")]["nrg_ci_high"]
    assert t[("strong", "other")]["nrg_ci_low"] is None


def test_pairwise_tests_in_the_workbench_and_the_cli(compared, capsys):
    import json

    from cli import main
    from workbench import RunFilter

    ws, wb, _ = compared
    tests = wb.pairwise("acc", RunFilter(status="completed"), by=("method", "dataset"))
    pairs = {(t.a, t.b): t for t in tests}
    assert {t.dataset for t in tests} == {"demo", "other"} and len(tests) == 4  # 3 on demo, 1 on other (blind out)
    sw = pairs.get(("strong / demo", "weak / demo")) or pairs[("weak / demo", "strong / demo")]
    assert sw.significant and abs(sw.diff) > 0.2 and sw.p_adj >= sw.p and sw.seeds_a == 3
    w = ["--workspace", str(ws)]
    assert main([*w, "compare", "--by", "method,dataset", "--pairwise", "acc", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert {"a", "b", "diff", "ci_low", "ci_high", "p", "p_adj", "significant"} <= set(got[0])
    assert main([*w, "compare", "--by", "method,dataset", "--pairwise", "acc"]) == 0
    out = capsys.readouterr().out
    assert "Holm" in out and "left out of the tests: blind / other" in out
    # two datasets tested: each label says its method and dataset; only the split is shared
    assert "every group: split test\n" in out and "strong / demo" in out and "a (method / dataset)" in out
    assert main([*w, "compare", "--by", "method,dataset", "--dataset", "demo", "--pairwise", "acc"]) == 0
    out = capsys.readouterr().out  # one dataset: it is said once, and the labels are the methods
    assert "every group: split test, dataset demo\n" in out and "a (method)" in out and " / demo" not in out
    assert main([*w, "compare", "--by", "method,dataset", "--pairwise", "acurracy"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'acc'" in err and len(err.strip().splitlines()) == 1
    assert main([*w, "compare", "--by", "method,dataset", "--pairwise", "acc", "--pair", "strong / demo",
                 "weak / other"]) == 2
    assert "different datasets" in capsys.readouterr().err
    assert main([*w, "compare", "--by", "method,dataset"]) == 0
    out = capsys.readouterr().out
    assert " ± " in out and "half-width" in out and "cross-dataset summary" in out and "over examples only" in out
    csv = ws / "cmp.csv"
    assert main([*w, "compare", "--csv", str(csv)]) == 0
    assert "acc_ci_low" in csv.read_text().splitlines()[0] and "nrg_ci_high" in csv.read_text().splitlines()[0]


def test_compare_tab_shows_intervals_marks_and_the_pairs_matrix(compared):
    from ui.compare import dashboard, pair_view

    ws, wb, _ = compared
    cmp, headers, rows, note = dashboard(wb, dataset="demo", by=("method", "dataset"), convention="eraser")
    by_method = {r[0]: dict(zip(headers, r)) for r in rows}
    assert by_method["strong"]["acc"].endswith("★") and " ± " in by_method["weak"]["acc"]
    from ui.common import md

    assert "95% interval" in note and f"over examples only: {md('single / demo')}" in note
    fig = pair_view(wb, cmp, "acc")
    heat = fig.data[0]
    labels = list(heat.x)  # every group is on demo: the labels name the methods, the subtitle the rest once
    assert sorted(labels) == ["single", "strong", "weak"]
    assert fig.layout.title.subtitle.text == "split test, dataset demo"
    i, j = labels.index("strong"), labels.index("weak")
    assert heat.z[i][j] > 0 and heat.z[j][i] < 0 and heat.text[i][j].endswith("*")  # row minus column
    assert heat.z[i][i] is None
    assert "unknown metric" in pair_view(wb, cmp, "nope").layout.annotations[0].text
    from ui import figures

    recs = list(cmp.table.iter_rows(named=True))
    bars = figures.bars(recs, ["acc"], lambda r: r["method"])
    strong = next(b for b in bars.data if b.name == "strong")
    r = next(r for r in recs if r["method"] == "strong")
    assert strong.error_y.arrayminus[0] == pytest.approx(r["acc_mean"] - r["acc_ci_low"])  # the interval, not ± std
    assert strong.error_y.array[0] == pytest.approx(r["acc_ci_high"] - r["acc_mean"])
    everything, *_ = dashboard(wb, by=("method", "dataset"), convention="eraser")
    _, _, _, note = dashboard(wb, by=("method", "dataset"), convention="eraser")
    assert f"No interval and no test for {md('blind / other')}" in note
    f = wb.export_comparison(everything, "parquet")
    import polars as pl

    df = pl.read_parquet(f.path)
    assert {"acc_ci_low", "acc_ci_high", "acc_best", "nrg_ci_low", "ci_over"} <= set(df.columns)


def test_select_then_predict_outputs_are_scored_over_every_bins_prediction():
    """A select-then-predict model (A2R, FRESH) predicts once per bin: the per-example statistics count every
    bin's prediction, as the evaluator does (accuracy and macro F1 over N x K predictions)."""
    from unirex.evaluate import task_and_faithfulness
    from unirex.per_example import contributions

    rng = np.random.default_rng(9)
    out = _outputs(rng, 0.7, 0.2, n=60)
    logits = rng.normal(0, 1, (60, 5, 2))
    out.bin_probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = task_and_faithfulness(out, dataset_name="demo")
    ex = contributions(out, {"dataset": "demo"})
    for name in ("acc", "macro_f1", "task_ref", "comp_aopc", "suff_aopc", "comp_k10"):
        assert ex.metrics[name].value == pytest.approx(expected[name], abs=1e-12), name
