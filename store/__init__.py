"""DuckDB run store: schema, idempotent ingest of run directories, rebuild, read queries.

The core library never imports this package; the CLI and the app wire it in.
"""

from store.db import connect, db_path, ingest_all, ingest_datasets, ingest_run, query, rebuild

__all__ = ["connect", "db_path", "ingest_all", "ingest_datasets", "ingest_run", "query", "rebuild"]
