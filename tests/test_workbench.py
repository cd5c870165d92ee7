"""The workbench API on a tiny BERT: the run queue and its worker (cancel, failure, restart), progress,
run queries, explaining typed text, comparing methods, and the CLI commands that front it."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cli import main
from store import RunFilter
from unirex.config import to_dict
from unirex.engine import resolve_run_config, run
from unirex.errors import UnirexError
from unirex.runs import RunDir
from workbench import Workbench

ROOT = Path(__file__).resolve().parents[1]


#: the conftest's ``trained`` run: a finished one-epoch SLM (plaus) run with a checkpoint
TRAINED_OVERRIDES = ["method=slm_plaus_linear", "training.epochs=1", "save_checkpoint=True"]
TRAINED_COMMAND = "python -m unirex method=slm_plaus_linear"


def test_two_jobs_one_cancelled_mid_training_the_other_completes(tmp_path, common, wait_until):
    wb = Workbench(tmp_path, start_worker=True)
    try:
        long_job, short_job = wb.submit(common + ["training.epochs=50", "seed=0"]) + wb.submit(common + ["debug=True", "seed=1"])
        assert long_job.status == short_job.status == "waiting" and long_job.run_id != short_job.run_id
        rd = RunDir(tmp_path / "runs" / long_job.run_id)
        wait_until(lambda: rd.events_path.is_file() and any(e["kind"] == "step" for e in rd.events()),
                   what="a training step")
        assert wb.progress(long_job.run_id).phase in ("training", "evaluating")
        assert [j.job_id for j in wb.queue()] == [long_job.job_id, short_job.job_id]
        # cancel through the CLI (another front, the cross-process marker file)
        assert main(["--workspace", str(tmp_path), "cancel", long_job.job_id]) == 0
        wait_until(lambda: wb.job(short_job.job_id).status in ("completed", "failed"), what="the second job")
        assert wb.job(long_job.job_id).status == "cancelled"
        assert rd.status()["status"] == "cancelled"
        steps = [e for e in rd.events() if e["kind"] == "step"]
        assert steps and steps[-1]["step"] < steps[-1]["total_steps"]  # stopped mid-training
        assert wb.job(short_job.job_id).status == "completed", wb.job(short_job.job_id).error
        assert RunDir(tmp_path / "runs" / short_job.run_id).status()["status"] == "completed"
        assert wb.queue() == []
        statuses = {r.run_id: r.status for r in wb.runs()}  # both indexed by the worker as they ended
        assert statuses == {long_job.run_id: "cancelled", short_job.run_id: "completed"}
        meta = RunDir(tmp_path / "runs" / short_job.run_id).meta()
        assert meta["command"] == short_job.command and meta["command"].startswith("python -m unirex ")
        assert wb.progress(short_job.run_id).fraction == 1.0
    finally:
        wb.stop_worker()


def test_a_failing_job_is_marked_and_the_worker_goes_on(tmp_path, common, wait_until):
    wb = Workbench(tmp_path, start_worker=True)
    try:
        bad = wb.submit(common + ["data=no_such_dataset", "debug=True"])[0]
        good = wb.submit(common + ["debug=True"])[0]
        wait_until(lambda: wb.job(good.job_id).status in ("completed", "failed"), what="the good job")
        assert wb.job(bad.job_id).status == "failed"
        assert "no_such_dataset" in wb.job(bad.job_id).error
        assert wb.job(good.job_id).status == "completed"
    finally:
        wb.stop_worker()


def test_waiting_queue_survives_a_restart(tmp_path, common, wait_until):
    """A process queues a job and dies; the next process restores the queue and runs it. A job that was
    running in the dead process reads interrupted."""
    script = (f"from workbench import Workbench; wb = Workbench({str(tmp_path)!r}); "
              f"j = wb.submit({common + ['debug=True']!r})[0]; print(j.job_id)")
    job_id = subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.strip().splitlines()[-1]
    wb = Workbench(tmp_path)
    ghost = wb.jobs.add([wb.jobs.get(job_id).__class__(job_id="J-ghost", run_id="R-ghost", overrides=(), command="")])[0]
    wb.jobs.update(ghost.job_id, status="running", owner="localhost-nope:1")
    import socket

    wb.jobs.update(ghost.job_id, owner=f"{socket.gethostname()}:999999")  # a dead pid on this host
    assert [j.job_id for j in wb.queue()] == [job_id, "J-ghost"]
    wb.start_worker()
    try:
        assert wb.job("J-ghost").status == "interrupted"
        wait_until(lambda: wb.job(job_id).status in ("completed", "failed"), what="the restored job")
        assert wb.job(job_id).status == "completed"
    finally:
        wb.stop_worker()


def test_submit_checks_every_combination_before_queueing(tmp_path, common):
    wb = Workbench(tmp_path)
    with pytest.raises(UnirexError, match="comp_wieght"):
        wb.submit(common + ["model.comp_wieght=0.5"])
    with pytest.raises(UnirexError, match="sweep"):
        wb.submit(common + ["seed=0,1"])
    jobs = wb.submit(common + ["seed=0,1,2", "debug=True"], sweep=True)
    assert len(jobs) == 3 and len({j.sweep_id for j in jobs}) == 1 and all(j.sweep_id for j in jobs)
    assert [j.overrides[-2] for j in jobs] == ["seed=0", "seed=1", "seed=2"]
    assert wb.cancel(jobs[1].job_id).status == "cancelled"  # a waiting job leaves the queue
    assert [j.job_id for j in wb.queue()] == [jobs[0].job_id, jobs[2].job_id]
    with pytest.raises(UnirexError, match="already cancelled"):
        wb.cancel(jobs[1].job_id)


def test_engine_does_not_change_the_callers_config(trained, tmp_path):
    ws, res = trained
    cfg = resolve_run_config([f"workspace={ws}", "training=evaluate", f"training.ckpt_path={res.run_id}",
                              "training.eval_splits=dev", "arch=default"])
    before = copy.deepcopy(to_dict(cfg))
    ev = run(cfg)
    assert ev.status == "completed"
    assert to_dict(cfg) == before


def test_every_split_is_evaluated_once_per_set_of_weights(trained):
    _, res = trained
    events = RunDir(res.run_dir).events()
    computed = [(e["split"], e["epoch"]) for e in events if e["kind"] == "eval" and not e["reused"]]
    assert computed == [("dev", 0), ("test", None)]
    reused = [e["split"] for e in events if e["kind"] == "eval" and e["reused"]]
    assert reused == ["dev"]  # the final dev evaluation is the best epoch's, not run again
    final = RunDir(res.run_dir).final_metrics()
    epoch0 = {m["name"]: m["value"] for m in RunDir(res.run_dir).metrics() if m["split"] == "dev" and m["epoch"] == 0}
    assert final["dev"]["acc"] == epoch0["acc"] and final["dev"]["comp_aopc"] == epoch0["comp_aopc"]
    assert (res.run_dir / "outputs" / "eval_dev.parquet").is_file()


def test_run_detail_and_runs_table(trained):
    ws, res = trained
    wb = Workbench(ws)
    wb.sync()
    [row] = wb.runs(RunFilter(method="slm_plaus_linear", mode="train"))
    assert row.run_id == res.run_id and row.status == "completed" and row.metrics["acc"] == res.metrics["test_acc"]
    assert wb.runs(RunFilter(method="task_lm")) == []
    d = wb.run(res.run_id)
    assert d.final["test"]["plaus_auprc"] == pytest.approx(res.metrics["test_plaus_auprc"])
    assert d.checkpoint is not None and d.checkpoint.labels == ["NEG", "POS"]
    assert "model.explainer_type=self_lm" in d.overrides and d.path == res.run_dir
    assert d.curve("loss").height >= 1 and d.summary.command == "python -m unirex method=slm_plaus_linear"
    with pytest.raises(UnirexError, match="no run"):
        wb.run("R-nope")
    with pytest.raises(UnirexError, match="not a run id"):
        wb.run("../../etc")


def test_explain_typed_text_matches_the_evaluator(trained):
    """The one-text path gives the evaluator's numbers for the same input, with the learned extractor and
    with a post-hoc attribution on the task LM."""
    from unirex.data import SplitDataset
    from unirex.data.encode import encode_text
    from unirex.evaluate import evaluate

    ws, res = trained
    wb = Workbench(ws)
    text = "the plot was not good .\ni found it very boring but the cast was wonderful ."
    for extractor in ("own", "input-x-gradient"):
        ex = wb.explain(res.run_id, text, extractor=extractor, top_k=10)
        assert ex.words == text.split() and len(ex.word_scores) == len(ex.words)
        assert ex.labels == ["NEG", "POS"] and sum(ex.probs) == pytest.approx(1.0)
        assert ex.predicted == ex.labels[int(np.argmax(ex.probs))]
        ck = wb.checkpoints.get(res.run_id)
        row = encode_text(text, ck.tokenizer, ck.max_length)
        import polars as pl

        table = pl.DataFrame([{**row, "label": 0, "label_name": "NEG", "has_rationale": False, "rationale_words": [0] * len(ex.words),
                               "annotation_id": "t", "evidence_spans": []}])
        ds = SplitDataset(table, ck.tokenizer.pad_token_id, ck.labels)
        if extractor == "own":
            explain = ck.model.explain
        else:
            from unirex.models.extractors import AttributionExtractor

            attr = AttributionExtractor("input-x-gradient")
            explain = lambda b: attr.scores(b, ck.model.task_lm)  # noqa: E731
        r = evaluate(ck.model, ds, explain, bins=[10], hard_k=10, batch_size=1)
        assert ex.comprehensiveness == pytest.approx(r.metrics["comp_k10"], abs=1e-6)
        assert ex.sufficiency == pytest.approx(r.metrics["suff_k10"], abs=1e-6)
        assert ex.probs == pytest.approx(r.outputs.probs[0].tolist(), abs=1e-6)
        assert np.allclose(ex.word_scores, r.outputs.word_scores[0], atol=1e-5)
        assert ex.rationale == r.outputs.hard_words[0].tolist()
        assert 1 <= sum(ex.rationale) <= 3  # 10% of ~20 subwords
    assert wb.checkpoints.get(res.run_id) is wb.checkpoints.get(str(res.run_dir))  # one cached load


@pytest.mark.parametrize("kwargs,message", [
    ({"text": "   "}, "empty"),
    ({"text": "word " * 5000}, "at most"),
    ({"text": "good", "top_k": 0}, "top-k"),
    ({"text": "good", "extractor": "lime-v2"}, "unknown extractor"),
])
def test_explain_refuses_bad_input(trained, kwargs, message):
    ws, res = trained
    with pytest.raises(UnirexError, match=message):
        Workbench(ws).explain(res.run_id, **kwargs)


def test_explain_unknown_checkpoint(tmp_path):
    with pytest.raises(UnirexError, match="neither a checkpoint folder nor a run id"):
        Workbench(tmp_path).explain("R-nope", "good film")


def _fake_run(ws, method, seed, metrics, split="test"):
    rd = RunDir.create(ws / "runs", {"seed": seed}, {"method": method, "dataset": "demo", "arch": "default",
                                                       "seed": seed, "mode": "train"})
    rd.log_metrics(metrics, split)
    rd.set_status("completed")
    return rd


def test_compare_mean_std_over_seeds_and_nrg(tmp_path):
    from unirex.metrics.nrg import nrg

    rng = np.random.default_rng(0)
    values = {}
    for method in ("task_lm", "slm_plaus_linear"):
        for seed in range(3):
            m = {k: float(rng.uniform()) for k in ("acc", "macro_f1", "comp_aopc", "suff_aopc", "plaus_auprc",
                                                  "plaus_token_f1", "plaus_iou_f1", "task_ref", "plaus_ref_auprc",
                                                  "comp_aopc_unirex", "suff_aopc_unirex")}
            values[(method, seed)] = m
            _fake_run(tmp_path, method, seed, m)
    _fake_run(tmp_path, "task_lm", 9, {"acc": 1.0}, split="dev")  # another split: not in the test comparison
    wb = Workbench(tmp_path)
    wb.sync()
    cmp = wb.compare(RunFilter(status="completed"), split="test", by=("method",), convention="eraser")
    t = {r["method"]: r for r in cmp.table.iter_rows(named=True)}
    assert set(t) == {"task_lm", "slm_plaus_linear"}
    for method in t:
        accs = [values[(method, s)]["acc"] for s in range(3)]
        assert t[method]["acc_mean"] == pytest.approx(np.mean(accs))
        assert t[method]["acc_std"] == pytest.approx(np.std(accs, ddof=1))
        assert t[method]["n"] == 3 and t[method]["seeds"] == [0, 1, 2]
    means = {m: {k: np.mean([values[(m, s)][k] for s in range(3)]) for k in values[(m, 0)]} for m in t}
    expected = nrg(means, convention="eraser")
    for m in t:
        assert t[m]["nrg"] == pytest.approx(expected.nrg[m])
        assert t[m]["nrg_plausibility"] == pytest.approx(expected.by_desideratum[m]["plausibility"])
    paper = wb.compare(RunFilter(status="completed"), by=("method",))  # the default: the paper's composition
    assert paper.convention == "paper" and paper.nrg_metrics["plausibility"] == ["plaus_ref_auprc"]
    expected = nrg(means, convention="paper")
    for r in paper.table.iter_rows(named=True):
        assert r["nrg"] == pytest.approx(expected.nrg[r["method"]])
    only = wb.compare(RunFilter(status="completed", seeds=(0, 1)), by=("method",))
    assert set(only.table["n"].to_list()) == {2}


def test_dashboard_cache_rereads_only_changed_runs_and_returns_the_same_frame(tmp_path):
    """After runs land, change status or vanish, the dashboard's cached rows (re-read incrementally) are the
    rows one full query returns, and the comparison built from them is the one built from a cold read."""
    import shutil

    from store import final_metric_rows, final_metric_updates, run_lineage
    from workbench import compare as compare_mod

    rng = np.random.default_rng(1)
    keys = ("acc", "macro_f1", "comp_aopc", "suff_aopc", "plaus_auprc", "plaus_token_f1", "plaus_iou_f1")
    rds = [_fake_run(tmp_path, method, seed, {k: float(rng.uniform()) for k in keys})
           for method in ("task_lm", "slm_plaus_linear", "fresh") for seed in range(2)]
    wb = Workbench(tmp_path)
    wb.sync()
    flt, names = RunFilter(status="completed"), compare_mod.metric_names("eraser")

    def rows_equal_a_full_query():
        """The cached rows are those of the runs that count, computed from one full query of the store."""
        order = ["run_id", "name", "value"]
        picked = pl.col("method").is_in(["fresh"]) & pl.col("seed").is_in([0])
        for which, want, cond in ((flt, names, pl.lit(True)),
                                  (RunFilter(status="completed", methods=("fresh",), seeds=(0,)), ("acc",), picked)):
            got = compare_mod.runs_metrics(tmp_path, which, "test", want).sort(order)
            full = compare_mod.counted_runs(final_metric_rows(tmp_path, flt, "test", want), run_lineage(tmp_path, flt))[0]
            assert got.equals(full.filter(cond).sort(order))
            compare_mod._CACHE.clear()  # a cold read (the first of a process) gives the same frame
            assert got.equals(compare_mod.runs_metrics(tmp_path, which, "test", want).sort(order))

    rows_equal_a_full_query()
    first = final_metric_updates(tmp_path, flt, "test", names)
    assert first.full and set(first.versions) == {rd.run_id for rd in rds}
    rds[0].log_metrics({"acc": 0.125}, "test")  # re-indexed with a new value
    rds[1].set_status("failed")  # no longer selected
    shutil.rmtree(rds[2].path)  # gone
    new = _fake_run(tmp_path, "fresh", 2, {k: 0.5 for k in keys})  # landed
    wb.sync()
    upd = final_metric_updates(tmp_path, flt, "test", names, known=first.versions)
    assert not upd.full
    assert upd.drop == {rds[0].run_id, rds[1].run_id, rds[2].run_id, new.run_id}
    assert set(upd.rows["run_id"].to_list()) == {rds[0].run_id, new.run_id}  # only what changed is read
    rows_equal_a_full_query()
    assert 0.125 in compare_mod.runs_metrics(tmp_path, flt, "test", names)["value"].to_list()
    # an evaluation of a checkpoint lands: it now stands for its model (one evaluation per trained model)
    ev = RunDir.create(tmp_path / "runs", {"seed": 0}, {"method": "fresh", "dataset": "demo", "arch": "default",
                                                         "seed": 0, "mode": "evaluate", "parent_run": rds[4].run_id})
    ev.log_metrics({k: 0.25 for k in keys}, "test")
    ev.set_status("completed")
    wb.sync()
    rows_equal_a_full_query()
    model = compare_mod.runs_metrics(tmp_path, flt, "test", names).filter(pl.col("model_run") == rds[4].run_id)
    assert set(model["run_id"].to_list()) == {ev.run_id} and set(model["value"].to_list()) == {0.25}
    for by in (("method",), ("method", "dataset", "arch")):
        cached = wb.compare(flt, by=by, convention="eraser").table.sort(list(by))
        compare_mod._CACHE.clear()
        assert cached.equals(wb.compare(flt, by=by, convention="eraser").table.sort(list(by)))


def test_cli_runs_show_compare_explain_queue(trained, capsys, tmp_path):
    ws, res = trained
    w = ["--workspace", str(ws)]
    assert main([*w, "runs"]) == 0
    out = capsys.readouterr().out
    assert res.run_id in out and "slm_plaus_linear" in out
    assert main([*w, "runs", "--method", "task_lm"]) == 0 and "no runs match" in capsys.readouterr().out
    assert main([*w, "runs", "--json"]) == 0
    assert res.run_id in [r["run_id"] for r in json.loads(capsys.readouterr().out)]
    assert main([*w, "show", res.run_id]) == 0
    out = capsys.readouterr().out
    assert str(res.run_dir) in out and "reproduce:  python -m unirex method=slm_plaus_linear" in out and "dev per epoch" in out
    assert main([*w, "compare", "--by", "method", "--seeds", "0"]) == 0
    out = capsys.readouterr().out
    assert "slm_plaus_linear" in out and "NRG" in out
    assert " ± " in out and "over examples only" in out  # the run's saved outputs give intervals over examples
    assert main([*w, "compare", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    for m in ("acc", "macro_f1", "comp_aopc", "plaus_auprc", "plaus_iou_f1", "plaus_ref_auprc"):
        assert row[f"{m}_ci_low"] <= row[f"{m}_mean"] <= row[f"{m}_ci_high"], m
    csv = tmp_path / "cmp.csv"
    assert main([*w, "compare", "--csv", str(csv)]) == 0 and csv.read_text().startswith("method,dataset,arch,n,seeds,nrg")
    assert main([*w, "explain", "--run", res.run_id, "--text", "a truly wonderful film", "--top-k", "30"]) == 0
    out = capsys.readouterr().out
    assert "prediction:" in out and "[" in out and "\x1b[" not in out  # not a TTY: brackets, no colour
    assert main([*w, "explain", "--run", res.run_id, "--text", "good", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["words"] == ["good"]
    assert main([*w, "queue"]) == 0 and "empty" in capsys.readouterr().out
    assert main([*w, "cancel", "J-nope"]) == 2 and "no job 'J-nope'" in capsys.readouterr().err


def test_top_level_help_shows_a_runnable_example(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "debug=True" in out and "python -m unirex methods" in out and "python -m unirex keys" in out
    assert main(["keys", "model.comp"]) == 0
    out = capsys.readouterr().out
    assert "model.comp_wt" in out and "model.comp_margin" in out and "setup." not in out


def test_methods_into_a_closed_pipe_is_quiet():
    proc = subprocess.run(f"{sys.executable} -m unirex methods -v | head -1", shell=True, cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.stdout.startswith("task_lm") and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_one_sweep_decision_for_every_front(tmp_path):
    """`is this a sweep` is decided by workbench.sweeps alone: the CLI's -m check, the Train tab's seeds and
    extra overrides and Workbench.submit all agree on which values are comma lists."""
    from ui.train import overrides_of
    from workbench import comma_lists, is_sweep, quote_one_value_keys

    assert is_sweep(["seed=0,1"]) and comma_lists(["data=demo", "seed=0,1"]) == ["seed=0,1"]
    for one in ("training.eval_splits=train,dev,test", "model.x=[1.0, 5.0]", "model.y='a,b'", "debug=True"):
        assert not is_sweep([one]), one
    assert quote_one_value_keys(["training.eval_splits=train,dev", "seed=0,1"]) == [
        "training.eval_splits='train,dev'", "seed=0,1"]
    wb = Workbench(tmp_path)
    check = wb.check(["data=demo", "seed=0,1"])
    assert not check.ok and "comma list" in check.message
    assert main(["--workspace", str(tmp_path), "data=demo", "seed=0,1"]) == 2
    _, sweep = overrides_of(wb, "task_lm", [], "demo", "default", "0", False, False, "training.eval_splits=dev,test")
    assert not sweep
    _, sweep = overrides_of(wb, "task_lm", [], "demo", "default", "0 1", False, False, "")
    assert sweep
    _, sweep = overrides_of(wb, "task_lm", [], "demo", "default", "0", False, False, "model.comp_wt=0.1,0.5")
    assert sweep


def test_the_core_never_prints_nor_parses_arguments():
    """The CLI owns argparse and the terminal: the core (unirex/) reports through return values, logging and
    progress callbacks (a print in a model card's code example is text, not a call)."""
    import ast

    for path in sorted((ROOT / "unirex").rglob("*.py")):
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text())
        calls = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                 and n.func.id == "print"]
        assert not calls, f"{path.relative_to(ROOT)}:{calls[0]} prints"
        imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "argparse" not in imports, f"{path.relative_to(ROOT)} imports argparse"


def test_plan_here_resolves_every_run_before_any_starts(tmp_path, common):
    """The CLI's foreground path: Workbench.plan_here resolves each combination (an error in any one comes
    before compute) and records the command line each run reproduces with; no queue folder is made."""
    from workbench import PlannedRun

    wb = Workbench(tmp_path)
    planned = wb.plan_here([*common, "debug=True", "seed=0,1"], sweep=True)
    assert [p.overrides[-1] for p in planned] == ["seed=0", "seed=1"] and all(isinstance(p, PlannedRun) for p in planned)
    assert [p.config.seed for p in planned] == [0, 1] and str(planned[0].config.workspace) == str(tmp_path)
    assert planned[1].command.startswith("python -m unirex ") and planned[1].command.endswith("seed=1")
    with pytest.raises(UnirexError, match="unknown config key"):
        wb.plan_here([*common, "model.comp_wieght=0.5,1.0"], sweep=True)
    assert not (tmp_path / "queue").exists() and not (tmp_path / "runs").exists()
