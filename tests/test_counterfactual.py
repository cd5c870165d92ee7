"""Counterfactuals: the minimal flip search (:mod:`unirex.counterfactual`) on a hand-built model whose answer
rests on one known word, the search on typed text (:mod:`unirex.textflip`), its metric in evaluation, and
the edit diff of Explain (:mod:`workbench.counterfactual`)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from unirex.counterfactual import (EXTRACTOR, MASK, RANDOM, FlipOptions, flip_search,
                                   search_batch, word_orders)
from unirex.errors import UnirexError
from unirex.inference import MAX_TEXT_CHARS
from unirex.metrics.registry import Direction
from unirex.textflip import flip_text

CLS, SEP, PAD, KEY = 101, 102, 0, 7777  # KEY: the one token the answer depends on


class OneWordModel(torch.nn.Module):
    """Class 1 when the KEY token is among the tokens it reads, class 0 otherwise; its own "extractor"
    scores the KEY token 1 and every other token a small position-dependent amount."""

    def __init__(self, key: int = KEY):
        super().__init__()
        self.key = key
        self.bias = torch.nn.Parameter(torch.zeros(2))
        self.extractor = SimpleNamespace(name="key-finder")
        self.scoring = None

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        am = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        has = ((input_ids == self.key) & am.bool()).any(1).float()
        return torch.stack([1 - has, has], 1) * 4.0 + self.bias

    def scores(self, batch) -> torch.Tensor:
        L = batch["input_ids"].shape[1]
        return (batch["input_ids"] == self.key).float() + 0.01 * torch.arange(L, 0, -1).float() / L

    def predict_and_explain(self, batch):
        return self(batch["input_ids"], batch["attention_mask"]), self.scores(batch)


def mean_fractions(by_order: dict) -> dict:
    """The flip metrics by hand: each order's mean fraction over its results (None without one)."""
    def mean(results):
        return float(np.mean([r.fraction for r in results])) if results else None

    return {"flip_words": mean(by_order.get(EXTRACTOR)), "flip_words_random": mean(by_order.get(RANDOM))}


def one_row(ids: list[int]) -> dict:
    """[CLS] words [SEP], one subword per word (word i = token i + 1)."""
    row = [CLS, *ids, SEP]
    n = len(ids)
    return {"input_ids": torch.tensor([row]), "attention_mask": torch.ones(1, n + 2, dtype=torch.long),
            "token_type_ids": torch.zeros(1, n + 2, dtype=torch.long),
            "word_ids": torch.tensor([[-1, *range(n), -1]])}


WORDS = [2000 + i for i in range(20)]


def with_key_at(pos: int) -> dict:
    ids = list(WORDS)
    ids[pos] = KEY
    return one_row(ids)


def test_extractor_order_flips_in_one_edit_and_random_takes_more_on_average():
    model = OneWordModel()
    batch = with_key_at(13)
    full = FlipOptions(max_fraction=1.0)
    found = search_batch(model, batch, model.scores(batch), full, np.random.default_rng(0))
    g = found[EXTRACTOR][0]
    assert g.flipped and g.n_edits == 1 and g.edited == (13,) and g.n_words == 20
    assert g.base_label == 1 and g.label == 0 and g.fraction == pytest.approx(1 / 20)
    edits = []
    for seed in range(12):
        r = search_batch(model, batch, model.scores(batch), full, np.random.default_rng(seed))[RANDOM][0]
        assert r.flipped and r.n_edits >= 1 and r.edited[-1] == 13  # flips exactly when the key word goes
        assert 13 not in r.edited[:-1]
        edits.append(r.n_edits)
    assert np.mean(edits) > 2  # the key sits at a random place of a random order: ~10.5 edits expected


def test_no_flip_within_the_cap_is_reported_and_counts_one():
    model = OneWordModel()
    batch = one_row(WORDS)  # no key: class 0 whatever is removed
    opts = FlipOptions(max_fraction=0.25, max_words=64)
    g = search_batch(model, batch, model.scores(batch), opts, np.random.default_rng(0))[EXTRACTOR][0]
    assert not g.flipped and g.n_edits is None and g.cap == 5 and len(g.edited) == 5 and g.fraction == 1.0
    # a cap that stops before the key word: no flip either, although a longer search would find one
    batch = with_key_at(10)
    scores = model.scores(batch) * 0 + torch.arange(22, 0, -1).float()  # an order that reaches the key 11th
    g = search_batch(model, batch, scores, FlipOptions(max_words=3), np.random.default_rng(0))[EXTRACTOR][0]
    assert not g.flipped and g.cap == 3 and g.edited == (0, 1, 2)
    far = search_batch(model, batch, scores, FlipOptions(max_fraction=1.0), np.random.default_rng(0))[EXTRACTOR][0]
    assert far.flipped and far.n_edits == 11 and far.edited == tuple(range(11))  # found in the second round
    assert mean_fractions({EXTRACTOR: [g]})["flip_words"] == 1.0
    assert mean_fractions({}) == {"flip_words": None, "flip_words_random": None}


def test_mask_edit_replaces_and_several_rows_batch_together():
    model = OneWordModel()
    rows = [with_key_at(3), with_key_at(17), one_row(WORDS)]
    batch = {k: torch.cat([r[k] for r in rows]) for k in rows[0]}
    orders = word_orders(model.scores(batch), batch["word_ids"], EXTRACTOR)
    assert orders[0][0] == 3 and orders[1][0] == 17 and orders[2][:2] == [0, 1]
    res = flip_search(model, batch, orders, FlipOptions(edit=MASK, max_fraction=1.0), replacement_id=103)
    assert [r.n_edits for r in res] == [1, 1, None]
    assert [r.fraction for r in res] == [0.05, 0.05, 1.0]


def test_flip_options_refuse_bad_caps():
    for bad in ({"max_fraction": 0}, {"max_fraction": 1.5}, {"max_words": 0}, {"edit": "swap"}):
        with pytest.raises(UnirexError, match="flip"):
            FlipOptions(**bad)


# ----------------------------------------------------------------------------------- typed text
@pytest.fixture(scope="module")
def key_model(bundled_tokenizer):
    key = bundled_tokenizer.convert_tokens_to_ids("wonderful")
    return OneWordModel(key).eval()


def test_flip_text_names_the_word_and_the_edited_text(key_model, bundled_tokenizer):
    text = "the plot was thin but the acting was wonderful and the music was loud"
    f = flip_text(key_model, bundled_tokenizer, text, ["neg", "pos"], 64, options=FlipOptions(max_fraction=1.0))
    assert f.predicted == "pos" and f.guided.n_edits == 1 and f.words[f.guided.edited[0]] == "wonderful"
    assert f.label_of(f.guided) == "neg" and f.extractor == "own (key-finder)"
    assert f.edited_text(f.guided) == text.replace(" wonderful", "")
    assert f.random.flipped and f.random.n_edits >= 1
    m = flip_text(key_model, bundled_tokenizer, text, ["neg", "pos"], 64, options=FlipOptions(edit=MASK))
    assert m.guided.n_edits == 1 and m.edited_text(m.guided) == text.replace("wonderful", "[MASK]")
    assert ("[MASK]", True) in m.edited_words(m.guided)


def test_flip_text_bad_inputs_one_line(key_model, bundled_tokenizer):
    for text, match in (("   ", "empty"), ("a " * (MAX_TEXT_CHARS // 2 + 1), "at most")):
        with pytest.raises(UnirexError, match=match) as e:
            flip_text(key_model, bundled_tokenizer, text, ["neg", "pos"], 64)
        assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------------- evaluation
def test_evaluation_reports_the_flip_metrics(tiny_arch, small_demo_dir):
    from evalkit import TinyClassifier, random_scores, split_dataset

    from unirex.evaluate import evaluate

    model = TinyClassifier(tiny_arch).eval()
    ds, _ = split_dataset(small_demo_dir, "demo", "test", tiny_arch, max_length=64, rows=range(5))
    scores = random_scores(ds.table)
    opts = FlipOptions(max_fraction=1.0, max_words=5)
    m = evaluate(model, ds, scores, batch_size=3, flip=opts, bins=(10.0,)).metrics
    # the same search by hand, batch by batch, with the same seeded order
    rng, by_order = np.random.default_rng(opts.seed), {EXTRACTOR: [], RANDOM: []}
    for start in (0, 3):
        batch = ds.collate([ds[i] for i in range(start, min(start + 3, 5))])
        s = torch.stack([torch.from_numpy(np.pad(scores[i], (0, batch["input_ids"].shape[1] - len(scores[i]))))
                         for i in batch["index"].tolist()]).float()
        for order, res in search_batch(model, batch, s, opts, rng, ds.pad_token_id).items():
            by_order[order] += res
    assert m["flip_words"] == pytest.approx(mean_fractions(by_order)["flip_words"])
    assert m["flip_words_random"] == pytest.approx(mean_fractions(by_order)["flip_words_random"])
    assert 0 < m["flip_words"] <= 1 and 0 < m["flip_words_random"] <= 1
    assert "flip_words" not in evaluate(model, ds, scores, batch_size=3, bins=(10.0,)).metrics


# ----------------------------------------------------------------------------------- editing diff
def test_word_diff_marks_changed_inserted_and_deleted_words():
    from workbench.counterfactual import CHANGED, DELETED, INSERTED, SAME, word_diff

    before = "the plot was thin but the acting was wonderful".split()
    after = "the plot was very thin and the acting was awful".split()
    sb = [float(i) for i in range(len(before))]
    sa = [10.0 + i for i in range(len(after))]
    ch = word_diff(before, sb, after, sa)
    ops = [(c.op, c.before, c.after) for c in ch]
    assert ops == [(SAME, "the", "the"), (SAME, "plot", "plot"), (SAME, "was", "was"), (INSERTED, None, "very"),
                   (SAME, "thin", "thin"), (CHANGED, "but", "and"), (SAME, "the", "the"), (SAME, "acting", "acting"),
                   (SAME, "was", "was"), (CHANGED, "wonderful", "awful")]
    thin = ch[4]
    assert (thin.before_index, thin.after_index, thin.delta) == (3, 4, 14.0 - 3.0)
    assert ch[3].delta is None and ch[3].score_after == 13.0
    gone = word_diff(["a", "b", "c"], [1, 2, 3], ["a", "c"], [1, 5])
    assert [(c.op, c.before, c.delta) for c in gone] == [(SAME, "a", 0.0), (DELETED, "b", None), (SAME, "c", 2.0)]
    # a replaced run of unequal length: pairs first, then the rest deleted
    rep = word_diff(["x", "p", "q", "r", "y"], [0] * 5, ["x", "s", "y"], [0] * 3)
    assert [c.op for c in rep] == [SAME, CHANGED, DELETED, DELETED, SAME]
    assert word_diff([], [], ["new"], [1.0])[0].op == INSERTED


# ------------------------------------------------------------- a trained checkpoint: workbench, CLI
@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_arch):
    """A debug run with a checkpoint and the flip search in its evaluation, its data in its workspace (the
    split search reads the checkpoint's dataset from the workspace's data folder)."""
    from unirex.data.demo import ensure_demo
    from unirex.engine import resolve_run_config, run

    ws = tmp_path_factory.mktemp("ws-flip")
    ensure_demo(ws / "data" / "demo", sizes={"train": 16, "val": 8, "test": 8})
    res = run(resolve_run_config([f"arch={tiny_arch}", f"workspace={ws}", "data.max_length=64", "debug=True",
                                  "setup.train_batch_size=8", "setup.eval_batch_size=8", "save_checkpoint=True",
                                  "method=task_lm", "training.eval_flip=True", "training.flip_max_words=6",
                                  "training.eval_splits='test'"]))
    assert res.status == "completed"
    return ws, res


@pytest.mark.long  # a training run, the CLI and the app's handlers: ~30 s, beyond the suite's time budget
def test_run_with_eval_flip_logs_the_metric_and_the_fronts_search(trained, capsys):
    import json

    from cli import main
    from unirex.flipspec import FlipOptions
    from workbench import Workbench

    ws, res = trained
    fw, fr = res.metrics["test_flip_words"], res.metrics["test_flip_words_random"]
    assert 0 < fw <= 1 and 0 < fr <= 1
    dev = [json.loads(line) for line in (Path(res.run_dir) / "metrics.jsonl").read_text().splitlines()]
    assert not [m for m in dev if "flip_words" in json.dumps(m) and m.get("epoch") is not None]  # final only
    wb = Workbench(ws)
    text = "the plot was thin but the acting was wonderful"
    fo = wb.flip(res.run_id, text, options=FlipOptions(max_fraction=1.0, max_words=64))
    assert fo.guided.n_words == 9 and fo.predicted in fo.labels and fo.guided.summary.startswith(("flipped", "no flip"))
    if fo.guided.flipped:
        assert fo.guided.label != fo.predicted and len(fo.guided.edited) == fo.guided.n_edits
    d = wb.explain_edit(res.run_id, text, "the plot was very thin and the acting was wonderful")
    assert d.n_edited == 2 and [p.label for p in d.probs] == d.before.labels
    assert abs(sum(p.delta for p in d.probs)) < 1e-6
    w = ["--workspace", str(ws)]
    assert main([*w, "explain", "--run", res.run_id, "--text", text, "--flip"]) == 0
    out = capsys.readouterr().out
    assert "extractor order" in out and "random order (seed 0)" in out and "edited text:" in out
    assert main([*w, "explain", "--run", res.run_id, "--flip", "--split", "test", "--limit", "2", "--json"]) == 0
    sm = json.loads(capsys.readouterr().out)
    assert sm["examples"] == 2 and 0 < sm["flip_words"] <= 1 and sm["comp_aopc"] is not None
    assert main([*w, "explain", "--run", res.run_id, "--split", "test"]) == 2
    assert "--split goes with --flip" in capsys.readouterr().err
    assert main([*w, "explain", "--run", res.run_id, "--text", "  ", "--flip"]) == 2
    assert "the text is empty" in capsys.readouterr().err
    assert main([*w, "explain", "--run", res.run_id, "--text", "x", "--flip", "--flip-max-fraction", "2"]) == 2
    assert "fraction cap" in capsys.readouterr().err
    # the Explain tab's panel, through its handlers
    from ui.counterfactual import CounterfactualHandlers

    h = CounterfactualHandlers(wb)
    summary, probs, diff, deltas, rows = h.on_edit(res.run_id, "own", text, "", text.replace("thin", "thick"), "", "",
                                                   10)
    assert "Prediction" in summary and len(probs) == len(d.before.labels) and ("thin→thick ", "changed") in diff
    assert len(rows) == 9 and [r[0] for r in rows].count("changed") == 1 and len(deltas) == 9
    md_out, guided, rnd = h.on_flip(res.run_id, "own", text, "", "", "mask", 0.3, 64, 0)
    assert "Extractor" in md_out and "Random order" in md_out
    assert all(label in (None, "edited") for _, label in guided + rnd)


def test_panel_pieces_keep_user_words_as_text():
    from ui.counterfactual import delta_pieces, diff_pieces, edit_summary_md, flip_md, flip_pieces
    from workbench.counterfactual import FlipOutcome, FlipPath, edit_diff
    from workbench.records import Explanation

    def ex(words, scores, probs, pred):
        return Explanation(checkpoint="c", run_id=None, extractor="own", words=words, word_document=[0] * len(words),
                           word_scores=scores, rationale=[False] * len(words), labels=["neg", "pos"], probs=probs,
                           predicted=pred, top_k=10.0, comprehensiveness=0.0, sufficiency=0.0, truncated=False,
                           n_subwords=len(words) + 2, seconds=0.0)

    d = edit_diff(ex(["a", "<b>bold</b>", "c"], [1.0, 2.0, 3.0], [0.2, 0.8], "pos"),
                  ex(["a", "c", "**new**"], [1.0, 1.0, 4.0], [0.7, 0.3], "neg"))
    assert d.prediction_changed and [round(p.delta, 6) for p in d.probs] == [0.5, -0.5]
    assert diff_pieces(d) == [("a ", None), ("<b>bold</b> ", "deleted"), ("c ", None), ("**new** ", "inserted")]
    assert delta_pieces(d) == [("a ", 0.0), ("c ", -1.0), ("**new** ", None)]
    s = edit_summary_md(d)
    assert "flipped" in s and "<b>" not in s
    path = FlipPath(order="extractor", flipped=True, n_edits=1, n_words=3, cap=2, fraction=1 / 3,
                    edited=["<b>bold</b>"], words=[("a", False), ("<b>bold</b>", True), ("c", False)],
                    edited_text="a c", label="neg", probs=[0.9, 0.1])
    nope = FlipPath(order="random", flipped=False, n_edits=None, n_words=3, cap=2, fraction=1.0, edited=["a", "c"],
                    words=[("a", True), ("<b>bold</b>", False), ("c", True)], edited_text="<b>bold</b>", label="pos",
                    probs=[0.2, 0.8])
    fo = FlipOutcome(checkpoint="c", run_id=None, extractor="own", edit="remove", seed=0, max_fraction=0.5,
                     max_words=64, labels=["neg", "pos"], probs=[0.2, 0.8], predicted="pos", guided=path, random=nope,
                     truncated=False, seconds=0.01)
    text = flip_md(fo)
    assert "after **1** of 3 words" in text and "**no flip** within 2 of 3 words" in text
    assert "`<b>bold</b>`" in text and text.count("<b>") == 1  # the word only inside its code span
    assert flip_pieces(path) == [("a ", None), ("<b>bold</b> ", "edited"), ("c ", None)]


class CountModel(torch.nn.Module):
    """Class 1 while at least three of the KEYS tokens are read, class 0 below."""

    KEYS = (2003, 2007, 2011, 2016, 2019)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        am = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        n = sum(((input_ids == k) & am.bool()).sum(1) for k in self.KEYS)
        has = (n >= 3).float()
        return torch.stack([1 - has, has], 1) * 4.0


def test_rounds_find_the_first_flipping_prefix_of_any_order():
    model, batch = CountModel(), one_row(WORDS)
    keys = {i for i, t in enumerate(WORDS) if t in CountModel.KEYS}
    rng = np.random.default_rng(5)
    orders = [list(rng.permutation(20)) for _ in range(6)]
    rows = {k: v.repeat(6, 1) for k, v in batch.items()}
    found = flip_search(model, rows, [list(map(int, o)) for o in orders], FlipOptions(max_fraction=1.0))
    for order, r in zip(orders, found):
        expected = next(m for m in range(1, 21) if len(keys - set(int(w) for w in order[:m])) < 3)
        assert r.flipped and r.n_edits == expected and (r.base_label, r.label) == (1, 0)


# ------------------------------------------------------------- per example, and in the comparison
def _evaluated_run(ws, method, model, ds, built, scores, flip):
    """A completed run whose final test evaluation (metrics and per-example outputs) is ``evaluate``'s, with
    the flip search when ``flip``, as the engine logs and saves it."""
    from unirex.evaluate import evaluate, save_outputs
    from unirex.runs import RunDir

    res = evaluate(model, ds, scores, batch_size=4, bins=(10.0,), flip=flip)
    rd = RunDir.create(ws / "runs", {"seed": 0}, {"method": method, "dataset": "demo", "arch": "default", "seed": 0,
                                                  "mode": "train"})
    rd.log_metrics({k: v for k, v in res.metrics.items() if isinstance(v, (int, float))}, "test")
    save_outputs(rd.path, "test", res, built)
    rd.set_status("completed")
    return rd, res


def test_flip_metrics_are_kept_per_example_and_compared_with_intervals(tiny_arch, small_demo_dir, tmp_path, capsys):
    """An evaluation with the flip search keeps each example's fraction (their mean is the metric), saved with
    the outputs, so the comparison lists flip_words with a bootstrap interval and paired tests; a run
    evaluated without the search shows an empty cell, not an error."""
    from evalkit import TinyClassifier, random_scores, split_dataset

    from cli import main
    from ui.compare import shown_metrics, table_view
    from unirex.evaluate import load_outputs
    from unirex.metrics.registry import get_metric, on_request
    from unirex.per_example import load_contributions
    from workbench import RunFilter, Workbench

    model = TinyClassifier(tiny_arch).eval()
    ds, built = split_dataset(small_demo_dir, "demo", "test", tiny_arch, max_length=64, rows=range(8))
    opts = FlipOptions(max_fraction=1.0, max_words=6)
    ws = tmp_path / "ws"
    rd, res = _evaluated_run(ws, "a", model, ds, built, random_scores(ds.table, seed=1), opts)
    _evaluated_run(ws, "b", model, ds, built, random_scores(ds.table, seed=2), opts)
    _evaluated_run(ws, "c", model, ds, built, random_scores(ds.table, seed=3), None)
    for key in ("flip_words", "flip_words_random"):
        per = getattr(res.outputs.extra, key)
        assert per.shape == (8,) and ((per > 0) & (per <= 1)).all()
        assert per.mean() == pytest.approx(res.metrics[key])  # the run-level metric is their mean
        loaded, _ = load_outputs(rd.path, "test")
        np.testing.assert_allclose(getattr(loaded.extra, key), per)
        assert load_contributions(rd.path, "test").metrics[key].value == pytest.approx(res.metrics[key])
    assert not (res.outputs.extra.flip_words == 1.0).all()  # some example flips before the cap
    assert get_metric("flip_words").direction is Direction.LOWER
    wb = Workbench(ws)
    wb.sync()
    cmp = wb.compare(RunFilter(status="completed"), split="test", by=("method",), convention="eraser")
    assert {"flip_words", "flip_words_random"} <= set(cmp.metrics)
    assert [m.key for m in on_request(cmp.metrics)] == ["flip_words", "flip_words_random"]
    t = {r["method"]: r for r in cmp.table.iter_rows(named=True)}
    for m in ("a", "b"):
        lo, mean, hi = (t[m][f"flip_words_{c}"] for c in ("ci_low", "mean", "ci_high"))
        assert lo is not None and lo <= mean <= hi
    assert t["a"]["flip_words_ci_low"] < t["a"]["flip_words_ci_high"]  # its examples differ: a real interval
    assert t["a"]["flip_words_mean"] == pytest.approx(res.metrics["flip_words"])
    assert t["c"]["flip_words_mean"] is None and t["c"]["flip_words_ci_low"] is None
    # the Compare tab's table and the CLI show the column; the run without the search has an empty cell
    headers, rows = table_view(cmp)
    col = headers.index("flip words ↓")
    assert ("flip_words", "flip words ↓") in shown_metrics(cmp)
    cells = {r[0]: r[col] for r in rows}
    assert cells["c"] == "" and " ± " in cells["a"]
    assert main(["compare", "--workspace", str(ws), "--by", "method"]) == 0
    out = capsys.readouterr().out
    assert "flip_words" in out and "flip_words_random" in out
    # paired tests by example, as for comp / suff
    tests = wb.pairwise("flip_words", RunFilter(status="completed"), by=("method",))
    pair = {frozenset((x.a, x.b)): x for x in tests}[frozenset(("a", "b"))]
    assert pair.ci_low <= pair.diff <= pair.ci_high and 0 <= pair.p <= 1
    assert main(["compare", "--workspace", str(ws), "--by", "method", "--pairwise", "flip_words"]) == 0
    assert "Holm" in capsys.readouterr().out


def test_fewer_flip_edits_rank_best():
    """Lower flip_words is better: the group that flips with fewer edits is the one marked best."""
    from unirex.metrics.stats import bootstrap, mean_rows
    from workbench.stats import best_is_significant

    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, 200)
    groups = {"few": [{"flip_words": mean_rows(np.clip(base - 0.15, 0, 1))}],
              "many": [{"flip_words": mean_rows(np.clip(base + 0.15, 0, 1))}]}
    assert best_is_significant(bootstrap(groups, n_resamples=400), "flip_words") == "few"
