"""DuckDB run store (schema, ingest of run directories, dashboard queries).

Arrives with the engine/store issue; nothing here yet, and nothing imports it yet.
"""
