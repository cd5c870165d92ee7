"""Run the paper's method grid on the built-in datasets and write the comparison tables.

    python bench/reproduce.py                       # every method, seeds 0,1,2, both datasets, whole splits
    python bench/reproduce.py --datasets demo --num_train 400 --methods task_lm,sgt,slm_plaus_linear --seeds 0
    python bench/reproduce.py ... --resume          # reuse the runs an interrupted invocation finished
    python bench/reproduce.py ... --table-only      # no training: the table of what the workspace holds

Each (method, seed) is one engine run (one epoch by default) on the bundled MiniLM (``--arch``), in the
workspace ``bench/out/reproduce``; FRESH and L2E read the attributions of that seed's Task LM run
(``model.save_outputs=True``). The table gives the test split's task macro F1 and accuracy,
comprehensiveness and sufficiency AOPC, AUPRC and token F1 (ERASER word level), as mean ± std over
seeds, NRG computed over the methods' means, and each method's training throughput relative to Task LM
measured in the same invocation. Beside ERASER's metrics the table gives the reference code's variants
(``comp_aopc_unirex``, ``suff_aopc_unirex``, ``plaus_ref_auprc``, ``task_ref``) and NRG under both
conventions (paper: the reference's metrics; ERASER: ERASER's). One table per dataset (``--datasets``,
default ``demo,demo_nli``; ``--num_train`` takes one value or one per dataset). It is printed, written to
``bench/out/reproduce-<dataset>.md`` and ``.json``, and with ``--readme`` placed in README.md between the
``reproduce-table-<dataset>`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from unirex.engine import resolve_run_config, run  # noqa: E402
from unirex.methods import list_methods  # noqa: E402
from unirex.metrics.nrg import nrg  # noqa: E402
from unirex.runs import RunDir, list_runs  # noqa: E402

#: ERASER's metrics, then the reference code's (UNIREX's) variants
COLUMNS = [("macro_f1", "task F1"), ("acc", "acc"), ("comp_aopc", "comp ↑"), ("suff_aopc", "suff ↓"),
           ("plaus_auprc", "AUPRC"), ("plaus_token_f1", "token F1"),
           ("task_ref", "task (ref)"), ("comp_aopc_unirex", "comp (ref) ↑"), ("suff_aopc_unirex", "suff (ref) ↓"),
           ("plaus_ref_auprc", "AUPRC (ref)")]
DATASET_SIZES = {"demo": 2000, "demo_nli": 3000}  # train examples of the built-in datasets


def fmt(values: list[float]) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def finished_run(runs_root: Path, method: str, seed: int, removal: str = "drop", dataset: str = "demo",
                 num_train: int | None = None, protocol: str = "reference") -> RunDir | None:
    """The newest completed training run of ``method`` with ``seed`` on ``dataset`` (and train subsample) in
    the workspace, if any, trained with the same ``model.rationale_removal`` (runs from before the key
    existed masked) under the same ``protocol`` (runs from before the key existed followed ``eraser``)."""
    for rd in reversed(list_runs(runs_root)):
        meta = rd.meta()
        data = rd.config().get("data") or {}
        if (meta.get("method") == method and meta.get("seed") == seed and meta.get("mode") == "train"
                and meta.get("dataset") == dataset and data.get("num_train") == num_train
                and (rd.config().get("model") or {}).get("rationale_removal", "mask") == removal
                and rd.config().get("protocol", "eraser") == protocol
                and rd.status().get("status") == "completed"):
            return rd
    return None


#: the metrics the interval table and the paired tests cover (ERASER's, then NRG's inputs of the paper's)
INTERVAL_METRICS = [("macro_f1", "task F1"), ("comp_aopc", "comp ↑"), ("suff_aopc", "suff ↓"),
                    ("plaus_auprc", "AUPRC"), ("plaus_token_f1", "token F1")]


def interval_tables(workspace: Path, run_ids: list[str], titles: dict[str, str]) -> str:
    """The grid's runs through the workbench's comparison (:meth:`workbench.Workbench.compare`): per method,
    each metric's mean with its 95% interval (a hierarchical bootstrap over seeds and test examples; over
    examples only with one seed), ★ where the best method is significantly better than the runner-up, then the
    paired tests (difference, interval, Holm-adjusted p over the method pairs) that are significant."""
    from store.queries import RunFilter
    from workbench import Workbench

    wb = Workbench(workspace)
    wb.sync()
    cmp = wb.compare(RunFilter(status="completed", run_ids=tuple(run_ids)), split="test", by=("method",),
                     include_debug=True)
    rows = list(cmp.table.iter_rows(named=True))
    present = [(m, t) for m, t in INTERVAL_METRICS if m in cmp.metrics]

    def cell(r: dict, m: str) -> str:
        mean, lo, hi = r.get(f"{m}_mean"), r.get(f"{m}_ci_low"), r.get(f"{m}_ci_high")
        if mean is None:
            return "n/a"
        star = " ★" if r.get(f"{m}_best") else ""
        return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]{star}" if lo is not None and hi is not None else f"{mean:.3f}{star}"

    over = {r.get("ci_over") for r in rows} - {None}
    lines = ["| method | " + " | ".join(t for _, t in present) + " | NRG [95% CI] |",
             "|" + " --- |" * (len(present) + 2)]
    for r in rows:
        nrg_cell = (f"{r['nrg']:.3f} [{r['nrg_ci_low']:.3f}, {r['nrg_ci_high']:.3f}]"
                    if r.get("nrg") is not None and r.get("nrg_ci_low") is not None else
                    (f"{r['nrg']:.3f}" if r.get("nrg") is not None else "n/a"))
        lines.append(f"| {titles.get(r['method'], r['method'])} | " + " | ".join(cell(r, m) for m, _ in present)
                     + f" | {nrg_cell} |")
    sig = []
    for m, t in present:
        tests = wb.pairwise(m, cmp=cmp)
        hits = [x for x in tests if x.significant]
        sig.append(f"- **{t}**: {len(hits)} of {len(tests)} pairs differ significantly" + (":" if hits else "."))
        for x in sorted(hits, key=lambda x: x.p_adj):
            a, b = (x.a, x.b) if x.diff > 0 else (x.b, x.a)
            sig.append(f"  {titles.get(a, a)} > {titles.get(b, b)} by {abs(x.diff):.3f} "
                       f"[{min(abs(x.ci_low), abs(x.ci_high)):.3f}, {max(abs(x.ci_low), abs(x.ci_high)):.3f}], "
                       f"p_adj {x.p_adj:.3g}")
    note = (f"_95% intervals over {' and '.join(sorted(over)) or 'examples'} (hierarchical bootstrap, "
            f"{cmp.uncertainty.n_resamples if cmp.uncertainty is not None else 'n/a'} resamples); ★: best and "
            "significantly better than the runner-up; paired bootstrap tests by example, Holm-adjusted over the "
            "pairs of each metric, α = 0.05. NRG here is the paper's convention over these methods._")
    return "\n".join(lines) + "\n\n" + "\n".join(sig) + "\n\n" + note + "\n"


def run_grid(args, dataset: str, num_train: int | None, methods: list[str], seeds: list[int]) -> str:
    """Train and test every (method, seed) on ``dataset``; return the Markdown table (also written out)."""
    common = [f"workspace={args.workspace}", f"data={dataset}", f"arch={args.arch}", f"data.max_length={args.max_length}",
              f"training.epochs={args.epochs}", f"setup.train_batch_size={args.batch_size}",
              f"model.optimizer.lr={args.lr}", "training.eval_splits=test", f"model.rationale_removal={args.rationale_removal}",
              f"protocol={args.protocol}"]
    if num_train:
        common.append(f"data.num_train={num_train}")
    results: dict[str, list[dict]] = {m: [] for m in methods}
    t0 = time.time()
    for seed in seeds:
        teacher = None
        for mid in methods:
            extra = [f"method={mid}", f"seed={seed}"]
            if mid == "task_lm":
                extra.append("model.save_outputs=True")
            if mid == "fresh":
                extra.append(f"data.fresh_exp_id={teacher}")
            if mid == "l2e":
                extra += [f"data.l2e_exp_id={teacher}", "data.l2e_attr_algo=input-x-gradient"]
            started = time.time()
            done = (finished_run(Path(args.workspace) / "runs", mid, seed, args.rationale_removal, dataset, num_train,
                                 args.protocol)
                    if args.resume else None)
            if done is not None:  # the same (method, seed) finished in an earlier invocation
                rd = done
                res = SimpleNamespace(run_id=rd.run_id, status="completed", metrics=rd.status().get("final_metrics", {}))
            elif args.table_only:
                print(f"{dataset} seed {seed} {mid}: not run (no completed run in {args.workspace})", flush=True)
                results[mid].append({k: None for k, _ in COLUMNS} | {"seed": seed, "status": "not run",
                                                                      "train_examples_per_s": None, "seconds": None})
                continue
            else:
                try:
                    res = run(resolve_run_config(common + extra))
                except Exception as e:  # noqa: BLE001 - one broken method must not lose the others' results
                    print(f"{dataset} seed {seed} {mid}: FAILED: {type(e).__name__}: {e}", flush=True)
                    results[mid].append({k: None for k, _ in COLUMNS} | {"seed": seed, "status": "failed",
                                                                          "train_examples_per_s": None})
                    continue
                rd = RunDir(res.run_dir)
            tput = [m["value"] for m in rd.metrics() if m["name"] == "train_examples_per_s"]
            row = {k: res.metrics.get(f"test_{k}") for k, _ in COLUMNS}
            st = rd.status()
            seconds = (st["ended_at"] - st["started_at"]) if st.get("ended_at") and st.get("started_at") \
                else time.time() - started  # the run's own wall time, also for runs of an earlier invocation
            row.update(run_id=res.run_id, seed=seed, status=res.status, seconds=seconds,
                       train_examples_per_s=statistics.mean(tput) if tput else None)
            results[mid].append(row)
            if mid == "task_lm":
                teacher = res.run_id
            print(f"[{time.time() - t0:7.0f}s] {dataset} seed {seed} {mid:32s} {res.status} " +
                  " ".join(f"{k}={row[k]:.3f}" for k, _ in COLUMNS if row[k] is not None), flush=True)

    means = {m: {k: statistics.mean([r[k] for r in rows if r[k] is not None])
                 for k, _ in COLUMNS if any(r[k] is not None for r in rows)} for m, rows in results.items()}
    ran = {m: v for m, v in means.items() if v}  # NRG normalises over the methods that have results
    missing = [m for m in methods if m not in ran]
    scores = {conv: nrg(ran, convention=conv) for conv in ("paper", "eraser")}
    total_s = sum(r["seconds"] for rows in results.values() for r in rows if r.get("seconds"))
    base_tput = statistics.mean([r["train_examples_per_s"] for r in results["task_lm"] if r["train_examples_per_s"]])
    titles = {m.id: m.title for m in list_methods()}
    header = "| method | " + " | ".join(t for _, t in COLUMNS) + " | NRG (paper) | NRG (ERASER) | train speed vs Task LM |"
    lines = [header, "|" + " --- |" * (len(COLUMNS) + 4)]
    for m, rows in results.items():
        cells = [fmt([r[k] for r in rows if r[k] is not None]) for k, _ in COLUMNS]
        tputs = [r["train_examples_per_s"] for r in rows if r["train_examples_per_s"]]
        speed = f"{statistics.mean(tputs) / base_tput:.2f}x" if tputs else "n/a"
        if m in missing:
            lines.append(f"| {titles.get(m, m)} | " + " | ".join(["not run"] + ["–"] * (len(cells) - 1)) + " | – | – | – |")
            continue
        lines.append(f"| {titles.get(m, m)} | " + " | ".join(cells) +
                     f" | {scores['paper'].nrg[m]:.3f} | {scores['eraser'].nrg[m]:.3f} | {speed} |")
    size = DATASET_SIZES.get(dataset)
    setup = (f"{dataset} dataset, arch {args.arch}, seeds {args.seeds}, {args.epochs} epoch(s), "
             f"{'train subsample ' + str(num_train) if num_train else f'full train split ({size})'}, "
             f"protocol {args.protocol}, max length {args.max_length}, batch {args.batch_size}, lr {args.lr}, "
             f"comp/suff variants {'dropped' if args.rationale_removal == 'drop' else 'masked'}; test split, "
             f"AOPC over k in {{1, 5, 10, 20, 50}}%; \"(ref)\" columns are UNIREX's code's metric variants and "
             f"NRG (paper) is computed from them; Task LM trains at {base_tput:.1f} examples/s here; "
             f"{total_s / 60:.0f} min of runs in all (training and test evaluation, one core each); "
             f"measured {time.strftime('%Y-%m-%d')} on 2 CPU cores"
             + (f"; NRG is over the {len(ran)} methods that ran (not run: {', '.join(missing)})" if missing else ""))
    table = "\n".join(lines) + f"\n\n_{setup}._\n"
    run_ids = [r["run_id"] for rows in results.values() for r in rows if r.get("run_id")]
    if run_ids:
        try:
            table += "\n" + interval_tables(Path(args.workspace), run_ids, titles)
        except Exception as e:  # noqa: BLE001 - the means above stand without the intervals
            print(f"{dataset}: no intervals: {type(e).__name__}: {e}", file=sys.stderr)
    print("\n" + table, flush=True)
    out = Path(args.workspace).parent
    out.mkdir(parents=True, exist_ok=True)
    (out / f"reproduce-{dataset}.md").write_text(table)
    (out / f"reproduce-{dataset}.json").write_text(json.dumps(
        {"setup": setup, "results": results, "means": means, "nrg": {c: s.nrg for c, s in scores.items()},
         "nrg_by_desideratum": {c: s.by_desideratum for c, s in scores.items()}}, indent=2, default=str))
    if args.readme:
        readme = ROOT / "README.md"
        text = readme.read_text()
        tag = f"reproduce-table-{dataset}"
        block = f"<!-- {tag} -->\n{table}<!-- /{tag} -->"
        if f"<!-- {tag} -->" in text:
            text = re.sub(rf"<!-- {tag} -->.*?<!-- /{tag} -->", lambda _: block, text, flags=re.S)
            readme.write_text(text)
        else:
            print(f"README.md has no <!-- {tag} --> markers: table not placed", file=sys.stderr)
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="all", help="comma list of method ids (python -m unirex methods)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--arch", default="default")
    p.add_argument("--datasets", default="demo,demo_nli", help="comma list of datasets (data=...)")
    p.add_argument("--num_train", default=None,
                   help="subsample the train split: one number, or a comma list with one per dataset")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--protocol", choices=("reference", "eraser"), default="reference",
                   help="the runs' protocol= (the tables in the README before issue 22 followed eraser)")
    p.add_argument("--max_length", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--rationale_removal", choices=("drop", "mask"), default="drop",
                   help="how the comp/suff training variants remove tokens (model.rationale_removal); drop is the "
                        "default and gives the same gradients as UNIREX's mask, faster")
    p.add_argument("--workspace", default=str(ROOT / "bench" / "out" / "reproduce"))
    p.add_argument("--readme", action="store_true", help="write the table into README.md")
    p.add_argument("--resume", action="store_true",
                   help="reuse completed runs of the same method and seed found in the workspace")
    p.add_argument("--table-only", action="store_true",
                   help="train nothing: the table from the completed runs in the workspace, the others marked "
                        "'not run' and left out of NRG (implies --resume)")
    args = p.parse_args()
    args.resume = args.resume or args.table_only

    all_ids = [m.id for m in list_methods()]
    methods = all_ids if args.methods == "all" else args.methods.split(",")
    if "task_lm" not in methods:
        methods = ["task_lm", *methods]
    seeds = [int(s) for s in args.seeds.split(",")]
    datasets = [d for d in args.datasets.split(",") if d]
    sizes = [int(n) if n else None for n in str(args.num_train or "").split(",")] or [None]
    if len(sizes) == 1:
        sizes = sizes * len(datasets)
    if len(sizes) != len(datasets):
        p.error(f"--num_train: give one value or one per dataset ({len(datasets)})")
    for dataset, n in zip(datasets, sizes):
        run_grid(args, dataset, n or None, methods, seeds)


if __name__ == "__main__":
    main()
