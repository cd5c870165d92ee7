"""DuckDB run store: schema, idempotent ingest of run directories, sync, rebuild, typed read queries.

The core library never imports this package; the application layer (``workbench``) and the CLI use it.
"""

from store.db import (CorruptRunInfo, SyncReport, connect, corrupt_runs, db_path, ingest_all, ingest_datasets,
                      ingest_run, query, rebuild, sync)
from store.entities import Run
from store.queries import (FinalMetricsUpdate, IndexCounts, IndexedRun, RunFilter, aggregate, datasets_table,
                           final_metric_rows, final_metric_updates, get_run, headline_metrics, index_counts,
                           indexed_runs, run_lineage, run_metrics, runs_table, table_names, tag_names)

__all__ = ["CorruptRunInfo", "FinalMetricsUpdate", "IndexCounts", "IndexedRun", "Run", "RunFilter", "SyncReport",
           "aggregate", "connect", "corrupt_runs", "datasets_table", "db_path", "final_metric_rows",
           "final_metric_updates", "get_run", "headline_metrics", "index_counts", "indexed_runs", "ingest_all",
           "ingest_datasets", "ingest_run", "query", "rebuild", "run_lineage", "run_metrics", "runs_table", "sync",
           "table_names", "tag_names"]
