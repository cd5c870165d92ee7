"""Which runs count in a comparison: a run's kind and debug mark, one evaluation per trained model (an Evaluate
run of a checkpoint stands for it, never adds a run), seeds counted per model, debug runs left out unless asked,
free-form tags (launch, edit, filter) and comparing runs picked one by one."""

from __future__ import annotations

import json

import duckdb
import pytest

from cli import main
from store import db, get_run
from unirex.config import resolve_config
from unirex.errors import UnirexError
from unirex.runs import RunDir, debug_of, parse_tags
from workbench import RunFilter, Workbench

METRICS = ("acc", "macro_f1", "comp_aopc", "suff_aopc", "plaus_auprc")


def _run(ws, method="task_lm", seed=0, acc=0.5, mode="train", parent=None, debug=None, tags=None, config=None,
         created=None, dataset="demo", split="test"):
    meta = {"method": method, "dataset": dataset, "arch": "default", "seed": seed, "mode": mode, "parent_run": parent}
    if debug is not None:
        meta["debug"] = debug
    if tags is not None:
        meta["tags"] = list(tags)
    rd = RunDir.create(ws / "runs", config or {"seed": seed}, meta)
    if created is not None:
        rd.update_meta(created_at=created)
    rd.log_metrics({k: acc for k in METRICS}, split)
    rd.set_status("completed")
    return rd


def _table(wb, **kw):
    cmp = wb.compare(RunFilter(status="completed", **{k: v for k, v in kw.items() if k != "include_debug"}),
                     by=("method",), convention="eraser", include_debug=kw.get("include_debug", False))
    return {r["method"]: r for r in cmp.table.iter_rows(named=True)}, cmp


def test_an_evaluation_of_a_checkpoint_stands_for_its_model_and_adds_no_run(tmp_path):
    x = _run(tmp_path, seed=3, acc=0.90, created=100.0)
    other = _run(tmp_path, seed=4, acc=0.70, created=101.0)
    _run(tmp_path, seed=0, acc=0.10, mode="evaluate", parent=x.run_id, created=200.0)  # older evaluation of X
    latest = _run(tmp_path, seed=0, acc=0.917, mode="evaluate", parent=x.run_id, created=300.0)
    _run(tmp_path, seed=0, acc=0.55, mode="evaluate", parent=x.run_id, created=400.0, split="dev")  # no test numbers
    wb = Workbench(tmp_path)
    wb.sync()
    t, cmp = _table(wb)
    row = t["task_lm"]
    assert row["n"] == 2 and row["seeds"] == [3, 4]  # the two trained models, their own seeds (not 0)
    assert row["acc_mean"] == pytest.approx((0.917 + 0.70) / 2)  # X's latest evaluation replaced its numbers
    assert set(cmp.runs["run_id"].to_list()) == {latest.run_id, other.run_id}
    assert set(cmp.runs["model_run"].to_list()) == {x.run_id, other.run_id}
    # picking X (or any of its evaluations) picks the model, answered by its latest evaluation
    for pick in (x.run_id, latest.run_id):
        t, _ = _table(wb, run_ids=(pick,))
        assert t["task_lm"]["n"] == 1 and t["task_lm"]["acc_mean"] == pytest.approx(0.917)
    # the bug this fixes: a re-evaluated checkpoint read "runs 2, seeds 0, 0.917 ± 0.000"
    assert main(["--workspace", str(tmp_path), "compare", "--by", "method", "--json"]) == 0


def test_an_evaluation_on_another_dataset_is_its_own_entry(tmp_path):
    x = _run(tmp_path, acc=0.9, created=1.0)
    _run(tmp_path, acc=0.4, mode="evaluate", parent=x.run_id, dataset="other", created=2.0)
    wb = Workbench(tmp_path)
    wb.sync()
    cmp = wb.compare(RunFilter(status="completed"), by=("method", "dataset"), convention="eraser")
    rows = {r["dataset"]: r for r in cmp.table.iter_rows(named=True)}
    assert rows["demo"]["acc_mean"] == pytest.approx(0.9) and rows["other"]["acc_mean"] == pytest.approx(0.4)
    assert rows["demo"]["n"] == rows["other"]["n"] == 1


def test_debug_runs_are_left_out_unless_asked(tmp_path, capsys):
    _run(tmp_path, seed=0, acc=0.8)
    _run(tmp_path, seed=1, acc=0.6)
    dbg = _run(tmp_path, seed=2, acc=0.0, debug=True)
    old_debug = _run(tmp_path, seed=5, acc=0.1, config={"seed": 5, "debug": True})  # recorded before meta's 'debug'
    wb = Workbench(tmp_path)
    wb.sync()
    assert get_run(tmp_path, dbg.run_id).debug and get_run(tmp_path, old_debug.run_id).debug
    t, _ = _table(wb)
    assert t["task_lm"]["n"] == 2 and t["task_lm"]["acc_mean"] == pytest.approx(0.7)
    t, _ = _table(wb, include_debug=True)
    assert t["task_lm"]["n"] == 4 and t["task_lm"]["seeds"] == [0, 1, 2, 5]
    w = ["--workspace", str(tmp_path)]
    assert main([*w, "compare", "--by", "method", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["n"] == 2
    assert main([*w, "compare", "--by", "method", "--json", "--include-debug"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["n"] == 4
    assert main([*w, "runs"]) == 0
    out = capsys.readouterr().out
    header, *lines = out.splitlines()[1:]
    assert header.split()[2:4] == ["mode", "debug"]
    assert {ln.split()[2:4] == ["train", "yes"] for ln in lines if ln.startswith(dbg.run_id)} == {True}
    assert [r.debug for r in wb.runs(RunFilter(run_ids=(dbg.run_id,)))] == [True]


def test_an_evaluation_of_a_debug_model_is_debug_too(tmp_path):
    """For a run recorded before meta's 'debug': its parent's config says so (the engine records it since)."""
    x = _run(tmp_path, acc=0.3, config={"seed": 0, "debug": True}, created=1.0)
    e = _run(tmp_path, acc=0.4, mode="evaluate", parent=x.run_id, created=2.0)
    assert debug_of(e) is True
    wb = Workbench(tmp_path)
    wb.sync()
    assert wb.compare(RunFilter(status="completed"), by=("method",)).table.height == 0
    t, _ = _table(wb, include_debug=True)
    assert t["task_lm"]["n"] == 1 and t["task_lm"]["acc_mean"] == pytest.approx(0.4)


def test_tags_round_trip_filter_and_edit(tmp_path, capsys):
    a = _run(tmp_path, seed=0, acc=0.8, tags=["paper", "v1"])
    b = _run(tmp_path, seed=1, acc=0.6, tags=["v1"])
    c = _run(tmp_path, seed=2, acc=0.1)  # a run folder from before tags: no field, reads none
    wb = Workbench(tmp_path)
    wb.sync()
    assert get_run(tmp_path, a.run_id).tags == ("paper", "v1") and get_run(tmp_path, c.run_id).tags == ()
    assert [r.run_id for r in wb.runs(RunFilter(tags=("paper",)))] == [a.run_id]
    assert {r.run_id for r in wb.runs(RunFilter(tags=("v1",)))} == {a.run_id, b.run_id}
    assert wb.runs(RunFilter(tags=("paper", "nope"))) == []
    t, _ = _table(wb, tags=("v1",))
    assert t["task_lm"]["n"] == 2
    assert wb.set_tags(c.run_id, " v1, best ,v1") == ("v1", "best")  # edited: stored, indexed
    assert json.loads(c.meta_path.read_text())["tags"] == ["v1", "best"]
    t, _ = _table(wb, tags=("v1",))
    assert t["task_lm"]["n"] == 3
    assert wb.compare_choices()["tags"] == ["best", "paper", "v1"]
    w = ["--workspace", str(tmp_path)]
    assert main([*w, "runs", "--set-tags", b.run_id, "keep"]) == 0 and "keep" in capsys.readouterr().out
    assert main([*w, "runs", "--tags", "keep", "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == [b.run_id]
    assert main([*w, "compare", "--tags", "best", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["n"] == 1
    assert main([*w, "runs", "--set-tags", a.run_id, ""]) == 0  # empty clears them
    assert RunDir(a.path).tags() == ()


@pytest.mark.parametrize("bad", ["has space", "-lead", "x" * 33, "semi;colon", "tab\there", "new\nline"])
def test_a_bad_tag_is_refused_in_one_line(tmp_path, capsys, bad):
    with pytest.raises(UnirexError) as e:
        parse_tags(f"ok,{bad}")
    assert "\n" not in str(e.value) and "tag" in str(e.value)
    with pytest.raises(UnirexError):
        resolve_config([f"tags=ok,{bad}"])
    rd = _run(tmp_path)
    assert main(["--workspace", str(tmp_path), "runs", "--set-tags", rd.run_id, f"ok,{bad}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert RunDir(rd.path).tags() == ()


def test_tags_at_launch_are_one_value_and_not_inherited_by_an_evaluation(tmp_path):
    from unirex.checkpoint import _RUN_KEYS
    from workbench import is_sweep

    assert resolve_config(["tags=a,b"]).tags == "a,b"
    assert not is_sweep(["tags=a,b"])
    assert "tags" in _RUN_KEYS


def test_compare_just_the_runs_picked(tmp_path, capsys):
    picked = [_run(tmp_path, seed=s, acc=0.1 * (s + 1)) for s in range(2)]
    _run(tmp_path, seed=7, acc=0.9)
    _run(tmp_path, method="slm_plaus_linear", seed=0, acc=0.9)
    wb = Workbench(tmp_path)
    wb.sync()
    t, _ = _table(wb, run_ids=tuple(r.run_id for r in picked))
    assert set(t) == {"task_lm"} and t["task_lm"]["n"] == 2 and t["task_lm"]["seeds"] == [0, 1]
    ids = ",".join(r.run_id for r in picked)
    assert main(["--workspace", str(tmp_path), "compare", "--runs", ids, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["n"] == 2


def test_an_index_from_before_the_new_columns_is_migrated(tmp_path):
    rd = _run(tmp_path, tags=["t"])
    path = db.db_path(tmp_path)
    con = duckdb.connect(str(path))  # an index of schema 3: no debug, no tags
    con.execute("CREATE TABLE schema_info (version INTEGER); INSERT INTO schema_info VALUES (3);"
                "CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, status VARCHAR, signature VARCHAR);"
                "CREATE TABLE metrics (run_id VARCHAR, split VARCHAR, epoch INTEGER, step INTEGER, name VARCHAR,"
                " value DOUBLE, time DOUBLE);")
    con.close()
    wb = Workbench(tmp_path)
    wb.sync()
    assert get_run(tmp_path, rd.run_id).tags == ("t",)
    assert [r.tags for r in wb.runs()] == [("t",)]


def test_the_engine_records_kind_debug_and_tags(tmp_path, common):
    """A debug run's checkpoint evaluated without debug=True: the evaluation is marked debug too (its model
    is a pipeline check), its kind is 'evaluate', it names the trained run, and tags come from the launch."""
    from unirex.engine import resolve_run_config, run

    ws = [f"workspace={tmp_path}"]
    train = run(resolve_run_config([*common, *ws, "model=lm", "debug=True", "save_checkpoint=True", "tags=smoke"]))
    assert train.status == "completed"
    meta = RunDir(train.run_dir).meta()
    assert (meta["mode"], meta["debug"], meta["tags"]) == ("train", True, ["smoke"])
    ev = run(resolve_run_config([*common, *ws, "training=evaluate", f"training.ckpt_path={train.run_id}",
                                 "training.eval_splits=test", "tags=again"], workspace=str(tmp_path)))
    meta = RunDir(ev.run_dir).meta()
    assert (meta["mode"], meta["debug"], meta["tags"], meta["parent_run"]) == ("evaluate", True, ["again"], train.run_id)
    wb = Workbench(tmp_path)
    wb.sync()
    assert wb.compare(RunFilter(status="completed")).table.height == 0
    cmp = wb.compare(RunFilter(status="completed"), include_debug=True)
    assert cmp.table["n"].to_list() == [1] and cmp.runs["run_id"].unique().to_list() == [ev.run_id]


def test_a_sweep_keeps_the_tags_one_value(tmp_path, common):
    wb = Workbench(tmp_path)
    planned = wb.plan_here([*common, "seed=0,1", "tags=a,b"], sweep=True)
    assert [p.config.tags for p in planned] == ["a,b", "a,b"] and [p.config.seed for p in planned] == [0, 1]
    res = wb.check([*common, "seed=0,1", "tags=a,b"], sweep=True)
    assert res.ok and res.runs == 2


def test_a_tag_of_the_training_run_selects_the_model_its_evaluation_answers_for(tmp_path):
    x = _run(tmp_path, seed=1, acc=0.2, tags=["paper"], created=1.0)
    _run(tmp_path, seed=0, acc=0.6, mode="evaluate", parent=x.run_id, created=2.0)
    _run(tmp_path, seed=2, acc=0.9, created=3.0)  # untagged
    wb = Workbench(tmp_path)
    wb.sync()
    t, _ = _table(wb, tags=("paper",))
    assert t["task_lm"]["n"] == 1 and t["task_lm"]["seeds"] == [1] and t["task_lm"]["acc_mean"] == pytest.approx(0.6)


def test_the_tabs_filter_pick_and_edit(tmp_path):
    """The Runs tab's tag filter, tag editing and picks; the Compare tab's debug box, tag filter and picked runs."""
    from ui.compare import dashboard
    from ui.runs import RunsHandlers, add_pick, table_headers

    a = _run(tmp_path, seed=0, acc=0.8, tags=["v1"], created=1.0)
    b = _run(tmp_path, seed=1, acc=0.4, created=2.0)
    d = _run(tmp_path, seed=2, acc=0.0, debug=True, created=3.0)
    wb = Workbench(tmp_path)
    h = RunsHandlers(wb)
    rows, _, _, _, _, _, tag_choices, pick_choices = h.on_refresh("any", "any", "any", "any", "test", None, [], [])
    col = {name: i for i, name in enumerate(table_headers())}
    by_id = {r[0]: r for r in rows}
    assert by_id[d.run_id][col["debug"]] == "debug" and by_id[a.run_id][col["tags"]] == "v1"
    assert by_id[b.run_id][col["mode"]] == "train" and tag_choices["choices"] == ["v1"]
    assert set(pick_choices["choices"]) == {a.run_id, b.run_id, d.run_id}
    rows = h.on_refresh("any", "any", "any", "any", "test", None, ["v1"], [])[0]
    assert [r[0] for r in rows] == [a.run_id]
    assert "`best`" in h.on_tags(b.run_id, "best")
    assert h.on_open(b.run_id, "test")[-2] == "best"  # the tags box, before the resume button
    with pytest.raises(Exception, match="tag &#x27;no way&#x27; refused"):  # the app's errors are HTML-escaped
        h.on_tags(b.run_id, "no way")
    picks = add_pick(add_pick([], b.run_id), b.run_id)
    assert picks == [b.run_id]
    cmp, _, rows, note = dashboard(wb, by=("method",))
    assert rows[0][1] == 2 and "debug runs left out" in note
    cmp, _, rows, _ = dashboard(wb, by=("method",), include_debug=True)
    assert rows[0][1] == 3
    cmp, _, rows, note = dashboard(wb, by=("method",), run_ids=picks)
    assert rows[0][1] == 1 and cmp.runs["run_id"].unique().to_list() == [b.run_id] and "1 picked" in note
    cmp, _, rows, _ = dashboard(wb, by=("method",), tags=["best"])
    assert cmp.runs["run_id"].unique().to_list() == [b.run_id]


def test_tag_edits_at_the_same_time_all_land(tmp_path, capsys):
    """Eight threads each add their own tag to one run (the app's request threads, a CLI beside it): every
    tag lands in meta.json and in the index; the other fields of meta.json are kept."""
    from concurrent.futures import ThreadPoolExecutor

    rd = _run(tmp_path, tags=["base"])
    wb = Workbench(tmp_path)
    wb.sync()
    before = {k: v for k, v in json.loads(rd.meta_path.read_text()).items() if k != "tags"}
    mine = [f"t{i}" for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda t: wb.add_tags(rd.run_id, t), mine))
    meta = json.loads(rd.meta_path.read_text())
    assert meta["tags"][0] == "base" and sorted(meta["tags"][1:]) == mine
    assert {k: v for k, v in meta.items() if k != "tags"} == before
    assert set(get_run(tmp_path, rd.run_id).tags) == {"base", *mine}  # the index holds them all
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda t: wb.remove_tags(rd.run_id, t), mine[:4]))
    left = tuple(t for t in meta["tags"] if t not in mine[:4])  # in the order they landed
    assert RunDir(rd.path).tags() == left and set(left) == {"base", *mine[4:]}
    # too many tags in the end: one line, nothing written
    with pytest.raises(UnirexError, match="at most 16"):
        wb.add_tags(rd.run_id, [f"x{i}" for i in range(12)])
    assert RunDir(rd.path).tags() == left
    w = ["--workspace", str(tmp_path), "runs"]
    assert main([*w, "--add-tags", rd.run_id, "cli,base"]) == 0
    assert capsys.readouterr().out.strip() == f"{rd.run_id}: tags {','.join(left)},cli"
    assert main([*w, "--remove-tags", rd.run_id, "t4,t5,t6,t7,nope"]) == 0
    assert capsys.readouterr().out.strip() == f"{rd.run_id}: tags base,cli"
    assert main([*w, "--add-tags", "R-none", "x"]) == 2 and "no run" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "R-none").exists()
