"""Typed read queries over the run index. Every user value is a bound parameter; callers (the
application layer) never write SQL.

Metrics of a run's *final* evaluation are the rows logged without an epoch (``epoch IS NULL``);
per-epoch rows hold the training curves and the dev evaluation of each epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from store.db import connect
from store.entities import RUN_FIELDS, Run
from unirex.metrics.registry import metric_keys

RUN_COLUMNS = ("run_id", "status", "method", "dataset", "arch", "seed", "mode", "parent_run", "created_at",
               "started_at", "ended_at", "duration_s", "error", "run_dir", "command", "launcher", "protocol", "debug",
               "tags")


def headline_metrics() -> tuple[str, ...]:
    """The metrics shown beside each run in the runs table (final evaluation on the chosen split): every
    headline metric of the registry (:mod:`unirex.metrics.registry`), in its order."""
    return metric_keys(headline=True)


@dataclass(frozen=True)
class RunFilter:
    """Which runs a query covers; ``None`` / empty means any. ``tags``: runs holding every one of these tags;
    ``debug``: only debug runs (True) or only the others (False)."""

    dataset: str | None = None
    method: str | None = None
    arch: str | None = None
    status: str | None = None
    mode: str | None = None
    seeds: tuple[int, ...] = ()
    run_ids: tuple[str, ...] = ()
    methods: tuple[str, ...] = field(default=())  # any of these methods (the dashboard's multi-select)
    tags: tuple[str, ...] = ()
    debug: bool | None = None

    def where(self, alias: str = "r") -> tuple[str, list]:
        """``(sql condition, parameters)`` for ``runs AS alias``."""
        conds, params = [], []
        for col in ("dataset", "method", "arch", "status", "mode"):
            value = getattr(self, col)
            if value not in (None, ""):
                conds.append(f"{alias}.{col} = ?")
                params.append(value)
        for col, values in (("seed", self.seeds), ("run_id", self.run_ids), ("method", self.methods)):
            if values:
                conds.append(f"{alias}.{col} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if self.tags:
            conds.append(f"list_has_all(coalesce({alias}.tags, []::VARCHAR[]), ?::VARCHAR[])")
            params.append(list(self.tags))
        if self.debug is not None:
            conds.append(f"coalesce({alias}.debug, FALSE) = ?")
            params.append(bool(self.debug))
        return (" AND ".join(conds) or "TRUE"), params


def runs_table(workspace: Path, flt: RunFilter = RunFilter(), split: str = "test",
               metrics: tuple[str, ...] | None = None, limit: int | None = None) -> pl.DataFrame:
    """One row per run (newest first): the run columns plus its final ``metrics`` on ``split`` (null where
    the run has none); ``metrics`` default: the registry's headline metrics (:func:`headline_metrics`)."""
    metrics = headline_metrics() if metrics is None else tuple(metrics)
    where, params = flt.where("r")
    pivot = ", ".join(f"max(m.value) FILTER (WHERE m.name = ?) AS \"{name}\"" for name in metrics)
    sql = (f"SELECT {', '.join('r.' + c for c in RUN_COLUMNS)}{', ' + pivot if metrics else ''} "
           "FROM runs r LEFT JOIN metrics m ON m.run_id = r.run_id AND m.epoch IS NULL AND m.split = ? "
           f"WHERE {where} GROUP BY ALL ORDER BY r.created_at DESC NULLS LAST, r.run_id DESC")
    args = list(metrics) + [split] + params
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    with connect(workspace, read_only=True) as con:
        return con.sql(sql, params=args).pl()


def get_run(workspace: Path, run_id: str) -> Run | None:
    """The indexed :class:`~store.entities.Run` ``run_id`` (its config parsed), or None when it is not indexed."""
    with connect(workspace, read_only=True) as con:
        df = con.sql(f"SELECT {', '.join(RUN_FIELDS)} FROM runs WHERE run_id = ?", params=[run_id]).pl()
    return Run.from_row(df.row(0, named=True)) if df.height else None


def run_metrics(workspace: Path, run_id: str) -> pl.DataFrame:
    """Every metric row of a run: split, epoch (null = final evaluation), step, name, value, time."""
    with connect(workspace, read_only=True) as con:
        return con.sql("SELECT split, epoch, step, name, value, time FROM metrics WHERE run_id = ? "
                       "ORDER BY time, split, name", params=[run_id]).pl()


def _final_rows(con, flt: RunFilter, split: str, names: tuple[str, ...]) -> pl.DataFrame:
    """:func:`final_metric_rows` on an open connection (no ``ORDER BY``: sorting 200,000 rows by two strings
    was most of the query's time, and the pivot that consumes the rows needs no order)."""
    where, params = flt.where("r")
    name_cond = f" AND m.name IN ({', '.join('?' * len(names))})" if names else ""
    sql = ("SELECT r.run_id, r.method, r.dataset, r.arch, r.seed, m.name, m.value FROM runs r "
           "JOIN metrics m ON m.run_id = r.run_id AND m.epoch IS NULL AND m.split = ?"
           f"{name_cond} WHERE {where}")
    return con.sql(sql, params=[split, *names, *params]).pl()


def final_metric_rows(workspace: Path, flt: RunFilter = RunFilter(), split: str = "test",
                      names: tuple[str, ...] = ()) -> pl.DataFrame:
    """Long format: one row per (run, metric) of the runs' final evaluation on ``split``, with the run's
    method, dataset, arch and seed, in no particular order (sort it where an order matters)."""
    with connect(workspace, read_only=True) as con:
        return _final_rows(con, flt, split, tuple(names))


#: more changed runs than this and :func:`final_metric_updates` reads every run again (one scan beats a long IN list)
MAX_INCREMENTAL_RUNS = 500


@dataclass(frozen=True)
class FinalMetricsUpdate:
    """What a holder of the final metrics of the runs one :class:`RunFilter` selects must change to be
    current (:func:`final_metric_updates`).

    ``versions``: every selected run's version now (a hash of its whole ``runs`` row, which an ingest always
    rewrites with a new ``ingested_at``, together with its metric rows); ``drop``: the run ids whose rows are
    out of date (changed, gone, or no longer selected); ``rows``: :func:`final_metric_rows` of the runs new or
    changed since the known versions, or of every selected run when ``full`` (then drop everything held)."""

    versions: dict[str, int]
    drop: frozenset[str]
    rows: pl.DataFrame
    full: bool
    lineage: pl.DataFrame  # :func:`run_lineage` of every selected run (read whole: a few ms over 10,000 runs)


def final_metric_updates(workspace: Path, flt: RunFilter, split: str, names: tuple[str, ...] = (),
                         known: dict[str, int] | None = None) -> FinalMetricsUpdate:
    """The final metric rows (:func:`final_metric_rows`) of the runs ``flt`` selects that changed since
    ``known`` (run id -> version, as a previous call returned them): after one run landed in an index of
    10,000 this reads that run's rows, not all 10,000 runs' (one connection, so versions and rows agree).
    ``known`` None, or more than :data:`MAX_INCREMENTAL_RUNS` changed runs, reads them all (``full``)."""
    names = tuple(names)
    with connect(workspace, read_only=True) as con:
        lineage = _lineage(con, flt, version=True)
        versions = dict(zip(lineage["run_id"].to_list(), lineage["version"].to_list()))
        lineage = lineage.drop("version")
        if known is not None:
            changed = tuple(r for r, v in versions.items() if known.get(r) != v)
            if len(changed) <= MAX_INCREMENTAL_RUNS:
                drop = frozenset(changed).union(r for r in known if r not in versions)
                rows = (_final_rows(con, replace(flt, run_ids=changed), split, names) if changed
                        else pl.DataFrame())
                return FinalMetricsUpdate(versions=versions, drop=drop, rows=rows, full=False, lineage=lineage)
        rows = _final_rows(con, flt, split, names)
    return FinalMetricsUpdate(versions=versions, drop=frozenset(known or ()), rows=rows, full=True, lineage=lineage)


def _lineage(con, flt: RunFilter, version: bool = False) -> pl.DataFrame:
    """:func:`run_lineage` on an open connection; ``version``: with each run's ``version`` (a hash of its whole
    ``runs`` row, :class:`FinalMetricsUpdate`) as a last column."""
    where, params = flt.where("r")
    sql = ("SELECT r.run_id, r.dataset, r.seed, r.mode, r.parent_run, r.created_at, "
           "coalesce(r.tags, []::VARCHAR[]) AS tags, p.seed AS parent_seed"
           f"{', hash(r) AS version' if version else ''} FROM runs r "
           f"LEFT JOIN runs p ON p.run_id = r.parent_run WHERE {where}")
    return con.sql(sql, params=params).pl()


def run_lineage(workspace: Path, flt: RunFilter = RunFilter()) -> pl.DataFrame:
    """One row per run ``flt`` selects: ``run_id``, ``dataset``, ``seed``, its kind (``mode``), ``parent_run``
    (for an evaluation: the run whose checkpoint it evaluated), ``created_at``, ``tags`` and ``parent_seed``
    (the parent run's seed; null when it is not indexed): what :func:`workbench.compare.counted_runs` needs to
    count one evaluation per trained model."""
    with connect(workspace, read_only=True) as con:
        return _lineage(con, flt)


def aggregate(workspace: Path, flt: RunFilter = RunFilter(), split: str = "test", names: tuple[str, ...] = (),
              by: tuple[str, ...] = ("method", "dataset", "arch")) -> pl.DataFrame:
    """Mean, sample standard deviation and count over runs (seeds) of each final metric on ``split``,
    grouped by ``by`` (run columns); also the seeds and run ids in each group. Long format."""
    allowed = {"method", "dataset", "arch", "mode", "status", "protocol"}
    bad = [b for b in by if b not in allowed]
    if bad:
        raise ValueError(f"cannot group by {bad}; choose from {sorted(allowed)}")
    where, params = flt.where("r")
    name_cond = f" AND m.name IN ({', '.join('?' * len(names))})" if names else ""
    group = ", ".join(f"r.{b}" for b in by)
    sql = (f"SELECT {group}, m.name, avg(m.value) AS mean, stddev_samp(m.value) AS std, count(*) AS n, "
           "list(DISTINCT r.seed ORDER BY r.seed) AS seeds, list(r.run_id ORDER BY r.run_id) AS run_ids "
           "FROM runs r JOIN metrics m ON m.run_id = r.run_id AND m.epoch IS NULL AND m.split = ?"
           f"{name_cond} WHERE {where} GROUP BY {group}, m.name ORDER BY {group}, m.name")
    with connect(workspace, read_only=True) as con:
        return con.sql(sql, params=[split, *names, *params]).pl()


def tag_names(workspace: Path) -> list[str]:
    """Every tag of the indexed runs, sorted."""
    with connect(workspace, read_only=True) as con:
        rows = con.execute("SELECT DISTINCT t FROM (SELECT unnest(tags) AS t FROM runs) WHERE t IS NOT NULL "
                           "ORDER BY t").fetchall()
    return [r[0] for r in rows]


@dataclass(frozen=True)
class IndexCounts:
    """How many rows the index holds in each table (a sound index: one per run, one per logged metric)."""

    runs: int
    metrics: int
    datasets: int


def index_counts(workspace: Path) -> IndexCounts:
    """The row counts of the runs, metrics and datasets tables."""
    with connect(workspace, read_only=True) as con:
        runs, metrics, datasets = con.execute(
            "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM metrics), (SELECT count(*) FROM datasets)"
        ).fetchone()
    return IndexCounts(runs=int(runs), metrics=int(metrics), datasets=int(datasets))


@dataclass(frozen=True)
class IndexedRun:
    """One row of the runs table as indexed: its id, status and mode."""

    run_id: str
    status: str
    mode: str | None


def indexed_runs(workspace: Path) -> list[IndexedRun]:
    """Every row of the runs table, by run id: a run indexed twice would appear twice."""
    with connect(workspace, read_only=True) as con:
        df = con.sql("SELECT run_id, status, mode FROM runs ORDER BY run_id").pl()
    return [IndexedRun(**r) for r in df.iter_rows(named=True)]


def table_names(workspace: Path) -> set[str]:
    """The tables the index holds (the schema's, after any migration)."""
    with connect(workspace, read_only=True) as con:
        return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def datasets_table(workspace: Path) -> pl.DataFrame:
    """The built dataset splits indexed from ``<workspace>/data``."""
    with connect(workspace, read_only=True) as con:
        return con.sql("SELECT dataset, arch, max_length, tag, count, summary, path FROM datasets "
                       "ORDER BY dataset, arch, max_length, tag").pl()


__all__ = ["FinalMetricsUpdate", "IndexCounts", "IndexedRun", "MAX_INCREMENTAL_RUNS", "RunFilter", "aggregate",
           "datasets_table", "final_metric_rows", "final_metric_updates", "get_run", "headline_metrics",
           "index_counts", "indexed_runs", "run_lineage", "run_metrics", "runs_table", "table_names", "tag_names"]
