"""The DuckDB run store: a query index over the run directories of a workspace.

Run directories are the source of truth; this database can be deleted and rebuilt from them
at any time (:func:`rebuild`). DuckDB locks a file per process, so no process keeps the database open
between operations: every call opens, works, closes, and retries with backoff on a lock conflict.

Writers (:func:`ingest_run`, :func:`sync`, the swap at the end of :func:`rebuild`) also hold the workspace's
store lock (``unirex.duckdb.lock``, an ``flock``), so a rebuild cannot swap in a database built from an
older snapshot of a run while that run's own final ingest goes into the file being replaced: the rebuild
re-ingests, under the lock and just before the swap, every run whose files changed since its snapshot.

Each indexed run keeps a ``signature`` of its files (sizes and modification times): :func:`sync`
re-ingests only runs whose files changed (or that still read ``running``, whose effective status can turn
``interrupted`` with no file changing) and drops the rows of run folders that no longer exist.

On a full disk a write fails as one line (:class:`~unirex.errors.DiskFullError`, naming the database and its
file system): DuckDB commits nothing it could not log, so the file keeps its last committed state and
read-only reads go on working.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import random
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from unirex.errors import UnirexError
from unirex.fsutil import disk_full_error
from store.entities import RUN_FIELDS, IndexedRows, Run
from unirex.runs import RunDir, RunStatus, debug_of, list_runs

DB_NAME = "unirex.duckdb"
LOCK_NAME = "unirex.duckdb.lock"
SCHEMA_VERSION = 5  # 4: runs.protocol; 5: runs.debug, runs.tags
SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_info (version INTEGER);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, status VARCHAR, method VARCHAR, dataset VARCHAR, arch VARCHAR,
    seed INTEGER, mode VARCHAR, parent_run VARCHAR, config JSON, created_at DOUBLE, started_at DOUBLE,
    ended_at DOUBLE, duration_s DOUBLE, error VARCHAR, run_dir VARCHAR, ingested_at DOUBLE,
    command VARCHAR, launcher VARCHAR, signature VARCHAR, protocol VARCHAR, debug BOOLEAN, tags VARCHAR[]
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id VARCHAR, split VARCHAR, epoch INTEGER, step INTEGER, name VARCHAR, value DOUBLE, time DOUBLE
);
CREATE TABLE IF NOT EXISTS datasets (
    dataset VARCHAR, arch VARCHAR, max_length INTEGER, tag VARCHAR, count INTEGER, summary JSON, path VARCHAR,
    PRIMARY KEY (dataset, arch, max_length, tag)
);
"""
RUN_TABLES = ("runs", "metrics")
#: tables of older schema versions that nothing read (checkpoint and output rows: the run folder answers)
RETIRED_TABLES = ("checkpoints", "outputs")
LOCK_TIMEOUT_S = 300.0


def db_path(workspace: Path) -> Path:
    return Path(workspace) / DB_NAME


@contextmanager
def store_lock(workspace: Path, timeout_s: float = LOCK_TIMEOUT_S):
    """Hold the workspace's store lock (one writer at a time, across processes)."""
    path = Path(workspace) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UnirexError(f"the run store {db_path(workspace)} is busy (another process holds {path} "
                                      f"for more than {timeout_s:.0f} s)") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


_PROCESS_LOCKS: dict[str, threading.RLock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def _process_lock(path: Path) -> threading.RLock:
    """One connection at a time per database file within this process: DuckDB refuses a read-only and a
    read-write connection to the same file side by side in one process (the app's worker thread ingests
    while its request threads query)."""
    key = str(Path(path).resolve())
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(key, threading.RLock())


@contextmanager
def connect(workspace: Path, read_only: bool = False, timeout_s: float = 60.0):
    """Open the workspace database for one operation; retry while another process holds the lock."""
    path = db_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _process_lock(path):
        with _connect(path, read_only, timeout_s) as con:
            yield con


@contextmanager
def _connect(path: Path, read_only: bool, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            if read_only and not _schema_current(path):
                con = duckdb.connect(str(path))  # create or migrate it once so read-only opens work
                _ensure_schema(con)
                con.close()
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.Error as e:
            disk = disk_full_error(e, path, f"the run index {path.name}")
            if disk is not None:
                raise disk from e
            if not isinstance(e, duckdb.IOException):
                raise
            if "lock" not in str(e).lower() or time.monotonic() > deadline:
                raise UnirexError(f"cannot open the run store {path}: {e}") from None
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 1.0)
    try:
        if not read_only:
            _ensure_schema(con)
        yield con
    except (duckdb.Error, OSError) as e:
        disk = disk_full_error(e, path, f"the run index {path.name}")
        if disk is None:
            raise
        # DuckDB did not commit what it could not log: the file keeps its last committed state, still readable
        try:
            con.rollback()
        except duckdb.Error:
            pass
        raise disk from e
    finally:
        con.close()


_CURRENT: set[tuple[str, int]] = set()  # (path, inode) of files already checked for the schema version


def _schema_current(path: Path) -> bool:
    """Whether ``path`` holds a database with this version's schema (checked once per file per process)."""
    try:
        key = (str(path), path.stat().st_ino)
    except FileNotFoundError:
        return False
    if key in _CURRENT:
        return True
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            raise  # another process writes: the caller retries
        return False
    try:
        ok = con.execute("SELECT max(version) FROM schema_info").fetchone()[0] == SCHEMA_VERSION
    except duckdb.Error:
        ok = False
    finally:
        con.close()
    if ok:
        _CURRENT.add(key)
    return ok


def _ensure_schema(con) -> None:
    """Create the tables; an index written by an older version is dropped and re-created (it is only an
    index: :func:`sync` fills it again from the run directories)."""
    con.execute(SCHEMA)
    # fetchall, not fetchone: a result left unfinished blocks the connection's next register() (DuckDB 2)
    rows = con.execute("SELECT max(version) FROM schema_info").fetchall()
    if not rows or rows[0][0] != SCHEMA_VERSION:
        for t in (*RUN_TABLES, *RETIRED_TABLES, "datasets", "schema_info"):
            con.execute(f"DROP TABLE IF EXISTS {t}")
        con.execute(SCHEMA)
        con.execute("INSERT INTO schema_info VALUES (?)", [SCHEMA_VERSION])


def run_signature(rd: RunDir) -> str:
    """Sizes and modification times of the files a run's index rows come from: equal signatures mean
    nothing to re-ingest."""
    parts = []
    for path in (rd.meta_path, rd.status_path, rd.metrics_path, rd.checkpoint_dir / "checkpoint.json", rd.outputs_dir):
        try:
            st = path.stat()
            parts.append(f"{st.st_size}:{st.st_mtime_ns}")
        except FileNotFoundError:
            parts.append("-")
    return "|".join(parts)


def _int32(v) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and -2**31 <= v < 2**31)


def _number(v) -> bool:
    """A DOUBLE column holds it (NaN and infinities too: a diverged loss is logged as it was)."""
    if isinstance(v, bool):
        return False
    return v is None or isinstance(v, float) or (isinstance(v, int) and abs(v) < 2**63)


def _corrupt_rows(rd: RunDir, signature: str, reason: str) -> IndexedRows:
    """The row of a run folder that cannot be read: listed as ``corrupt`` with the reason, nothing of its content."""
    run = Run(run_id=rd.run_id, status=RunStatus.CORRUPT, method=None, dataset=None, arch=None, seed=None, mode=None,
              parent_run=None, config={}, created_at=None, started_at=None, ended_at=None, duration_s=None,
              error=reason, run_dir=str(rd.path), ingested_at=time.time(), command=None, launcher="local",
              signature=signature)
    return IndexedRows(run=run, metrics=[])


def _run_rows(rd: RunDir) -> IndexedRows:
    signature = run_signature(rd)  # before reading: a change while reading makes the next sync re-ingest
    reason = rd.corrupt_reason()
    if reason is not None:
        return _corrupt_rows(rd, signature, reason)
    meta, status = rd.meta(), rd.status()
    try:
        config = rd.config()
    except (UnirexError, UnicodeDecodeError):
        config = {}
    if not isinstance(config, dict):
        config = {}
    started, ended = status.get("started_at"), status.get("ended_at")
    run = Run(run_id=rd.run_id, status=RunStatus(rd.effective_status()), method=meta.get("method"),
              dataset=meta.get("dataset"), arch=meta.get("arch"), seed=meta.get("seed"), mode=meta.get("mode"),
              parent_run=meta.get("parent_run"), config=config, created_at=meta.get("created_at"),
              started_at=started, ended_at=ended, duration_s=(ended - started) if (started and ended) else None,
              error=status.get("error"), run_dir=str(rd.path), ingested_at=time.time(), command=meta.get("command"),
              launcher=meta.get("launcher") or "local", signature=signature,
              protocol=str(config.get("protocol") or "eraser") if config else None, debug=debug_of(rd, meta),
              tags=tuple(meta.get("tags") or ()))
    metrics = [(rd.run_id, m.get("split"), m.get("epoch"), m.get("step"), m.get("name"), m.get("value"), m.get("time"))
               for m in rd.metrics()  # a line no column can hold (a damaged or hand-edited log) is left out
               if isinstance(m, dict) and _int32(m.get("epoch")) and _int32(m.get("step")) and _number(m.get("value"))
               and _number(m.get("time")) and all(isinstance(m.get(k), (str, type(None))) for k in ("split", "name"))]
    return IndexedRows(run=run, metrics=metrics)


def _write_run(con, run_id: str, rows: IndexedRows) -> None:
    for t in RUN_TABLES:
        con.execute(f"DELETE FROM {t} WHERE run_id = ?", [run_id])
    con.execute(f"INSERT INTO runs ({', '.join(RUN_FIELDS)}) VALUES ({', '.join('?' * len(RUN_FIELDS))})",
                rows.run.params())
    if rows.metrics:
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)", rows.metrics)


def _delete_runs(con, run_ids) -> None:
    for run_id in run_ids:
        for t in RUN_TABLES:
            con.execute(f"DELETE FROM {t} WHERE run_id = ?", [run_id])


def ingest_run(workspace: Path, run_dir: Path | RunDir) -> str:
    """Index one run directory. Idempotent: the run's rows are replaced as a whole, in one transaction.
    Returns the run's (effective) status."""
    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    with store_lock(workspace):
        # read under the lock: two indexings of one run (two tag edits at once) write in the order they read,
        # so the last one written holds the folder's latest state
        rows = _run_rows(rd)
        with connect(workspace) as con:
            con.execute("BEGIN TRANSACTION")
            _write_run(con, rd.run_id, rows)
            con.execute("COMMIT")
    return rows.run.status.value


@dataclass(frozen=True)
class CorruptRunInfo:
    """A run folder indexed as ``corrupt``: its id and why it cannot be read (one line naming the file)."""

    run_id: str
    reason: str


@dataclass(frozen=True)
class SyncReport:
    """What :func:`sync` changed in the index."""

    added: int
    updated: int
    removed: int
    total: int  # run folders indexed after the sync
    corrupt: tuple[CorruptRunInfo, ...] = ()  # the indexed runs whose folders cannot be read (listed as corrupt)


def corrupt_runs(workspace: Path) -> tuple[CorruptRunInfo, ...]:
    """The indexed runs listed as ``corrupt``, with their reasons (by run id)."""
    with connect(workspace, read_only=True) as con:
        rows = con.execute("SELECT run_id, error FROM runs WHERE status = ? ORDER BY run_id",
                           [RunStatus.CORRUPT.value]).fetchall()
    return tuple(CorruptRunInfo(run_id=r, reason=e or "") for r, e in rows)


def _stale(workspace: Path, runs: list[RunDir], indexed: dict[str, tuple[str, str]]) -> list[RunDir]:
    """Runs whose files changed since they were indexed, that are not indexed, or still read running."""
    out = []
    for rd in runs:
        sig, status = indexed.get(rd.run_id, (None, None))
        if sig != run_signature(rd) or status == "running":
            out.append(rd)
    return out


def sync(workspace: Path) -> SyncReport:
    """Bring the index up to date with the run directories: ingest new and changed runs, re-check runs
    that read ``running`` and drop rows of run folders that were deleted."""
    workspace = Path(workspace)
    runs = list_runs(workspace / "runs")
    with connect(workspace, read_only=True) as con:
        indexed = {r["run_id"]: (r["signature"], r["status"])
                   for r in con.sql("SELECT run_id, signature, status FROM runs").pl().iter_rows(named=True)}
    stale = _stale(workspace, runs, indexed)
    rows = [(rd.run_id, _run_rows(rd)) for rd in stale]
    present = {rd.run_id for rd in runs}
    gone = [r for r in indexed if r not in present]
    if rows or gone:
        with store_lock(workspace), connect(workspace) as con:
            con.execute("BEGIN TRANSACTION")
            for run_id, r in rows:
                _write_run(con, run_id, r)
            _delete_runs(con, gone)
            con.execute("COMMIT")
    added = sum(1 for run_id, _ in rows if run_id not in indexed)
    return SyncReport(added=added, updated=len(rows) - added, removed=len(gone), total=len(runs),
                      corrupt=corrupt_runs(workspace))


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
    with store_lock(workspace), connect(workspace) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM datasets")
        if rows:
            con.executemany("INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        con.execute("COMMIT")
    return len(rows)


def ingest_all(workspace: Path) -> int:
    """Index every run directory and built dataset of the workspace (idempotent; runs whose files did not
    change are skipped, rows of deleted run folders dropped). Returns the number of runs."""
    report = sync(workspace)
    ingest_datasets(workspace)
    return report.total


REBUILD_PREFIX = ".rebuild-"


def _clean_rebuild_leftovers(workspace: Path) -> None:
    """Remove ``.rebuild-*`` folders left by a rebuild whose process died (their pid is in the name)."""
    from unirex.runs import pid_alive

    for p in Path(workspace).glob(f"{REBUILD_PREFIX}*"):
        try:
            pid = int(p.name[len(REBUILD_PREFIX):].split("-")[0])
        except ValueError:
            pid = None
        if pid is None or pid == os.getpid() or not pid_alive(pid):
            link = p / "data"
            if link.is_symlink():
                link.unlink()  # never follow the data link
            shutil.rmtree(p, ignore_errors=True)


def rebuild(workspace: Path) -> int:
    """Recreate the database from the run directories. The new file is built from a snapshot of the run
    folders without blocking writers, then, holding the store lock, every run whose files changed since
    the snapshot (or that appeared or vanished) is brought up to date in it, and it replaces the old one."""
    workspace = Path(workspace)
    path = db_path(workspace)
    _clean_rebuild_leftovers(workspace)
    tmp_ws = workspace / f"{REBUILD_PREFIX}{os.getpid()}-{time.time_ns()}"
    tmp_ws.mkdir(parents=True)
    try:
        runs = list_runs(workspace / "runs")
        snapshot = {}
        with connect(tmp_ws) as con:
            for rd in runs:
                rows = _run_rows(rd)
                snapshot[rd.run_id] = (rows.run.signature, rows.run.status.value)
                con.execute("BEGIN TRANSACTION")
                _write_run(con, rd.run_id, rows)
                con.execute("COMMIT")
        (tmp_ws / "data").symlink_to(workspace.resolve() / "data", target_is_directory=True)
        ingest_datasets(tmp_ws)
        with store_lock(workspace):
            now = list_runs(workspace / "runs")
            late = _stale(workspace, now, snapshot)
            gone = [r for r in snapshot if r not in {rd.run_id for rd in now}]
            with connect(tmp_ws) as con:
                con.execute("BEGIN TRANSACTION")
                for rd in late:
                    _write_run(con, rd.run_id, _run_rows(rd))
                _delete_runs(con, gone)
                con.execute("COMMIT")
            (tmp_ws / DB_NAME).replace(path)
            Path(str(path) + ".wal").unlink(missing_ok=True)
            runs = now
    finally:
        link = tmp_ws / "data"
        if link.is_symlink():
            link.unlink()
        shutil.rmtree(tmp_ws, ignore_errors=True)
    return len(runs)


def query(workspace: Path, sql: str, params: list | None = None):
    """Run a read query and return a Polars frame."""
    with connect(workspace, read_only=True) as con:
        return con.sql(sql, params=params or None).pl()
