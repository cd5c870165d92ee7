"""Run directories and the DuckDB store: idempotent ingest, rebuild, interrupted runs, concurrent writers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from store import datasets_table, db, get_run, index_counts, indexed_runs, run_metrics
from unirex.runs import RunDir, list_runs


def _make_run(ws, seed=0, status="completed"):
    rd = RunDir.create(ws / "runs", {"seed": seed, "model": {"comp_wt": 0.5}},
                       {"method": "aa_sum_comp_suff", "dataset": "demo", "arch": "default", "seed": seed, "mode": "train"})
    rd.log_metrics({"loss": 1.0, "acc": 0.5}, split="train", epoch=0, step=10)
    rd.log_metrics({"acc": 0.75, "comp_aopc": 0.2}, split="dev", epoch=0)
    if status != "running":
        rd.set_status(status)
    return rd


def test_ingest_is_idempotent_and_queryable(tmp_path):
    runs = [_make_run(tmp_path, seed=s) for s in range(3)]
    assert db.ingest_all(tmp_path) == 3
    assert db.ingest_all(tmp_path) == 3  # again: nothing duplicated
    counts = index_counts(tmp_path)
    assert (counts.runs, counts.metrics) == (3, 12)
    assert [r.run_id for r in indexed_runs(tmp_path)] == sorted(r.run_id for r in runs)
    for r in runs:
        m = run_metrics(tmp_path, r.run_id)
        assert m.filter((m["split"] == "dev") & (m["name"] == "acc"))["value"].to_list() == [0.75]
        assert get_run(tmp_path, r.run_id).config["model"]["comp_wt"] == 0.5


def test_rebuild_recreates_database_from_run_dirs(tmp_path):
    _make_run(tmp_path)
    db.ingest_all(tmp_path)
    db.db_path(tmp_path).write_bytes(b"this is not a database")  # damaged or deleted: rebuild recovers
    assert db.rebuild(tmp_path) == 1
    assert [r.status for r in indexed_runs(tmp_path)] == ["completed"]
    assert not list(tmp_path.glob(".rebuild-*"))


def test_killed_process_reads_interrupted(tmp_path):
    script = textwrap.dedent(f"""
        import time
        from unirex.runs import RunDir
        rd = RunDir.create({str(tmp_path / 'runs')!r}, {{}}, {{"method": "lm"}})
        print(rd.run_id, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    rd = RunDir(tmp_path / "runs" / run_id)
    assert rd.effective_status() == "running"
    proc.kill()
    proc.wait()
    assert rd.status()["status"] == "running"  # what the dead process left behind
    assert rd.effective_status() == "interrupted"
    db.ingest_all(tmp_path)
    assert [r.status for r in indexed_runs(tmp_path)] == ["interrupted"]


def test_two_processes_writing_and_ingesting_lose_nothing(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from unirex.runs import RunDir
        from store import datasets_table, db, get_run, index_counts, indexed_runs, run_metrics
        ws = Path({str(tmp_path)!r})
        for i in range(8):
            rd = RunDir.create(ws / "runs", {{"i": i}}, {{"method": "lm", "seed": i}})
            rd.log_metrics({{"acc": i / 10}}, split="dev", epoch=0)
            rd.set_status("completed")
            db.ingest_run(ws, rd)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert len(list_runs(tmp_path / "runs")) == 16
    counts = index_counts(tmp_path)
    assert (counts.runs, counts.metrics) == (16, 16)


def test_metrics_log_survives_a_torn_last_line(tmp_path):
    rd = _make_run(tmp_path)
    with open(rd.path / "metrics.jsonl", "a") as f:
        f.write('{"time": 1, "split": "dev", "na')  # a crash mid-write
    assert len(rd.metrics()) == 4
    assert json.loads((rd.path / "status.json").read_text())["status"] == "completed"


def test_open_unknown_run_is_a_clear_error(tmp_path):
    from unirex.errors import UnirexError

    with pytest.raises(UnirexError, match="no run 'R-nope'"):
        RunDir.open(tmp_path / "runs", "R-nope")


def test_stale_heartbeat_reads_interrupted(tmp_path):
    rd = _make_run(tmp_path, status="running")
    s = rd.status()
    s["host"] = "another-host"
    (rd.path / "status.json").write_text(json.dumps(s))
    assert rd.effective_status() == "running"
    assert rd.effective_status(now=time.time() + 3600) == "interrupted"


def test_built_datasets_are_indexed(tmp_path, small_demo_dir):
    import shutil

    from unirex.data import build_split

    src = small_demo_dir / "demo"  # the ERASER files only, not the caches other tests built beside them

    def caches(folder, names):
        return [n for n in names if Path(folder) == src and (src / n).is_dir() and n != "docs"]

    shutil.copytree(src, tmp_path / "data" / "demo", ignore=caches)
    build_split(tmp_path / "data", "demo", "dev", max_length=64)
    db.ingest_all(tmp_path)
    rows = datasets_table(tmp_path).select("dataset", "arch", "max_length", "tag", "count")
    assert rows.rows() == [("demo", "default", 64, "dev", 32)]
    assert db.rebuild(tmp_path) == 0
    assert index_counts(tmp_path).datasets == 1
    assert (tmp_path / "data" / "demo" / "dev.jsonl").exists() is False and (tmp_path / "data" / "demo" / "val.jsonl").exists()


def test_get_run_returns_a_typed_run_and_retired_tables_are_gone(tmp_path):
    """As MLflow's store: get_run gives a Run entity (status a RunStatus, config parsed), not a row; the
    status strings in the files and the database stay the plain strings they were."""
    from store import Run, get_run, table_names
    from unirex.runs import RunStatus

    rd = _make_run(tmp_path, seed=3, status="failed")
    assert db.ingest_run(tmp_path, rd) == "failed"
    run = get_run(tmp_path, rd.run_id)
    assert isinstance(run, Run) and run.status is RunStatus.FAILED and run.status == "failed"
    assert run.seed == 3 and run.run_dir == str(rd.path) and isinstance(run.config, dict)
    assert run.launcher == "local" and run.signature == db.run_signature(rd)
    assert get_run(tmp_path, "R-none") is None
    assert [r.status for r in indexed_runs(tmp_path)] == ["failed"]
    assert json.loads(rd.status_path.read_text())["status"] == "failed"
    tables = table_names(tmp_path)
    assert {"runs", "metrics", "datasets"} <= tables and not tables & {"checkpoints", "outputs"}


def test_interrupted_is_final_for_runs_and_jobs_alike(tmp_path):
    from unirex.runs import TERMINAL, RunStatus
    from workbench.records import FINAL_JOB_STATES, JOB_STATES

    assert set(FINAL_JOB_STATES) == set(TERMINAL) and "interrupted" in FINAL_JOB_STATES
    assert RunStatus.INTERRUPTED.final and not RunStatus.RUNNING.final and not RunStatus.WAITING.final
    assert set(JOB_STATES) == set(TERMINAL) | {"waiting", "running"}
    rd = _make_run(tmp_path, status="running")
    rd.set_status(RunStatus.INTERRUPTED, error="lost")
    s = rd.status()
    assert s["status"] == "interrupted" and s["ended_at"] is not None  # a final state stamps its end


def test_one_final_metrics_shape(tmp_path):
    from unirex.runs import flat_metrics

    rd = _make_run(tmp_path)
    rd.log_metrics({"acc": 0.5}, "dev", epoch=0)
    rd.log_metrics({"acc": 0.75, "comp_aopc": 0.25}, "test")
    rd.log_metrics({"acc": 0.5}, "dev")
    final = rd.final_metrics()
    assert list(final) == ["dev", "test"] and final["test"] == {"acc": 0.75, "comp_aopc": 0.25}
    assert flat_metrics(final) == {"dev_acc": 0.5, "test_acc": 0.75, "test_comp_aopc": 0.25}
