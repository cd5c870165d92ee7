"""Typed records of the run index, as MLflow's tracking store returns entities rather than rows: a query
hands back a :class:`Run` (or a Polars frame for tables meant to be shown), never a positional tuple."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from unirex.runs import RunStatus


@dataclass(frozen=True)
class Run:
    """One indexed run: a row of the ``runs`` table (fields in the table's column order).

    ``config`` is the run's resolved config (nested, as ``config.json``); times are Unix seconds;
    ``duration_s`` is ``ended_at - started_at`` when both are known; ``signature`` fingerprints the run
    folder's files as they were indexed (:func:`store.db.run_signature`). ``mode`` is the run's kind (train,
    evaluate, finetune); ``debug`` whether it is a debug run (:func:`unirex.runs.debug_of`); ``tags`` its
    free-form names (appended columns: an index or run folder from before them reads False and none)."""

    run_id: str
    status: RunStatus
    method: str | None
    dataset: str | None
    arch: str | None
    seed: int | None
    mode: str | None
    parent_run: str | None
    config: dict[str, Any]
    created_at: float | None
    started_at: float | None
    ended_at: float | None
    duration_s: float | None
    error: str | None
    run_dir: str
    ingested_at: float | None
    command: str | None
    launcher: str
    signature: str
    protocol: str | None = None  # the config's ``protocol`` (a config saved before the key: ``eraser``)
    debug: bool = False
    tags: tuple[str, ...] = ()

    def params(self) -> list:
        """The values to bind for ``INSERT INTO runs`` (:data:`RUN_FIELDS` order; the config as JSON)."""
        convert = {"status": str, "config": json.dumps, "tags": list}
        return [convert.get(f, lambda v: v)(getattr(self, f)) for f in RUN_FIELDS]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Run:
        """A ``runs`` row read by column name (the config JSON parsed)."""
        values = {f: row.get(f) for f in RUN_FIELDS}
        config = values["config"]
        values["config"] = json.loads(config) if isinstance(config, str) else dict(config or {})
        values["status"] = RunStatus(values["status"] or RunStatus.UNKNOWN)
        values["launcher"] = values["launcher"] or "local"
        values["debug"] = bool(values["debug"])
        values["tags"] = tuple(values["tags"] or ())
        return cls(**values)


#: the ``runs`` table's columns, in order
RUN_FIELDS = tuple(f.name for f in fields(Run))


@dataclass(frozen=True)
class IndexedRows:
    """What one run folder puts in the index: its ``runs`` row and its ``metrics`` rows
    (``(run_id, split, epoch, step, name, value, time)``, bound as they are)."""

    run: Run
    metrics: list[tuple]


__all__ = ["IndexedRows", "RUN_FIELDS", "Run"]
