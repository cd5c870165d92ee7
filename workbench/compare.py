"""Comparing methods: mean and standard deviation over seeds per group, and NRG over the groups.

Which runs count (:func:`counted_runs`): one evaluation per trained model and dataset, the latest evaluation
of a checkpoint standing for the run that trained it (an Evaluate run never adds a run, and the model keeps
its own seed); debug runs are left out unless asked (:meth:`workbench.Workbench.compare`'s ``include_debug``).
The store returns the final metrics of the chosen runs on one split (:func:`store.final_metric_rows`, one
query, kept in a small in-process cache that, when the index file changed, re-reads only the runs that
changed: :func:`runs_metrics`),
aggregated here per group (Polars; :func:`store.aggregate` for groupings the per-run frame lacks); NRG
(:func:`unirex.metrics.nrg`) is computed over the groups' mean metrics, so each compared method (on a
dataset and arch) is one entry, as in the paper's tables. The same numbers feed the app's dashboard and
``python -m unirex compare``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from store import RunFilter, aggregate, final_metric_rows, final_metric_updates
from unirex.errors import UnirexError, did_you_mean
from unirex.metrics.nrg import CONVENTIONS, DEFAULT_CONVENTION
from unirex.metrics.registry import metric_keys
from unirex.metrics.stats import PairTest, adjust, percentile_interval
from workbench.records import Comparison, GroupLabels, PairLabels


def compare_metrics() -> tuple[str, ...]:
    """Metrics of the comparison table (final evaluation), in display order: the registry's compared
    metrics (:mod:`unirex.metrics.registry`); NRG's own metrics are added (:func:`metric_names`)."""
    return metric_keys(compared=True)


def nrg_spec(convention: str) -> dict[str, dict[str, bool]]:
    """NRG's composition under a metric convention (``paper`` or ``eraser``, :mod:`unirex.metrics.nrg`)."""
    from unirex.metrics.nrg import nrg_spec as spec

    return spec(convention)


@dataclass(frozen=True)
class _Held:
    """One cached read: the index file's stamp it is current at, its runs' versions, their final metric rows
    (of every convention's metrics) and lineage, and the counted runs per requested metrics (filled on demand)."""

    stamp: tuple
    versions: dict[str, int]
    rows: pl.DataFrame
    lineage: pl.DataFrame
    counted: dict[tuple[str, ...], tuple[pl.DataFrame, pl.DataFrame]] = field(default_factory=dict)


_CACHE: OrderedDict[tuple, _Held] = OrderedDict()
_CACHE_SIZE = 4
_CACHE_LOCK = threading.Lock()


def metric_names(convention: str = DEFAULT_CONVENTION) -> tuple[str, ...]:
    """The metrics a comparison reads: the table's and those NRG uses under ``convention``."""
    spec = nrg_spec(convention)
    return tuple(dict.fromkeys(compare_metrics() + tuple(m for d in spec.values() for m in d)))


def _store_stamp(workspace: Path) -> tuple:
    """What changes whenever the index does: the database file and its write-ahead log (inode, size, mtime)."""
    from store import db_path

    path = db_path(workspace)
    out = []
    for p in (path, Path(str(path) + ".wal")):
        try:
            st = os.stat(p)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def counted_runs(rows: pl.DataFrame, lineage: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Which runs count: one evaluation per trained model and dataset. A model is the run that trained it (a
    train or finetune run); an Evaluate run of a checkpoint (``mode`` evaluate, ``parent_run`` the run that
    saved it) stands for that run instead of adding one; of a model's runs with final metrics in ``rows`` on
    a dataset, the latest (``created_at``, then run id) stands for it.

    ``rows``: the long frame of :func:`store.final_metric_rows`; ``lineage``: :func:`store.run_lineage` of (at
    least) those runs. Returns ``(rows, models)``: the rows of the standing runs with ``model_run`` (the trained
    model's run id) and ``seed`` the model's seed (the parent's when indexed: an evaluation's own seed is only
    its command's); ``models``, one row per standing run: ``run_id``, ``model_run`` and ``tags`` (the union of
    the tags of the model's runs on that dataset). Per run, not per metric row: cheap over 10,000 runs."""
    present = lineage.join(rows.select("run_id").unique(), on="run_id", how="semi")
    is_eval = (pl.col("mode") == "evaluate") & pl.col("parent_run").is_not_null()
    if not present.select(is_eval.any()).item():  # no evaluation of a checkpoint: every run is its own model
        return (rows.with_columns(pl.col("run_id").alias("model_run")),
                present.select("run_id", pl.col("run_id").alias("model_run"), "tags"))
    per_run = present.with_columns(
        pl.when(is_eval).then(pl.col("parent_run")).otherwise(pl.col("run_id")).alias("model_run"),
        pl.when(is_eval & pl.col("parent_seed").is_not_null()).then(pl.col("parent_seed")).otherwise(pl.col("seed"))
        .alias("model_seed"))
    models = (per_run.sort(["created_at", "run_id"], nulls_last=False)
              .group_by(["model_run", "dataset"], maintain_order=True)
              .agg(pl.col("run_id").last(), pl.col("model_seed").last(),
                   pl.col("tags").list.explode(keep_nulls=False, empty_as_null=False).unique(maintain_order=True)))
    out = (rows.join(models.select("run_id", "model_run", "model_seed"), on="run_id", how="inner")
           .with_columns(pl.col("model_seed").cast(rows.schema["seed"]).alias("seed")).drop("model_seed"))
    return out, models.select("run_id", "model_run", "tags")


def _read_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """The metrics the cached frame holds for a request of ``names``: every convention's (so the dashboard
    and its filter choices, which ask for different conventions, share one read), or all with ``()``."""
    if not names:
        return ()
    return tuple(dict.fromkeys([*(m for c in CONVENTIONS for m in metric_names(c)), *names]))


def _held(workspace: Path, which: RunFilter, split: str, read: tuple[str, ...]) -> _Held:
    """The cached read of the runs ``which`` selects, brought up to date: when the index file changed, only
    the runs new or changed since are read again (:func:`store.final_metric_updates`)."""
    key = (str(Path(workspace).resolve()), split, read, which.status, which.mode, which.debug)
    stamp = _store_stamp(workspace)  # before reading: a write during the read makes the next call look again
    with _CACHE_LOCK:
        held = _CACHE.get(key)
        if held is not None:
            _CACHE.move_to_end(key)
    if held is not None and held.stamp == stamp:
        return held
    upd = final_metric_updates(workspace, which, split, read, known=None if held is None else held.versions)
    rows = upd.rows
    if not upd.full:
        rows = held.rows.filter(~pl.col("run_id").is_in(list(upd.drop))) if upd.drop else held.rows
        if upd.rows.height:
            rows = pl.concat([rows, upd.rows], how="vertical_relaxed")
    held = _Held(stamp=stamp, versions=upd.versions, rows=rows, lineage=upd.lineage)
    with _CACHE_LOCK:
        _CACHE[key] = held
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return held


def runs_metrics(workspace: Path, flt: RunFilter, split: str, names: tuple[str, ...]) -> pl.DataFrame:
    """The final metrics (:func:`store.final_metric_rows`) of the runs that count (:func:`counted_runs`) among those
    ``flt`` selects, through a small in-process cache: the rows of every run with ``flt``'s status and mode,
    less debug runs when ``flt.debug`` is False, are held per state of the index (its file stamp; when it
    changed, only the runs new or changed since are read again) and resolved to one evaluation per model once
    per state; the other filters (dataset, arch, methods, seeds, tags, runs) are applied here to the models, so
    a dashboard changing its filters over an unchanged store does not re-read the database. ``flt.run_ids``
    picks models by any of their runs (the training run or an evaluation of it); ``flt.tags`` matches the tags
    of any run of the model."""
    names = tuple(names)
    read = _read_names(names)
    held = _held(workspace, RunFilter(status=flt.status, mode=flt.mode, debug=flt.debug), split, read)
    cached = held.counted.get(names)
    if cached is None:  # counted over the requested metrics' rows, as one query of just those would have been
        rows = held.rows if read == names else held.rows.filter(pl.col("name").is_in(list(names)))
        cached = held.counted[names] = counted_runs(rows, held.lineage)
    base, models = cached
    cond = pl.lit(True)
    for col in ("dataset", "method", "arch"):
        if getattr(flt, col) not in (None, ""):
            cond = cond & (pl.col(col) == getattr(flt, col))
    for col, values in (("seed", flt.seeds), ("method", flt.methods)):
        if values:
            cond = cond & pl.col(col).is_in(list(values))
    if flt.run_ids:
        cond = cond & (pl.col("run_id").is_in(list(flt.run_ids)) | pl.col("model_run").is_in(list(flt.run_ids)))
    if flt.tags:
        tagged = models.filter(pl.all_horizontal(pl.col("tags").list.contains(t) for t in flt.tags))["run_id"]
        cond = cond & pl.col("run_id").is_in(tagged.implode())
    return base.filter(cond)


def _group_key(row: dict, by: tuple[str, ...]) -> str:
    return " / ".join(str(row[b]) for b in by)


def _mean(values: list) -> float | None:
    ok = [v for v in values if v is not None and v == v]
    return sum(ok) / len(ok) if len(ok) == len(values) and ok else None


def _dataset_of(r: dict) -> str:
    return str(r["dataset"]) if "dataset" in r else ""


def _nrg_per_dataset(per_ds: dict[str, list[dict]], by: tuple[str, ...], present: list[str], spec) -> tuple:
    """NRG within each dataset (min-max over its groups only): ``({(dataset, group): {nrg, nrg_<d>}}, {dataset:
    metrics used}, desiderata missing somewhere)``."""
    from unirex.metrics.nrg import nrg

    used_by_ds: dict[str, dict[str, list[str]]] = {}
    cell_nrg: dict[tuple[str, str], dict[str, float | None]] = {}
    missing: list[str] = []
    for ds, rows in per_ds.items():
        res = nrg({_group_key(r, by): {m: r[f"{m}_mean"] for m in present} for r in rows}, spec)
        used_by_ds[ds] = dict(res.used)
        missing.extend(d for d in res.missing if d not in missing)
        for r in rows:
            k = _group_key(r, by)
            cell_nrg[(ds, k)] = {"nrg": res.nrg[k], **{f"nrg_{d}": res.by_desideratum[k].get(d) for d in spec}}
    return cell_nrg, used_by_ds, missing


def _no_intervals(keys: list[str], present: list[str]) -> tuple:
    ci: dict[str, list] = {c: [None] * len(keys) for c in
                           ("nrg_ci_low", "nrg_ci_high", *[f"{m}_ci_{e}" for m in present for e in ("low", "high")])}
    best: dict[str, list[bool]] = {f"{m}_best": [False] * len(keys) for m in present}
    return ci, best, [None] * len(keys), {}


def _intervals(runs_root: Path, split: str, by: tuple[str, ...], present: list[str], spec, per_ds, used_by_ds,
               parts: dict[str, list[tuple[str, int]]], keys: list[str]) -> tuple:
    """The bootstrap of the groups (:mod:`workbench.stats`) and the table's columns from it: ``(uncertainty,
    {<m>_ci_low/high, nrg_ci_low/high: [per row]}, {<m>_best: [per row]}, ci_over per row, {(dataset, group):
    NRG interval})``."""
    from workbench import stats

    ci, best, over, cell_ci = _no_intervals(keys, present)
    groups = {ds: {_group_key(r, by): list(r["run_ids"]) for r in rows} for ds, rows in per_ds.items()}
    unc = stats.uncertainty(runs_root, groups, split, present, stamp=_store_stamp(runs_root.parent))
    nrg_reps = stats.nrg_estimates(unc, used_by_ds, spec, {ds: list(g) for ds, g in groups.items()})
    for key, reps in nrg_reps.items():
        ds, k = key.split("\x00", 1)
        cell_ci[(ds, k)] = percentile_interval(reps, unc.alpha)
    winners = {(ds, m): stats.best_is_significant(b, m, unc.alpha) for ds, b in unc.bootstraps.items()
               for m in present}
    for i, k in enumerate(keys):
        for m in present:
            est = stats.group_estimate(unc, parts[k], k, m)
            if est is not None:
                ci[f"{m}_ci_low"][i], ci[f"{m}_ci_high"][i] = est.interval(unc.alpha)
            if len(parts[k]) == 1 and winners.get((parts[k][0][0], m)) == k:
                best[f"{m}_best"][i] = True
        reps = [nrg_reps.get(f"{ds}\x00{k}") for ds, _ in parts[k]]
        if reps and all(r is not None for r in reps):
            ci["nrg_ci_low"][i], ci["nrg_ci_high"][i] = percentile_interval(sum(reps) / len(reps), unc.alpha)
        kinds = {unc.over(ds, k) for ds, _ in parts[k]}
        over[i] = None if None in kinds else ("seeds and examples" if "seeds and examples" in kinds else "examples")
    return unc, ci, best, over, cell_ci


def _nrg_frames(cell_rows: list[dict], cell_by: tuple[str, ...], by: tuple[str, ...], cell_nrg, cell_ci,
                nrg_cols: list[str]) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """``(NRG per (group, dataset), the cross-dataset summary)`` (see :class:`Comparison`)."""
    if "dataset" not in cell_by:
        return None, None
    by_dataset = pl.DataFrame(
        [{**{b: r[b] for b in cell_by}, **cell_nrg[(_dataset_of(r), _group_key(r, by))],
          "nrg_ci_low": cell_ci.get((_dataset_of(r), _group_key(r, by)), (None, None))[0],
          "nrg_ci_high": cell_ci.get((_dataset_of(r), _group_key(r, by)), (None, None))[1]} for r in cell_rows],
        schema={**{b: pl.Utf8 for b in cell_by}, **{c: pl.Float64 for c in nrg_cols},
                "nrg_ci_low": pl.Float64, "nrg_ci_high": pl.Float64})
    rest = [b for b in by if b != "dataset"]
    if "dataset" not in by or not rest:
        return by_dataset, None
    summary = (by_dataset.group_by(rest).agg(pl.col("nrg").mean().alias("nrg_mean_over_datasets"),
                                             pl.col("dataset").sort().alias("datasets"))
               .sort(["nrg_mean_over_datasets", *rest], descending=[True, *[False] * len(rest)], nulls_last=True))
    return by_dataset, summary


def compare(workspace: Path, flt: RunFilter, split: str = "test", by: tuple[str, ...] = ("method", "dataset", "arch"),
            convention: str = DEFAULT_CONVENTION, intervals: bool = True) -> Comparison:
    """One row per group of runs (``by``), metrics as ``<name>_mean`` / ``<name>_std`` and, with
    ``intervals``, ``<name>_ci_low`` / ``<name>_ci_high`` (95%, :mod:`workbench.stats`) and ``<name>_best``
    (the group best on it, significantly better than the runner-up on its dataset); NRG per dataset
    (min-max over the groups of one dataset, never across datasets), a group's ``nrg`` the mean of its
    per-dataset NRGs, with ``nrg_ci_low`` / ``nrg_ci_high``."""
    spec = nrg_spec(convention)
    names = metric_names(convention)
    runs = runs_metrics(workspace, flt, split, names)
    if runs.height == 0:
        empty = pl.DataFrame({b: [] for b in by})
        return Comparison(table=empty, runs=runs, split=split, by=tuple(by), metrics=(), convention=convention,
                          nrg_metrics={}, nrg_missing=[])
    by = tuple(by)
    if set(by) <= set(runs.columns):  # one query; mean and sample std over each group's runs computed here
        cell_by = by if "dataset" in by else (*by, "dataset")
        per_run = runs.pivot(on="name", index=["run_id", "seed", *cell_by], values="value", aggregate_function="last")
        present = [m for m in names if m in per_run.columns]
        table = per_run.group_by(list(by)).agg(
            pl.col("run_id").n_unique().alias("n"), pl.col("seed").unique().sort().alias("seeds"),
            *[pl.col(m).mean().alias(f"{m}_mean") for m in present],
            *[pl.col(m).std(ddof=1).alias(f"{m}_std") for m in present])
        cells = per_run.group_by(list(cell_by)).agg(pl.col("run_id").unique().sort().alias("run_ids"),
                                                    *[pl.col(m).mean().alias(f"{m}_mean") for m in present])
    else:  # grouping by a run column the per-run frame lacks (mode, status): the store aggregates
        long = aggregate(workspace, flt, split=split, names=names, by=by)
        wide_mean = long.pivot(on="name", index=list(by), values="mean")
        wide_std = long.pivot(on="name", index=list(by), values="std")
        present = [m for m in names if m in wide_mean.columns]
        counts = long.group_by(list(by)).agg(pl.col("n").max().alias("n"),
                                             pl.col("seeds").first().alias("seeds"))
        table = (wide_mean.rename({m: f"{m}_mean" for m in present})
                 .join(wide_std.rename({m: f"{m}_std" for m in present}), on=list(by), how="left")
                 .join(counts, on=list(by), how="left"))
        cell_by, cells = by, None  # no per-run frame: one NRG over the groups (per dataset when grouped by it)
    cell_rows = list((cells if cells is not None else table).iter_rows(named=True))

    per_ds: dict[str, list[dict]] = {}
    for r in cell_rows:
        per_ds.setdefault(_dataset_of(r), []).append(r)
    cell_nrg, used_by_ds, missing = _nrg_per_dataset(per_ds, by, present, spec)
    used = {d: m for d, m in next(iter(used_by_ds.values())).items()
            if all(ud.get(d) == m for ud in used_by_ds.values())}
    parts: dict[str, list[tuple[str, int]]] = {}
    for r in cell_rows:
        parts.setdefault(_group_key(r, by), []).append((_dataset_of(r), len(r.get("run_ids") or []) or r.get("n") or 1))
    keys = [_group_key(r, by) for r in table.iter_rows(named=True)]
    nrg_cols = ["nrg", *[f"nrg_{d}" for d in spec]]
    table = table.with_columns(*[pl.Series(c, [_mean([cell_nrg[(ds, k)][c] for ds, _ in parts[k]]) for k in keys],
                                           dtype=pl.Float64) for c in nrg_cols])

    unc, ci, best, over, cell_ci = None, *_no_intervals(keys, present)
    if intervals and cells is not None:
        unc, ci, best, over, cell_ci = _intervals(Path(workspace) / "runs", split, by, present, spec, per_ds,
                                                  used_by_ds, parts, keys)
    table = table.with_columns(*[pl.Series(c, v, dtype=pl.Float64) for c, v in ci.items()],
                               *[pl.Series(c, v, dtype=pl.Boolean) for c, v in best.items()],
                               pl.Series("ci_over", over, dtype=pl.Utf8))
    order = [*by, "n", "seeds", "nrg", *[f"nrg_{d}" for d in spec], "nrg_ci_low", "nrg_ci_high", "ci_over",
             *[c for m in present for c in (f"{m}_mean", f"{m}_std", f"{m}_ci_low", f"{m}_ci_high", f"{m}_best")]]
    table = table.select(order).sort(["nrg", *by], descending=[True, *[False] * len(by)], nulls_last=True)
    by_dataset, summary = _nrg_frames(cell_rows, cell_by, by, cell_nrg, cell_ci, nrg_cols)
    return Comparison(table=table, runs=runs, split=split, by=by, metrics=tuple(present),
                      convention=convention, nrg_metrics=used, nrg_missing=missing, nrg_by_dataset=by_dataset,
                      nrg_summary=summary, uncertainty=unc)


def pairwise(cmp: Comparison, metric: str, pair: tuple[str, str] | None = None) -> list[PairTest]:
    """Paired tests of every two groups of ``cmp`` on the same dataset on ``metric`` (Holm-adjusted over the
    pairs), or of the one ``pair`` of group labels; a :class:`UnirexError` naming the closest metric or label
    for an unknown one, or for a pair on different datasets."""
    from workbench import stats

    if metric not in cmp.metrics:
        known = list(cmp.metrics) or list(compare_metrics())
        hint = did_you_mean(metric, known, cutoff=0.5) or f"; the compared metrics: {', '.join(known)}"
        raise UnirexError(f"unknown metric {metric!r}{hint}")
    if cmp.uncertainty is None:
        return []
    if pair is not None:
        labels = {_group_key(r, cmp.by) for r in cmp.table.iter_rows(named=True)}
        for lab in pair:
            if lab not in labels:
                raise UnirexError(f"no group {lab!r} in the comparison{did_you_mean(lab, sorted(labels), cutoff=0.5)}")
        where = {lab: {ds for ds, b in cmp.uncertainty.bootstraps.items() if lab in b.estimates} |
                 {ds for ds, why in cmp.uncertainty.left_out.items() if lab in why} for lab in pair}
        common = where[pair[0]] & where[pair[1]]
        if not common:
            on = [", ".join(sorted(where[lab])) or "?" for lab in pair]
            raise UnirexError(f"{pair[0]!r} and {pair[1]!r} are on different datasets ({on[0]} vs {on[1]}): "
                              "a paired test compares groups on the same examples")
        tests = [t for t in stats.pair_tests(cmp.uncertainty, metric)
                 if {t.a, t.b} == set(pair) and t.dataset in common]
        return adjust(tests, cmp.uncertainty.alpha)
    return stats.pair_tests(cmp.uncertainty, metric)


def group_labels(by, rows) -> GroupLabels:
    """Short names for the groups of ``rows`` (dicts holding the ``by`` columns): only the columns whose value
    differs between them (the first column when none does: one group keeps a name), what they all share once."""
    rows = list(rows)
    cols = [b for b in by if len({r.get(b) for r in rows}) > 1] or list(by)[:1]
    shared = tuple((b, str(rows[0].get(b))) for b in by if b not in cols) if rows else ()
    return GroupLabels(columns=tuple(cols), shared=shared)


def pair_labels(cmp: Comparison, tests: list[PairTest]) -> PairLabels:
    """The labels of the paired-tests matrix of ``tests`` (:func:`pairwise` of ``cmp``): each side named by the
    parts of its group (and its dataset, where ``by`` has none) that differ between the tested groups; the
    parts they all share, the split first, said once (``PairLabels.groups.caption``)."""
    rows_of = {_group_key(r, cmp.by): r for r in cmp.table.iter_rows(named=True)}
    cols = (*cmp.by, *(() if "dataset" in cmp.by else ("dataset",)))
    sides: dict[tuple[str, str | None], dict] = {}
    for t in tests:
        for key in (t.a, t.b):
            row = rows_of.get(key, {})
            sides[(key, t.dataset)] = {**{b: row.get(b) for b in cmp.by}, "dataset": t.dataset}
    gl = group_labels(cols, sides.values())
    groups = GroupLabels(columns=gl.columns, shared=(("split", cmp.split), *gl.shared))
    return PairLabels(names={side: gl.label(row) for side, row in sides.items()}, groups=groups)


def nrg_of_runs(workspace: Path, run_ids: list[str], split: str = "test", convention: str = DEFAULT_CONVENTION):
    """NRG over individual runs (each its own entry)."""
    from unirex.metrics.nrg import nrg

    if not run_ids:
        raise UnirexError("choose at least one run")
    spec = nrg_spec(convention)
    names = tuple(m for d in spec.values() for m in d)
    df = final_metric_rows(workspace, RunFilter(run_ids=tuple(run_ids)), split=split, names=names)
    entries = {r: {} for r in run_ids}
    for row in df.iter_rows(named=True):
        entries[row["run_id"]][row["name"]] = row["value"]
    return nrg(entries, spec)


__all__ = ["CONVENTIONS", "compare_metrics", "compare", "counted_runs", "group_labels", "metric_names", "nrg_of_runs",
           "nrg_spec", "pair_labels", "pairwise", "runs_metrics"]
