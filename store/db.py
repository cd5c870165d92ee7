"""The DuckDB run store: a query index over the run directories of a workspace.

Run directories are the source of truth (DESIGN.md); this database can be deleted and rebuilt from them
at any time (:func:`rebuild`). DuckDB locks a file per process, so no process keeps the database open
between operations: every call opens, works, closes, and retries with backoff on a lock conflict.
"""

from __future__ import annotations

import json
import random
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from unirex.errors import UnirexError
from unirex.runs import RunDir, list_runs

DB_NAME = "unirex.duckdb"
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, status VARCHAR, method VARCHAR, dataset VARCHAR, arch VARCHAR,
    seed INTEGER, mode VARCHAR, parent_run VARCHAR, config JSON, created_at DOUBLE, started_at DOUBLE,
    ended_at DOUBLE, duration_s DOUBLE, error VARCHAR, run_dir VARCHAR, ingested_at DOUBLE
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id VARCHAR, split VARCHAR, epoch INTEGER, step INTEGER, name VARCHAR, value DOUBLE, time DOUBLE
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id VARCHAR, path VARCHAR, epoch INTEGER, monitor VARCHAR, value DOUBLE, created_at DOUBLE
);
CREATE TABLE IF NOT EXISTS outputs (
    run_id VARCHAR, split VARCHAR, kind VARCHAR, path VARCHAR, rows BIGINT
);
CREATE TABLE IF NOT EXISTS datasets (
    dataset VARCHAR, arch VARCHAR, max_length INTEGER, tag VARCHAR, count INTEGER, summary JSON, path VARCHAR,
    PRIMARY KEY (dataset, arch, max_length, tag)
);
"""
RUN_TABLES = ("runs", "metrics", "checkpoints", "outputs")


def db_path(workspace: Path) -> Path:
    return Path(workspace) / DB_NAME


@contextmanager
def connect(workspace: Path, read_only: bool = False, timeout_s: float = 60.0):
    """Open the workspace database for one operation; retry while another process holds the lock."""
    path = db_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            if read_only and not path.exists():
                con = duckdb.connect(str(path))  # create it once so read-only opens work
                con.execute(SCHEMA)
                con.close()
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as e:
            if "lock" not in str(e).lower() or time.monotonic() > deadline:
                raise UnirexError(f"cannot open the run store {path}: {e}") from None
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 1.0)
    try:
        if not read_only:
            con.execute(SCHEMA)
        yield con
    finally:
        con.close()


def _run_rows(rd: RunDir):
    meta, config, status = rd.meta(), rd.config(), rd.status()
    st = rd.effective_status()
    started, ended = status.get("started_at"), status.get("ended_at")
    run = (rd.run_id, st, meta.get("method"), meta.get("dataset"), meta.get("arch"), meta.get("seed"),
           meta.get("mode"), meta.get("parent_run"), json.dumps(config), meta.get("created_at"), started, ended,
           (ended - started) if (started and ended) else None, status.get("error"), str(rd.path), time.time())
    metrics = [(rd.run_id, m.get("split"), m.get("epoch"), m.get("step"), m.get("name"), m.get("value"), m.get("time"))
               for m in rd.metrics()]
    ckpts = []
    ck = rd.checkpoint_dir / "checkpoint.json"
    if ck.is_file():
        info = json.loads(ck.read_text())
        ckpts.append((rd.run_id, str(rd.checkpoint_dir), info.get("epoch"), info.get("monitor"), info.get("value"),
                      info.get("created_at")))
    outputs = []
    if rd.outputs_dir.is_dir():
        for p in sorted(rd.outputs_dir.glob("*.parquet")):
            kind, _, split = p.stem.partition("_")
            outputs.append((rd.run_id, split, kind, str(p), pl.scan_parquet(p).select(pl.len()).collect().item()))
    return run, metrics, ckpts, outputs


def ingest_run(workspace: Path, run_dir: Path | RunDir) -> str:
    """Index one run directory. Idempotent: the run's rows are replaced as a whole, in one transaction."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    run, metrics, ckpts, outputs = _run_rows(rd)
    with connect(workspace) as con:
        con.execute("BEGIN TRANSACTION")
        for t in RUN_TABLES:
            con.execute(f"DELETE FROM {t} WHERE run_id = ?", [rd.run_id])
        con.execute(f"INSERT INTO runs VALUES ({', '.join('?' * len(run))})", list(run))
        if metrics:
            con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)", metrics)
        if ckpts:
            con.executemany("INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)", ckpts)
        if outputs:
            con.executemany("INSERT INTO outputs VALUES (?, ?, ?, ?, ?)", outputs)
        con.execute("COMMIT")
    return run[1]


def ingest_datasets(workspace: Path) -> int:
    """Index the built dataset splits under ``<workspace>/data`` (their summary JSON files). Idempotent."""
    rows = []
    for summary_path in sorted((Path(workspace) / "data").glob("*/*/L*/*.json")):
        if summary_path.name == "labels.json":
            continue
        try:
            s = json.loads(summary_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "fingerprint" not in s:
            continue
        rows.append((s.get("dataset"), s.get("arch"), s.get("max_length"), s.get("tag"), s.get("count"),
                     json.dumps(s), str(summary_path.with_suffix(".parquet"))))
    with connect(workspace) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM datasets")
        if rows:
            con.executemany("INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        con.execute("COMMIT")
    return len(rows)


def ingest_all(workspace: Path) -> int:
    """Index every run directory and built dataset of the workspace (idempotent). Returns the number of runs."""
    runs = list_runs(Path(workspace) / "runs")
    for rd in runs:
        ingest_run(workspace, rd)
    ingest_datasets(workspace)
    return len(runs)


def rebuild(workspace: Path) -> int:
    """Recreate the database from the run directories (the old file is replaced only at the end)."""
    path = db_path(workspace)
    tmp_ws = path.with_name(f".rebuild-{time.time_ns()}")
    tmp_ws.mkdir(parents=True)
    try:
        # build into a fresh file, then swap it in
        runs = list_runs(Path(workspace) / "runs")
        for rd in runs:
            ingest_run(tmp_ws, rd)
        (tmp_ws / "data").symlink_to(Path(workspace).resolve() / "data", target_is_directory=True)
        ingest_datasets(tmp_ws)
        with connect(tmp_ws):
            pass
        (tmp_ws / DB_NAME).replace(path)
        Path(str(path) + ".wal").unlink(missing_ok=True)
    finally:
        for p in tmp_ws.glob("*"):
            p.unlink()  # files and the data link (never followed)
        tmp_ws.rmdir()
    return len(runs)


def query(workspace: Path, sql: str, params: list | None = None):
    """Run a read query and return a Polars frame."""
    with connect(workspace, read_only=True) as con:
        return con.sql(sql, params=params or None).pl()
