"""The metric registry: the built-in table reproduces every front's former columns, and a metric registered
with ``register_metric`` shows in the runs index, ``runs`` / ``show`` / ``compare``, the Runs and Compare
tabs, the Hub card and NRG (with its direction) without touching any of them. Also the Runs tab's licence
choices (the core's list) and check_license's message (no CLI flag when the app calls it)."""

from __future__ import annotations

import math
import re

import pytest

from unirex.errors import UnirexError
from unirex.metrics.registry import (Direction, Family, Headline, MetricSpec, direction, get_metric, metric_keys,
                                     metrics, register_metric, unregister_metric)
from unirex.runs import RunDir

NEW = "zz_deletion_auc"  # a faithfulness metric where lower is better, as a plugin would add one


@pytest.fixture
def new_metric():
    spec = register_metric(MetricSpec(NEW, "deletion AUC", Family.FAITHFULNESS, Direction.LOWER,
                                      headline=Headline.BRIEF, nrg=("eraser",), digits=3, title="Deletion AUC",
                                      abbrev="del_auc", card_type="deletion_auc"))
    yield spec
    unregister_metric(NEW)
    assert NEW not in metric_keys()


def _run(ws, method: str, seed: int, values: dict[str, float]) -> RunDir:
    rd = RunDir.create(ws / "runs", {"seed": seed},
                       {"method": method, "dataset": "demo", "arch": "default", "seed": seed, "mode": "train"})
    rd.log_metrics({"acc": 0.5, "comp_aopc": 0.2}, split="dev", epoch=0)
    rd.log_metrics(values, split="test")  # the final evaluation: no epoch
    rd.set_status("completed")
    return rd


@pytest.fixture
def workspace(tmp_path):
    """Two methods, one run each; the new metric is better (lower) for ``good``, everything else ties."""
    base = {"acc": 0.8, "macro_f1": 0.7, "comp_aopc": 0.3, "suff_aopc": 0.1, "plaus_auprc": 0.6,
            "plaus_token_f1": 0.5, "plaus_iou_f1": 0.4}
    good = _run(tmp_path, "good", 0, {**base, NEW: 0.125})
    bad = _run(tmp_path, "bad", 0, {**base, NEW: 0.875})
    return tmp_path, good, bad


# ------------------------------------------------------------------------------------ the built-in table
def test_builtin_table_gives_each_front_its_former_columns():
    assert metric_keys(headline=Headline.BRIEF) == ("acc", "comp_aopc", "suff_aopc", "plaus_auprc")
    assert metric_keys(headline=Headline.COMPACT) == ("acc", "macro_f1", "comp_aopc", "suff_aopc", "plaus_auprc")
    assert metric_keys(headline=Headline.SUMMARY) == ("acc", "macro_f1", "comp_aopc", "suff_aopc", "plaus_auprc",
                                                      "plaus_token_f1")
    assert metric_keys(headline=True) == ("acc", "macro_f1", "comp_aopc", "suff_aopc", "plaus_auprc",
                                          "plaus_token_f1", "plaus_iou_f1")
    bins = (1, 5, 10, 20, 50)
    assert metric_keys(compared=True) == ("acc", "macro_f1", "task_ref", "comp_aopc", "suff_aopc", "plaus_auprc",
                                          "plaus_token_f1", "plaus_iou_f1", "plaus_ref_auprc", "plaus_ref_token_f1",
                                          *(f"comp_k{k}" for k in bins), *(f"suff_k{k}" for k in bins),
                                          # beside ERASER's (eval.extra_metrics, issue 24), after the former columns
                                          "soft_comp", "soft_suff", "sensitivity_max", "diag_comp", "diag_suff",
                                          "flip_words", "flip_words_random")
    assert [m.heading for m in metrics(headline=True)] == ["acc", "macro F1", "comp AOPC ↑", "suff AOPC ↓", "AUPRC",
                                                          "token F1", "IOU F1"]
    assert get_metric("suff_aopc").card_name == "Sufficiency AOPC (lower is better)"
    assert get_metric("comp_aopc").card_name == "Comprehensiveness AOPC (higher is better)"
    assert get_metric("acc").card_name == "Accuracy"
    lower = {m.key for m in metrics() if m.direction is Direction.LOWER}
    assert lower == {"suff_aopc", "suff_aopc_unirex", *(f"suff_k{k}" for k in bins), "soft_suff", "sensitivity_max",
                     "flip_words", "flip_words_random"}
    assert direction("nrg_faithfulness") is Direction.HIGHER  # not a metric of the table: higher is better


def test_nrg_compositions_come_from_the_table():
    from unirex.metrics.nrg import nrg_spec

    assert nrg_spec("paper") == {"faithfulness": {"comp_aopc_unirex": True, "suff_aopc_unirex": False},
                                 "plausibility": {"plaus_ref_auprc": True}, "task": {"task_ref": True}}
    assert nrg_spec("eraser") == {"faithfulness": {"comp_aopc": True, "suff_aopc": False},
                                  "plausibility": {"plaus_auprc": True, "plaus_token_f1": True, "plaus_iou_f1": True},
                                  "task": {"macro_f1": True}}


def test_registering_checks_the_key_and_refuses_duplicates(new_metric):
    with pytest.raises(UnirexError, match="already registered"):
        register_metric(MetricSpec(NEW, "again", Family.TASK))
    with pytest.raises(UnirexError, match="letters, digits"):
        MetricSpec("bad key; DROP", "x", Family.TASK)
    with pytest.raises(UnirexError, match="built in"):
        unregister_metric("acc")
    with pytest.raises(UnirexError, match="unknown metric"):
        get_metric("no_such_metric")
    assert metric_keys()[-1] == NEW  # after the built-ins, in registration order
    assert new_metric.heading == "deletion AUC ↓" and new_metric.card_name == "Deletion AUC (lower is better)"


# ------------------------------------------------------------------------------- a new metric everywhere
def test_new_metric_in_nrg_with_its_direction(new_metric):
    from unirex.metrics.nrg import nrg, nrg_spec

    assert nrg_spec("eraser")["faithfulness"] == {"comp_aopc": True, "suff_aopc": False, NEW: False}
    assert NEW not in nrg_spec("paper")["faithfulness"]
    ties = {"comp_aopc": 0.3, "suff_aopc": 0.1, "plaus_auprc": 0.6, "macro_f1": 0.7}
    res = nrg({"good": {**ties, NEW: 0.1}, "bad": {**ties, NEW: 0.9}}, convention="eraser")
    assert res.normalized["good"][NEW] == 1.0 and res.normalized["bad"][NEW] == 0.0  # lower is better
    assert res.nrg["good"] > res.nrg["bad"]


def test_new_metric_in_store_and_comparison(new_metric, workspace):
    from workbench import RunFilter, Workbench

    ws, good, bad = workspace
    wb = Workbench(ws)
    wb.sync()
    df = wb.runs_frame(split="test")
    assert NEW in df.columns
    assert dict(zip(df["run_id"].to_list(), df[NEW].to_list())) == {good.run_id: 0.125, bad.run_id: 0.875}
    cmp = wb.compare(RunFilter(status="completed"), split="test", by=("method",), convention="eraser")
    assert NEW in cmp.metrics and cmp.nrg_metrics["faithfulness"] == ["comp_aopc", "suff_aopc", NEW]
    rows = {r["method"]: r for r in cmp.table.iter_rows(named=True)}
    assert rows["good"][f"{NEW}_mean"] == 0.125
    assert rows["good"]["nrg_faithfulness"] > rows["bad"]["nrg_faithfulness"]  # the lower value wins
    assert cmp.table["method"].to_list() == ["good", "bad"]  # sorted by NRG
    per_run = wb.nrg([good.run_id, bad.run_id], split="test", convention="eraser")
    assert per_run.normalized[good.run_id][NEW] == 1.0 and per_run.normalized[bad.run_id][NEW] == 0.0


def test_new_metric_in_cli_runs_show_compare(new_metric, workspace, capsys):
    from cli import main

    ws, good, bad = workspace
    assert main(["runs", "--workspace", str(ws)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("run_id"))
    assert header.split()[-1] == NEW  # after the built-in brief columns
    assert "0.125" in out and "0.875" in out

    assert main(["show", good.run_id, "--workspace", str(ws)]) == 0
    out = capsys.readouterr().out
    final = out[out.index("final evaluation"):]
    assert NEW in final.splitlines()[1] and "0.125" in final

    assert main(["compare", "--by", "method", "--convention", "eraser", "--workspace", str(ws)]) == 0
    out = capsys.readouterr().out
    assert f"faithfulness: comp_aopc, suff_aopc, {NEW}" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("method"))
    assert header.split()[-1] == NEW
    body = [line for line in lines if line.lstrip().startswith(("good", "bad"))]
    assert [line.split()[0] for line in body] == ["good", "bad"] and "0.125" in body[0]


def test_new_metric_in_cli_training_lines(new_metric):
    from cli.train import progress_metrics

    line = progress_metrics({"acc": 0.5, "comp_aopc": 0.25, "suff_aopc": 0.125, NEW: 0.5})
    assert line == "acc 0.5000  comp 0.2500  suff 0.1250  del_auc 0.5000"  # no AUPRC: no gold rationales


def test_new_metric_in_the_app_tabs(new_metric, workspace):
    from ui import compare as compare_tab
    from ui import figures
    from ui import runs as runs_tab
    from workbench import Workbench

    ws, good, bad = workspace
    wb = Workbench(ws)
    wb.sync()
    headers = runs_tab.table_headers()
    assert headers[headers.index("token F1") + 1] == "deletion AUC ↓"
    rows = {r[0]: r for r in runs_tab.runs_rows(wb.runs_frame(split="test"))}
    assert rows[good.run_id][headers.index("deletion AUC ↓")] == 0.125
    names, _ = runs_tab.metric_table(wb.run(good.run_id).final)
    assert names[-1] == NEW and names[:8] == ["split", *metric_keys(headline=True)[:7]]

    cmp, headers, rows, _ = compare_tab.dashboard(wb, by=("method",), convention="eraser")
    assert headers[-1] == "deletion AUC ↓" and rows[0][0] == "good" and rows[0][-1].startswith("0.125")
    assert f"{NEW}_mean" in compare_tab.axes() and NEW in compare_tab.bar_metrics()
    recs, _ = compare_tab.chart_rows(cmp)
    fig = figures.scatter(recs, f"{NEW}_mean", "nrg_plausibility", compare_tab.label_of(cmp.by), "t")
    assert fig.layout.xaxis.title.text == f"{NEW} (↓ better)"
    front = [t for t in fig.data if t.name == "Pareto front"][0]
    assert list(front.x) == [0.125]  # the lower value dominates: the front is the good group alone


def test_new_metric_on_the_hub_card(new_metric):
    from huggingface_hub.repocard_data import model_index_to_eval_results

    from unirex.config import resolve_config
    from unirex.hub import HubRun, build_model_card, check_model_card

    cfg = resolve_config(["data=demo", "method=slm_plaus_linear"], validate=False)
    values = {"test": {"acc": 0.8, "comp_aopc": 0.3, "suff_aopc": 0.1, NEW: 0.125}}
    summary = HubRun(run_id="R-1", path=None, checkpoint=None, meta={"method": "slm_plaus_linear"}, config=cfg,
                         info={"labels": ["neg", "pos"], "epoch": 1, "value": 0.8}, status={}, metrics=values)
    card = str(build_model_card(summary, "me/model", "mit"))
    assert "| Deletion AUC (lower is better) | 0.125 |" in card  # its digits (3), its direction
    check = check_model_card(card, expected=values)
    assert check.eval_results == 4
    _, results = model_index_to_eval_results(__import__("yaml").safe_load(card.split("---")[1])["model-index"])
    by_type = {r.metric_type: r for r in results}
    assert by_type["deletion_auc"].metric_value == 0.125
    assert by_type["deletion_auc"].metric_name == "Deletion AUC (lower is better)"


def test_card_values_are_data_not_template(new_metric):
    """A ``$placeholder`` or ``|`` in a run's values reaches the card as text; the table keeps its cells."""
    from unirex.config import resolve_config
    from unirex.hub import HubRun, build_model_card

    cfg = resolve_config(["data=demo", "method=slm_plaus_linear"], validate=False)
    summary = HubRun(run_id="R-1", path=None, checkpoint=None, meta={"method": "$repo_id", "device": "a|b"},
                         config=cfg, info={"labels": ["$title", "x|y"], "epoch": 1, "value": math.nan}, status={},
                         metrics={"test": {"acc": 0.8}})
    card = str(build_model_card(summary, "me/model", "mit"))
    assert "`$repo_id`" in card and "labels $title, x\\|y" in card and "/ a\\|b |" in card
    assert all(line.count(" | ") == 1 for line in card.splitlines() if line.startswith("| dataset |"))


# --------------------------------------------------------------------------------------- the licence
def test_runs_tab_offers_only_licences_the_core_accepts(tmp_path):
    import gradio as gr

    from ui import runs as runs_tab
    from unirex.hub import HUB_LICENSES, check_license
    from workbench import Workbench

    with gr.Blocks() as demo:
        runs_tab.build_tab(Workbench(tmp_path))
    (licence,) = [b for b in demo.blocks.values() if isinstance(b, gr.Dropdown) and b.label == "License"]
    choices = [c[1] if isinstance(c, tuple) else c for c in licence.choices]
    assert choices == list(HUB_LICENSES) and "other" not in choices
    assert all(check_license(value) == value for value in choices)


def test_license_message_names_no_cli_flag_in_the_app(tmp_path):
    from workbench import Workbench

    wb = Workbench(tmp_path)
    rd = _run(tmp_path, "m", 0, {"acc": 0.5})
    rd.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    (rd.checkpoint_dir / "checkpoint.json").write_text("{}")  # the licence is checked before the checkpoint is read
    with pytest.raises(UnirexError) as e:
        wb.push(rd.run_id, "me/model", license="other", dry_run_dir=tmp_path / "exports" / "x")
    assert "--" not in str(e.value) and "license 'other' is not a license identifier" in str(e.value)


def test_license_message_names_the_flag_in_the_cli(tmp_path, capsys):
    from cli import main

    assert main(["push", "--run", "nope", "--repo-id", "me/model", "--license", "apache2",
                 "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"--license: license 'apache2' is not .*did you mean apache-2\.0", err)


# ------------------------------------------------------------------------------ a metric that computes itself
def test_registered_compute_runs_in_every_evaluation(small_demo_dir, tiny_arch):
    import numpy as np
    from evalkit import TinyClassifier, random_scores, split_dataset

    from unirex.evaluate import evaluate

    def confidence_drop_at_top_bin(outputs):  # a plugin's metric, from the evaluator's per-example outputs
        rows = np.arange(len(outputs))
        return float((outputs.probs[rows, outputs.pred] - outputs.comp_probs[rows, 0, outputs.pred]).mean())

    register_metric(MetricSpec("zz_comp_top_bin", "comp @top bin", Family.FAITHFULNESS,
                               compute=confidence_drop_at_top_bin))
    try:
        ds, _ = split_dataset(small_demo_dir, "demo", "test", tiny_arch, max_length=64, rows=range(6))
        res = evaluate(TinyClassifier(tiny_arch).eval(), ds, random_scores(ds.table, seed=2),
                       batch_size=3)
    finally:
        unregister_metric("zz_comp_top_bin")
    assert res.metrics["zz_comp_top_bin"] == pytest.approx(res.metrics["comp_k1"])  # the same quantity, bin 1%


def test_example_plugin_module_end_to_end(tmp_path, tiny_arch, small_demo_dir, capsys, monkeypatch):
    """tests/plugins/rationale_gap.py, the README's example, named in UNIREX_PLUGINS: loaded as the CLI and the
    app load plugins, its metric is computed in training's evaluations, logged with the run, and shown by
    ``show`` and the comparison."""
    import sys

    from cli import main
    from unirex.engine import resolve_run_config, run
    from unirex.registry import load_plugins
    from workbench import RunFilter, Workbench

    name = "tests.plugins.rationale_gap"
    monkeypatch.setenv("UNIREX_PLUGINS", name)
    monkeypatch.delitem(sys.modules, name, raising=False)  # an earlier import registered (and dropped) it once
    assert load_plugins() == (name,)
    try:
        assert get_metric("rationale_gap") is sys.modules[name].SPEC
        ws = tmp_path / "ws"
        res = run(resolve_run_config([f"arch={tiny_arch}", f"data_dir={small_demo_dir}", "data.max_length=64",
                                      "setup.train_batch_size=8", "setup.eval_batch_size=16", f"workspace={ws}",
                                      "debug=True", "method=slm_plaus_linear", "training.eval_splits='test'"]))
        assert res.status == "completed"
        wb = Workbench(ws)
        wb.sync()
        final = wb.run(res.run_id).final["test"]
        assert final["rationale_gap"] == pytest.approx(final["comp_aopc"] - final["suff_aopc"], abs=1e-6)
        # a debug run (seconds, not minutes): comparisons leave debug runs out unless asked (issue 23)
        cmp = wb.compare(RunFilter(status="completed"), split="test", by=("method",), include_debug=True)
        assert "rationale_gap" in cmp.metrics
        assert main(["show", res.run_id, "--workspace", str(ws)]) == 0
        out = capsys.readouterr().out
        assert "rationale_gap" in out[out.index("final evaluation"):].splitlines()[1]
    finally:
        unregister_metric("rationale_gap")
