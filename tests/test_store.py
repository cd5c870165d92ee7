"""Run directories and the DuckDB store: idempotent ingest, rebuild, interrupted runs, concurrent writers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from store import datasets_table, db, index_counts, indexed_runs, run_metrics, run_row
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
        assert json.loads(run_row(tmp_path, r.run_id)["config"])["model"]["comp_wt"] == 0.5


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
        from store import datasets_table, db, index_counts, indexed_runs, run_metrics, run_row
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
