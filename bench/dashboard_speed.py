"""How fast the Compare tab's dashboard answers over a big run store (issue: under 200 ms for 10,000 runs).

Fills a temporary workspace's DuckDB index with ``--runs`` synthetic completed runs (19 methods x 5 datasets
x 3 archs x seeds; each with the final metrics of the comparison table on test and dev, and 3 epochs of dev
metrics, as a real run logs them), then times, warm, the median of ``--repeats`` calls of:

* ``dashboard``: the Compare tab's query and table (:func:`ui.compare.dashboard`: ``Workbench.compare`` with
  mean ± std over seeds and NRG, then the formatted rows), over every run and with filters, in three states:
  nothing cached (the first query of a process), one run re-indexed since the last query (a run landed:
  ``store.ingest_run`` of a real run folder, untimed, before each call) and the index unchanged;
* ``figures``: the three Plotly charts drawn from that table (its best 24 groups by NRG);
* ``runs table``: the Runs tab's query (``Workbench.runs_frame``, newest 1000).

Rows go straight into the index (``--folders`` writes real run folders and indexes them with ``sync``
instead: the same rows, slower to set up).

    python bench/dashboard_speed.py [--runs 10000] [--repeats 10] [--folders]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATASETS = ("demo", "movies", "multirc", "esnli", "fever")
ARCHS = ("default", "roberta-base", "bigbird")


def fill(ws: Path, n_runs: int, folders: bool) -> int:
    import numpy as np

    from unirex.methods import list_methods
    from workbench.compare import compare_metrics

    names = compare_metrics()

    methods = [m.id for m in list_methods()]
    rng = np.random.default_rng(0)
    combos = [(m, d, a) for m in methods for d in DATASETS for a in ARCHS]
    runs, metrics = [], []
    t0 = time.time() - n_runs
    for i in range(n_runs):
        method, dataset, arch = combos[i % len(combos)]
        seed = i // len(combos)
        run_id = f"R-20260101-000000-{i:06x}"
        created = t0 + i
        runs.append((run_id, "completed", method, dataset, arch, seed, "train", None, "{}", created, created,
                     created + 60, 60.0, None, str(ws / "runs" / run_id), created, f"python -m unirex method={method}",
                     "local", ""))
        base = rng.uniform(0.2, 0.9, len(names))
        for split in ("test", "dev"):
            for name, v in zip(names, base + rng.normal(0, 0.02, len(base))):
                metrics.append((run_id, split, None, 100, name, float(v), created + 60))
        for epoch in range(3):
            for name, v in zip(names[:10], base[:10]):
                metrics.append((run_id, "dev", epoch, 30 * (epoch + 1), name, float(v), created + 20 * epoch))
    if folders:
        return _folders(ws, runs, metrics)
    from store import connect
    from store.db import store_lock

    import polars as pl

    run_cols = ["run_id", "status", "method", "dataset", "arch", "seed", "mode", "parent_run", "config", "created_at",
                "started_at", "ended_at", "duration_s", "error", "run_dir", "ingested_at", "command", "launcher",
                "signature"]
    runs_df = pl.DataFrame(runs, schema=run_cols, orient="row", infer_schema_length=None).to_arrow()
    metrics_df = pl.DataFrame(metrics, schema=["run_id", "split", "epoch", "step", "name", "value", "time"],
                              orient="row", infer_schema_length=None).to_arrow()
    with store_lock(ws), connect(ws) as con:
        con.register("runs_df", runs_df)
        con.register("metrics_df", metrics_df)
        con.execute("BEGIN TRANSACTION")
        con.execute(f"INSERT INTO runs ({', '.join(run_cols)}) SELECT {', '.join(run_cols)} FROM runs_df")
        con.execute("INSERT INTO metrics SELECT run_id, split, epoch, step, name, value, time FROM metrics_df")
        con.execute("COMMIT")
    return len(metrics)


def _folders(ws: Path, runs, metrics) -> int:
    from collections import defaultdict

    from store import sync
    from unirex.runs import RunDir

    by_run = defaultdict(list)
    for m in metrics:
        by_run[m[0]].append(m)
    for r in runs:
        rd = RunDir.create(ws / "runs", {}, {"method": r[2], "dataset": r[3], "arch": r[4], "seed": r[5],
                                              "mode": "train", "command": r[16]}, run_id=r[0])
        for split, epoch in {(m[1], m[2]) for m in by_run[r[0]]}:
            rd.log_metrics({m[4]: m[5] for m in by_run[r[0]] if m[1] == split and m[2] == epoch}, split, epoch)
        rd.set_status("completed")
    sync(ws)
    return len(metrics)


def landing_run(ws: Path):
    """A real run folder (one of the bench's groups, its final metrics on test and dev) indexed into ``ws``:
    re-ingesting it before a query is a run landing in the index."""
    from store import ingest_run
    from unirex.runs import RunDir
    from workbench.compare import compare_metrics

    existing = sorted((ws / "runs").glob("R-*-landing")) if (ws / "runs").is_dir() else []
    if existing:
        return RunDir(existing[0])
    rd = RunDir.create(ws / "runs", {}, {"method": "task_lm", "dataset": "demo", "arch": "default", "seed": 99,
                                         "mode": "train", "command": "python -m unirex method=task_lm"},
                       run_id="R-20990101-000000-landing")
    for split in ("test", "dev"):
        rd.log_metrics({name: 0.5 for name in compare_metrics()}, split)
    rd.set_status("completed")
    ingest_run(ws, rd)
    return rd


def timed(fn, repeats: int, before=None) -> tuple[str, object]:
    """``min / median wall ms (median CPU ms)`` of ``repeats`` calls after a warm-up; ``before()`` runs
    ahead of each call, untimed."""
    if before:
        before()
    out = fn()  # warm-up (imports, DuckDB's first open)
    walls, cpus = [], []
    for _ in range(repeats):
        if before:
            before()
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return (f"{min(walls) * 1000:6.1f} / {statistics.median(walls) * 1000:6.1f} ms "
            f"(CPU {statistics.median(cpus) * 1000:6.1f} ms)"), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--folders", action="store_true", help="write real run folders and sync them")
    p.add_argument("--workspace", help="use this workspace (filled unless its index already holds runs)")
    args = p.parse_args()

    from ui import figures
    from ui.compare import chart_rows, dashboard, label_of
    from workbench import RunFilter, Workbench

    ws = Path(args.workspace or tempfile.mkdtemp(prefix="unirex-dash-"))
    wb = Workbench(ws)
    have = wb.runs_frame(limit=None, metrics=()).height
    if have:
        args.runs = have
        print(f"{have:,} runs already indexed in {ws}")
    else:
        t = time.time()
        n_metrics = fill(ws, args.runs, args.folders)
        print(f"{args.runs:,} runs, {n_metrics:,} metric rows indexed in {time.time() - t:.1f} s ({ws})")
    cases = {
        "dashboard, all runs (19 methods x 5 datasets x 3 archs)": dict(),
        "dashboard, one dataset and arch, 3 methods, seeds 0-2": dict(
            dataset="movies", arch="default", methods=("task_lm", "slm_plaus_linear", "fresh"), seeds="0,1,2"),
        "dashboard, one dataset, one row per method": dict(dataset="demo", by=("method",)),
    }
    from store import ingest_run
    from workbench import compare as compare_mod

    landing = landing_run(ws)
    print(f"min / median wall time of {args.repeats} calls (median CPU time of this process, all threads); "
          f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name, kw in cases.items():
        kw = {"by": ("method", "dataset", "arch"), **kw}
        cold, _ = timed(lambda kw=kw: dashboard(wb, **kw), args.repeats, before=compare_mod._CACHE.clear)
        landed, _ = timed(lambda kw=kw: dashboard(wb, **kw), args.repeats, before=lambda: ingest_run(ws, landing))
        warm, (cmp, headers, rows, _) = timed(lambda kw=kw: dashboard(wb, **kw), args.repeats)
        print(f"  {name} ({len(rows)} rows over {cmp.runs['run_id'].n_unique():,} runs)\n"
              f"      nothing cached (a process's first query):   {cold}\n"
              f"      one run re-indexed since the last query:    {landed}\n"
              f"      index unchanged (filters changed):          {warm}")
    cmp, *_ = dashboard(wb, by=("method", "dataset", "arch"))
    recs, _ = chart_rows(cmp)
    lab = label_of(cmp.by)
    t, _ = timed(lambda: (figures.scatter(recs, "nrg_faithfulness", "nrg_plausibility", lab, "s"),
                          figures.bars(recs, ["comp_aopc", "suff_aopc", "plaus_auprc"], lab),
                          figures.bin_curves(recs, lab)), args.repeats)
    print(f"  the three charts (the best {len(recs)} groups): {t}")
    t, _ = timed(lambda: wb.runs_frame(RunFilter(), split="test", limit=1000), args.repeats)
    print(f"  Runs tab table (newest 1000 of {args.runs:,} with headline metrics): {t}")


if __name__ == "__main__":
    main()
