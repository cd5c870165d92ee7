"""Comparing methods: mean and standard deviation over seeds per group, and NRG over the groups.

The store aggregates the final metrics of the chosen runs on one split (:func:`store.aggregate`); NRG
(:func:`unirex.metrics.nrg`) is computed over the groups' mean metrics, so each compared method (on a
dataset and arch) is one entry, as in the paper's tables. The same numbers feed the app's dashboard and
``python -m unirex compare``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from store import RunFilter, aggregate, final_metrics
from unirex.errors import UnirexError
from unirex.metrics.faithfulness import BINS
from unirex.metrics.nrg import CONVENTIONS, DEFAULT_CONVENTION
from workbench.records import Comparison

#: metrics of the comparison table (final evaluation), in display order; NRG's own metrics are added
COMPARE_METRICS = ("acc", "macro_f1", "task_ref", "comp_aopc", "suff_aopc", "plaus_auprc", "plaus_token_f1",
                   "plaus_iou_f1", "plaus_ref_auprc", "plaus_ref_token_f1",
                   *(f"comp_k{k}" for k in BINS), *(f"suff_k{k}" for k in BINS))


def nrg_spec(convention: str) -> dict[str, dict[str, bool]]:
    """NRG's composition under a metric convention (``paper`` or ``eraser``, :mod:`unirex.metrics.nrg`)."""
    from unirex.metrics.nrg import nrg_spec as spec

    return spec(convention)


def _group_key(row: dict, by: tuple[str, ...]) -> str:
    return " / ".join(str(row[b]) for b in by)


def compare(workspace: Path, flt: RunFilter, split: str = "test", by: tuple[str, ...] = ("method", "dataset", "arch"),
            convention: str = DEFAULT_CONVENTION) -> Comparison:
    """One row per group of runs (``by``), metrics as ``<name>_mean`` / ``<name>_std``, NRG over the groups."""
    from unirex.metrics.nrg import nrg

    spec = nrg_spec(convention)
    names = tuple(dict.fromkeys(COMPARE_METRICS + tuple(m for d in spec.values() for m in d)))
    long = aggregate(workspace, flt, split=split, names=names, by=by)
    runs = final_metrics(workspace, flt, split=split, names=names)
    if long.height == 0:
        empty = pl.DataFrame({b: [] for b in by})
        return Comparison(table=empty, runs=runs, split=split, by=tuple(by), metrics=(), convention=convention,
                          nrg_metrics={}, nrg_missing=[])
    wide_mean = long.pivot(on="name", index=list(by), values="mean")
    wide_std = long.pivot(on="name", index=list(by), values="std")
    present = [m for m in names if m in wide_mean.columns]
    counts = runs.group_by(list(by)).agg(pl.col("run_id").n_unique().alias("n"),
                                         pl.col("seed").unique().sort().alias("seeds"))
    table = (wide_mean.rename({m: f"{m}_mean" for m in present})
             .join(wide_std.rename({m: f"{m}_std" for m in present}), on=list(by), how="left")
             .join(counts, on=list(by), how="left"))
    entries = {_group_key(r, by): {m: r[f"{m}_mean"] for m in present} for r in table.iter_rows(named=True)}
    res = nrg(entries, spec)
    keys = [_group_key(r, by) for r in table.iter_rows(named=True)]
    table = table.with_columns(
        pl.Series("nrg", [res.nrg[k] for k in keys], dtype=pl.Float64),
        *[pl.Series(f"nrg_{d}", [res.by_desideratum[k].get(d) for k in keys], dtype=pl.Float64) for d in spec])
    order = [*by, "n", "seeds", "nrg", *[f"nrg_{d}" for d in spec],
             *[c for m in present for c in (f"{m}_mean", f"{m}_std")]]
    table = table.select(order).sort("nrg", descending=True, nulls_last=True)
    return Comparison(table=table, runs=runs, split=split, by=tuple(by), metrics=tuple(present),
                      convention=convention, nrg_metrics=dict(res.used), nrg_missing=list(res.missing))


def nrg_of_runs(workspace: Path, run_ids: list[str], split: str = "test", convention: str = DEFAULT_CONVENTION):
    """NRG over individual runs (each its own entry)."""
    from unirex.metrics.nrg import nrg

    if not run_ids:
        raise UnirexError("choose at least one run")
    spec = nrg_spec(convention)
    names = tuple(m for d in spec.values() for m in d)
    df = final_metrics(workspace, RunFilter(run_ids=tuple(run_ids)), split=split, names=names)
    entries = {r: {} for r in run_ids}
    for row in df.iter_rows(named=True):
        entries[row["run_id"]][row["name"]] = row["value"]
    return nrg(entries, spec)


__all__ = ["COMPARE_METRICS", "CONVENTIONS", "compare", "nrg_of_runs", "nrg_spec"]
