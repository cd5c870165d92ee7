"""The command line: ``python -m unirex ...`` (also the installed ``unirex`` command).

A client of the workbench API (:mod:`workbench`), like the app's tabs. Runs take UNIREX's own overrides,
so a command line from the paper's README pastes in after ``python -m unirex`` (in place of
``python main.py``); errors in the user's input print one line ``error: ...`` and exit with status 2; a full
disk prints one line naming it and exits with status 1, as a failed run does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from cli.annotations import add_annotations_parser
from cli.batch_explain import add_explain_file_args, explain_file
from cli.download import add_download_parser
from cli.export import add_export_parser
from cli.parsing import OneLineErrorParser
from cli.roar import add_roar_parser
from unirex.errors import DiskFullError, UnirexError, scrub_secrets
from unirex.metrics.nrg import CONVENTIONS, DEFAULT_CONVENTION
from unirex.metrics.registry import Headline, metric_keys, on_request
from unirex.registry import OWN_EXTRACTOR, check_extractor, load_plugins, post_hoc_extractors

SUBCOMMANDS = ("build-dataset", "download-dataset", "export-eraser", "methods", "keys", "store", "runs", "show",
               "compare", "explain", "queue", "cancel", "requeue", "push", "roar", "annotations")

DESCRIPTION = """\
UNIREX Workbench: train and benchmark language-model rationale extractors (UNIREX, ICML 2022), scored
on ERASER metrics.

Train, evaluate or finetune with UNIREX's own key=value overrides (the paper's command lines paste in
after `python -m unirex` in place of `python main.py`):

  python -m unirex data=demo method=slm_comp_suff_plaus_linear debug=True     # about a minute on a CPU
  python -m unirex data=demo model=lm save_checkpoint=True seed=0              # Task LM, 10 epochs
  python -m unirex -m data=demo method=task_lm,slm_plaus_linear seed=0,1,2     # -m: a sweep, one run per combination
  python -m unirex training=evaluate training.ckpt_path=R-... training.eval_splits=train,dev,test
  python -m unirex -m data=demo seed=0,1,2 launcher=ray launcher.gpus_per_job=1  # each run a Ray task

  python -m unirex methods     the paper's methods (use as method=<id>)
  python -m unirex keys        every config key with its default (keys model. narrows it down)
"""

EPILOG = """\
Every run writes <workspace>/runs/<run_id>/ and prints that folder and the command line that reproduces it.
Workspace: --workspace DIR, $UNIREX_WORKSPACE, or ./workspace."""


# ------------------------------------------------------------------------------------ subcommands
def _workbench(args):
    from workbench import Workbench

    return Workbench(args.workspace)


def _build_dataset(args) -> int:
    from tqdm import tqdm

    from unirex.workspace import data_dir as default_data_dir

    wb = _workbench(args)
    data_dir = args.data_dir or default_data_dir(args.workspace)
    wb.prepare_dataset(args.dataset, data_dir)
    splits = ["train", "dev", "test"] if args.split == "all" else [args.split]
    for split in tqdm(splits, desc=f"build {args.dataset}", unit="split", disable=len(splits) == 1):
        num_train = args.num_train if split == "train" else None
        s = wb.build_split(args.dataset, split, arch=args.arch, max_length=args.max_length, num_train=num_train,
                           num_train_seed=args.num_train_seed, force=args.force, data_dir=data_dir)
        state = "cache hit" if s.cache_hit else "built"
        print(f"{args.dataset}/{s.split}: {state} -> {s.path}")
        print(f"  {s.count} examples, labels {s.label_distribution}, mean {s.mean_subwords:.1f} subwords, "
              f"{s.truncated} truncated to {s.max_length}, {s.with_rationale} with gold rationale"
              + (f" (coverage {s.rationale_coverage:.3f} of words)" if s.rationale_coverage is not None else ""))
        if args.json:
            print(json.dumps(s.stored))
    return 0


def _methods(args) -> int:
    from unirex.methods import list_methods

    for m in list_methods():
        print(f"{m.id:34s} {m.title}")
        if args.verbose:
            print(f"{'':34s} {m.description}\n{'':34s} {' '.join(m.overrides)}")
    return 0


def _keys(args) -> int:
    from unirex.config import flatten, resolve_config

    if args.prefix and args.prefix.startswith("launcher"):  # not run keys: where a sweep runs
        from workbench.launchers import FIELDS

        print("launcher=local|ray|slurm (default local), then:")
        for f in FIELDS:
            if f.cli_key.startswith(args.prefix):
                print(f"{f.cli_key}={'' if f.default is None else f.default}".ljust(34), f.help)
        return 0
    defaults = flatten(resolve_config([], validate=False))
    shown = {k: v for k, v in defaults.items() if k.startswith(args.prefix or "")}
    if not shown:
        raise UnirexError(f"no config key starts with '{args.prefix}'")
    width = max(len(k) for k in shown)
    print("key".ljust(width), " default   (group selections: model=lm|expl_reg|fresh|a2r, data=NAME, "
          "training=train|evaluate|finetune, method=ID; `keys launcher` lists where a sweep runs)")
    for k, v in shown.items():
        print(k.ljust(width), "", json.dumps(v))
    return 0


def _store(args) -> int:
    wb = _workbench(args)
    if args.action == "rebuild":
        n = wb.rebuild_index()
        print(f"rebuild: {n} runs indexed in {wb.db_file}")
    elif args.action == "sync":
        r = wb.sync()
        print(f"sync: {r.added} added, {r.updated} updated, {r.removed} removed; {r.total} runs indexed")
    else:
        n = wb.index_all()
        print(f"ingest: {n} runs indexed in {wb.db_file}")
    for c in wb.corrupt_runs():  # indexed as corrupt, the others as usual: each named with its reason
        print(f"corrupt: {c.run_id}: {c.reason}")
    return 0


def _filter(args, status_default=None):
    from workbench import RunFilter

    from unirex.runs import parse_tags

    seeds = tuple(int(s) for s in str(args.seeds).split(",") if s.strip()) if getattr(args, "seeds", None) else ()
    run_ids = tuple(r.strip() for r in str(getattr(args, "runs", None) or "").split(",") if r.strip())
    return RunFilter(dataset=args.dataset, method=args.method, arch=getattr(args, "arch", None),
                     status=getattr(args, "status", None) or status_default, seeds=seeds,
                     tags=parse_tags(getattr(args, "tags", None)), run_ids=run_ids)


def _runs(args) -> int:
    from cli.render import table

    wb = _workbench(args)
    for edit, given in ((wb.set_tags, args.set_tags), (wb.add_tags, args.add_tags), (wb.remove_tags, args.remove_tags)):
        if given:
            run_id, tags = given
            tags = edit(run_id, tags)
            print(f"{run_id}: tags {','.join(tags) or '(none)'}")
            return 0
    stale = wb.refresh_index()
    if stale:  # a full disk: the index could not take the newest changes; what it holds is listed
        print(f"warning: {stale}", file=sys.stderr)
    df = wb.runs_frame(_filter(args), split=args.split, limit=args.limit)
    if args.json:
        print(df.write_json())
        return 0
    if df.height == 0:
        print("no runs" + (" match" if any([args.dataset, args.method, args.status, args.arch, args.tags]) else " yet"))
        return 0
    cols = ["run_id", "status", "mode", "debug", "method", "dataset", "arch", "seed", "protocol", "tags", "duration_s",
            *metric_keys(headline=Headline.BRIEF)]
    rows = []
    for r in df.iter_rows(named=True):
        r["duration_s"] = None if r["duration_s"] is None else f"{r['duration_s']:.0f}s"
        r["debug"] = "yes" if r["debug"] else "no"
        r["tags"] = ",".join(r["tags"] or ()) or "-"
        rows.append([r[c] for c in cols])
    print(f"{df.height} runs; metrics: final evaluation on {args.split}")
    table(cols, rows)
    shown = set(df["run_id"].to_list())
    for c in wb.corrupt_runs():  # why each corrupt run listed cannot be read
        if c.run_id in shown:
            print(f"corrupt: {c.run_id}: {c.reason}")
    return 0


def _show(args) -> int:
    from cli.render import fmt, table

    wb = _workbench(args)
    d = wb.run(args.run, split=args.split)
    if args.json:
        print(json.dumps({"run_id": d.summary.run_id, "status": d.summary.status, "path": str(d.path),
                          "command": d.summary.command, "meta": d.meta, "config": d.config, "final": d.final,
                          "checkpoint": None if d.checkpoint is None else str(d.checkpoint.path),
                          "outputs": [str(p) for p in d.outputs], "error": d.summary.error}, indent=2, default=str))
        return 0
    s = d.summary
    print(f"{s.run_id}  [{s.status}]  {s.method}  dataset {s.dataset}  arch {s.arch}  seed {s.seed}  mode {s.mode}"
          + ("  debug" if s.debug else "") + (f"  tags {','.join(s.tags)}" if s.tags else ""))
    print(f"folder:     {d.path}")
    if s.command:
        print(f"reproduce:  {s.command}")
    if s.error:
        print(f"error:      {s.error}")
    print("config:     " + (" ".join(d.overrides) or "(all defaults)"))
    if d.final:
        names = metric_keys(headline=Headline.FULL)
        print("\nfinal evaluation")
        table(["split", *names], [[sp, *[d.final[sp].get(n) for n in names]] for sp in sorted(d.final)])
    epochs = d.metrics.filter(d.metrics["epoch"].is_not_null() & (d.metrics["split"] == "dev"))
    if epochs.height:
        print("\ndev per epoch")
        names = metric_keys(headline=Headline.COMPACT)
        rows = []
        for e in sorted(set(epochs["epoch"].to_list())):
            sub = {r["name"]: r["value"] for r in epochs.filter(epochs["epoch"] == e).iter_rows(named=True)}
            rows.append([e + 1, *[sub.get(n) for n in names]])  # epochs counted from 1, as everywhere shown
        table(["epoch", *names], rows)
    if d.checkpoint is not None:
        c = d.checkpoint
        print(f"\ncheckpoint: {c.path} (epoch {c.epoch_shown}, {c.monitor} {fmt(c.value)})")
    if d.outputs:
        print("outputs:    " + ", ".join(p.name for p in d.outputs))
    return 0


def _pm_ci(mean, low, high, std, best: bool = False) -> str:
    """``mean ± half-width`` of the 95% interval (``*``: significantly best); ``mean (sd std)`` without one."""
    from cli.render import fmt

    if mean is None or mean != mean:
        return "n/a"
    if low is not None and high is not None and low == low and high == high:
        return f"{mean:.3f} ± {(high - low) / 2:.3f}" + ("*" if best else "")
    return f"{mean:.3f}" + (f" (sd {fmt(std, 3)})" if std is not None and std == std else "")


def _pairwise(args, wb, cmp) -> int:
    import dataclasses
    import json

    from cli.render import table
    from workbench import pair_labels

    tests = wb.pairwise(args.pairwise, cmp=cmp, pair=tuple(args.pair) if args.pair else None)
    if args.json:
        keep = ("a", "b", "dataset", "metric", "diff", "ci_low", "ci_high", "p", "p_adj", "significant", "n_examples",
                "seeds_a", "seeds_b")
        print(json.dumps([{k: dataclasses.asdict(t)[k] for k in keep} for t in tests], indent=1))
        return 0
    unc = cmp.uncertainty
    for ds, why in (unc.left_out.items() if unc else ()):
        for label, reason in why.items():
            print(f"left out of the tests: {label}{f' on {ds}' if ds else ''}: {reason}")
    if not tests:
        print(f"no pair of groups with per-example outputs on the same dataset for {args.pairwise}")
        return 0
    print(f"{args.pairwise}: a - b, 95% interval and p-value paired by example (bootstrap, "
          f"{unc.n_resamples} resamples of the examples, and of the seeds where a group has several; seed {unc.seed}); "
          f"p_adj: Holm over the {len(tests)} pair(s); * significant at {unc.alpha}")
    names = pair_labels(cmp, tests)  # each group named by what differs; what all share (the split too) said once
    print(f"every group: {names.groups.caption}")
    what = " / ".join(names.groups.columns)
    table([f"a ({what})", f"b ({what})", "diff", "95% CI", "p", "p_adj", ""],
          [[*names.of(t), f"{t.diff:+.4f}", f"[{t.ci_low:+.4f}, {t.ci_high:+.4f}]", f"{t.p:.4f}",
            f"{t.p_adj:.4f}", "*" if t.significant else ""] for t in tests])
    return 0


def _compare(args) -> int:
    from cli.render import table

    wb = _workbench(args)
    wb.sync()
    by = tuple(b.strip() for b in args.by.split(",") if b.strip())
    cmp = wb.compare(_filter(args, status_default="completed"), split=args.split, by=by, convention=args.convention,
                     include_debug=args.include_debug)
    if args.pairwise:
        return _pairwise(args, wb, cmp)
    df = cmp.table
    if args.csv or args.parquet:
        flat = df.with_columns(df["seeds"].list.eval(__import__("polars").element().cast(str)).list.join(","))
        if args.csv:
            flat.write_csv(args.csv)
            print(f"wrote {df.height} rows to {args.csv}")
        if args.parquet:
            df.write_parquet(args.parquet)
            print(f"wrote {df.height} rows to {args.parquet}")
        return 0
    if args.json:
        print(df.write_json())
        return 0
    if df.height == 0:
        print("no completed runs with final metrics on that split match"
              + ("" if args.include_debug else " (debug runs left out: --include-debug counts them)"))
        return 0
    names = [*metric_keys(headline=Headline.SUMMARY), *(m.key for m in on_request(cmp.metrics))]
    present = [n for n in names if f"{n}_mean" in df.columns]
    rows = [[*[r[b] for b in by], r["n"], _pm_ci(r["nrg"], r.get("nrg_ci_low"), r.get("nrg_ci_high"), None),
             *[_pm_ci(r[f"{n}_mean"], r.get(f"{n}_ci_low"), r.get(f"{n}_ci_high"), r[f"{n}_std"],
                      bool(r.get(f"{n}_best"))) for n in present]]
            for r in df.iter_rows(named=True)]
    print("one evaluation per trained model (the latest evaluation of a checkpoint stands for it)"
          + ("" if args.include_debug else "; debug runs left out (--include-debug counts them)"))
    datasets = df["dataset"].n_unique() if "dataset" in df.columns else cmp.runs["dataset"].n_unique()
    where = (f"within each of the {datasets} datasets" if "dataset" in by and datasets > 1 else
             f"per dataset, then the mean over the {datasets} datasets" if datasets > 1 else
             f"over the {df.height} rows")
    print(f"{args.split} split; NRG ({cmp.convention}) {where}: "
          + "; ".join(f"{k}: {', '.join(v)}" for k, v in cmp.nrg_metrics.items())
          + (f" (left out, a metric missing in some row: {', '.join(cmp.nrg_missing)}; re-evaluate older runs)"
             if cmp.nrg_missing else ""))
    unc = cmp.uncertainty
    if unc is not None and unc.bootstraps:
        print(f"mean ± half-width of the 95% interval (bootstrap, {unc.n_resamples} resamples: examples, and seeds "
              "where a group has several); * best, significantly better than the runner-up (paired test)")
        one = [r for r in df.iter_rows(named=True) if r.get("ci_over") == "examples"]
        if one:
            print(f"one seed: the interval of {', '.join(' / '.join(str(r[b]) for b in by) for r in one)} "
                  "is over examples only")
    if note := cmp.nrg_interval_note():
        print(note)
    if unc is not None:
        for ds, why in unc.left_out.items():
            for label, reason in why.items():
                print(f"no interval for {label}{f' on {ds}' if ds else ''}: {reason}")
    table([*by, "runs", "NRG", *present], rows)
    if cmp.nrg_summary is not None and cmp.nrg_summary.height and datasets > 1:
        print("\ncross-dataset summary: the mean of the per-dataset NRGs")
        rest = [b for b in by if b != "dataset"]
        table([*rest, "mean NRG", "datasets"], [[*[r[b] for b in rest], r["nrg_mean_over_datasets"], r["datasets"]]
                                                for r in cmp.nrg_summary.iter_rows(named=True)])
    return 0


def _explain(args) -> int:
    from cli.render import highlight

    check_extractor(args.extractor)  # one line naming it and the known ones (argparse's choices add its usage)
    if args.file is not None:
        if getattr(args, "flip", False) or args.split is not None:
            raise UnirexError("--flip and --split go with --text, not --file")
        return explain_file(args, _workbench)
    if getattr(args, "flip", False):
        return _explain_flip(args)
    if args.split is not None:
        raise UnirexError("--split goes with --flip (the flip search over a split)")
    if args.text is None:
        raise UnirexError("explain needs --text or --file (or --flip --split SPLIT)")
    wb = _workbench(args)
    ex = wb.explain(args.run, args.text, query=args.query, extractor=args.extractor, top_k=args.top_k,
                    second_text=args.second_text)
    if args.json:
        import dataclasses

        print(json.dumps(dataclasses.asdict(ex), indent=2))
        return 0
    colour = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None
    probs = ", ".join(f"{lab} {p:.3f}" for lab, p in zip(ex.labels, ex.probs))
    print(f"prediction: {ex.predicted}   ({probs})")
    print(f"extractor:  {ex.extractor}; top {ex.top_k:g}% rationale: {', '.join(ex.rationale_words) or '(none)'}")
    print(f"comprehensiveness {ex.comprehensiveness:.4f}   sufficiency {ex.sufficiency:.4f}"
          + ("   (text truncated to the model's max length)" if ex.truncated else ""))
    print()
    print(highlight(ex.words, ex.word_scores, ex.rationale, colour))
    return 0


def _flip_path_line(name: str, path, label_from: str) -> str:
    pct = f" ({path.fraction:.0%} of the words)" if path.flipped else ""
    what = (f"{label_from} -> {path.label} after {path.n_edits} of {path.n_words} words{pct}" if path.flipped
            else f"no flip within {path.cap} of {path.n_words} words")
    return f"{name}: {what}; edited: {', '.join(path.edited) or '(none)'}"


def _explain_flip(args) -> int:
    """``explain --flip``: the minimal flip search on ``--text``, or its mean over ``--split``."""
    import dataclasses

    from unirex.flipspec import FlipOptions

    options = FlipOptions(max_fraction=args.flip_max_fraction, max_words=args.flip_max_words, seed=args.seed,
                          edit=args.flip_edit)
    wb = _workbench(args)
    extractor = None if args.extractor == "own" else args.extractor
    if args.split is not None:
        if args.text is not None:
            raise UnirexError("give --text or --split with --flip, not both")
        from tqdm import tqdm

        bar = tqdm(desc=f"flip search on {args.split}", unit="example", disable=args.json)
        last = [0]

        def progress(done, total):
            bar.total = total
            bar.update(done - last[0])
            last[0] = done

        try:
            sm = wb.flip_split(args.run, args.split, extractor, options, limit=args.limit, progress=progress)
        finally:
            bar.close()
        if args.json:
            print(json.dumps(dataclasses.asdict(sm), indent=2))
            return 0

        def num(v):
            return "n/a" if v is None else f"{v:.4f}"

        print(f"{sm.dataset} {sm.split}: {sm.examples} examples, {options.edit} edits, at most "
              f"{options.max_fraction:g} of the words and {options.max_words} words each")
        print(f"flip_words {num(sm.flip_words)} (extractor order, lower is better)   flip_words_random "
              f"{num(sm.flip_words_random)} (random order, seed {options.seed})")
        print(f"comp AOPC {num(sm.comp_aopc)}   suff AOPC {num(sm.suff_aopc)}")
        print("an example that does not flip within the cap counts 1.0")
        return 0
    if args.text is None:
        raise UnirexError("explain --flip needs --text or --split")
    fo = wb.flip(args.run, args.text, query=args.query, extractor=extractor, second_text=args.second_text,
                 options=options)
    if args.json:
        print(json.dumps(dataclasses.asdict(fo), indent=2))
        return 0
    probs = ", ".join(f"{lab} {p:.3f}" for lab, p in zip(fo.labels, fo.probs))
    print(f"prediction: {fo.predicted}   ({probs})")
    print(_flip_path_line(f"extractor order ({fo.extractor})", fo.guided, fo.predicted))
    print(f"  edited text: {fo.guided.edited_text or '(no word left)'}")
    print(_flip_path_line(f"random order (seed {fo.seed})", fo.random, fo.predicted))
    print(f"  edited text: {fo.random.edited_text or '(no word left)'}")
    if fo.truncated:
        print("(text truncated to the model's max length: later words were not searched)")
    return 0


def _add_flip_arguments(e) -> None:
    """``explain --flip`` and its options."""
    from unirex.flipspec import EDITS

    e.add_argument("--flip", action="store_true",
                   help="the fewest words to remove (or mask) to flip the prediction, in the extractor's order and "
                        "in a random one; with --split: the mean fraction over a split (flip_words)")
    e.add_argument("--split", choices=("train", "dev", "test"), help="with --flip: search every example of this split")
    e.add_argument("--limit", type=int, help="with --split: only the first N examples")
    e.add_argument("--flip-edit", dest="flip_edit", choices=EDITS, default="remove",
                   help="remove the words (default) or replace each subword by the tokenizer's mask token")
    e.add_argument("--flip-max-fraction", dest="flip_max_fraction", type=float, default=0.5,
                   help="edit at most this fraction of a text's words (default 0.5)")
    e.add_argument("--flip-max-words", dest="flip_max_words", type=int, default=64,
                   help="and at most this many words (default 64)")
    e.add_argument("--seed", type=int, default=0, help="seed of the random order (default 0)")


def _queue(args) -> int:
    from cli.render import table

    wb = _workbench(args)
    jobs = wb.queue(include_final=args.all)
    if args.json:
        import dataclasses

        print(json.dumps([dataclasses.asdict(j) for j in jobs], indent=2))
        return 0
    if not jobs:
        print("the queue is empty" + ("" if args.all else " (--all shows finished jobs)"))
        return 0
    # the launcher column carries the cluster's own id of a submitted job (Ray task, Slurm job)
    table(["job_id", "status", "run_id", "launcher", "what"],
          [[j.job_id, j.status, j.run_id, j.launcher + (f" ({j.handle})" if j.handle else ""), j.title] for j in jobs])
    return 0


def _cancel(args) -> int:
    wb = _workbench(args)
    before = wb.job(args.job).status
    job = wb.cancel(args.job)
    if job.status == "cancelled":
        print(f"{job.job_id}: " + ("removed from the queue" if before == "waiting" else
                                   f"cancelled (the process dispatching it to {job.launcher} had stopped)"))
    elif job.launcher == "local":
        print(f"{job.job_id}: asked to stop; it stops within one training step or evaluation batch")
    else:
        print(f"{job.job_id}: asked to stop; its {job.launcher} worker stops within one training step or evaluation "
              f"batch, and {job.launcher}'s own cancel stops it if it has not after launcher.cancel_grace_s")
    return 0


def _push(args) -> int:
    from unirex.hub import check_license

    try:
        check_license(args.license)
    except UnirexError as e:  # the core's message names the value; here it was given as a flag
        raise UnirexError(f"--license: {e}") from None
    # the CLI may write a dry run anywhere the user asks (the app's confined workbench keeps it inside the workspace)
    result = _workbench(args).push(args.run, args.repo_id, private=args.private, revision=args.revision,
                                   license=args.license, dry_run_dir=args.dry_run)
    if result.dry_run:
        print(f"dry run: {len(result.files)} files for {result.repo_id} written to {result.folder} (nothing uploaded)")
    else:
        where = f" (branch {result.revision})" if result.revision else ""
        print(f"pushed {len(result.files)} files to https://huggingface.co/{result.repo_id}{where}"
              + (f": {result.url}" if result.url else ""))
    return 0


def _requeue(args) -> int:
    from workbench.launchers import split_launcher_overrides

    wb = _workbench(args)
    bad = [o for o in args.launcher if "=" not in o or not o.split("=", 1)[0].startswith("launcher")]
    if bad:
        raise UnirexError(f"requeue takes launcher keys only (launcher=ray, launcher.gpus_per_job=1, ...), not '{bad[0]}'")
    name, recorded = wb.launcher_of(args.run)
    given = list(args.launcher) or list(recorded)
    if not any(o.split("=", 1)[0] == "launcher" for o in given):
        given.insert(0, f"launcher={name}")
    _, opts = split_launcher_overrides(given)
    if args.queue:
        job = wb.requeue(args.run, launcher=opts.name, launcher_options=opts)
        print(f"{job.job_id}: queued as run {job.run_id} (launcher={job.launcher}); the app's worker runs it "
              "(python -m unirex queue lists it)")
        return 0
    from cli.train import run_overrides

    ws = ["--workspace", str(wb.workspace)]
    launcher_keys = [f"launcher={opts.name}", *opts.to_args()] if opts.name != "local" else []
    return run_overrides([*ws, *wb.recorded_overrides(args.run), *launcher_keys], SUBCOMMANDS)


def _add_filters(p, status: bool = True) -> None:
    p.add_argument("--dataset", help="only runs on this dataset")
    p.add_argument("--method", help="only runs of this method (python -m unirex methods)")
    p.add_argument("--arch", help="only runs of this arch")
    if status:
        p.add_argument("--status", help="only runs with this status (completed, failed, running, interrupted, ...)")
    p.add_argument("--seeds", help="only these seeds, comma separated")
    p.add_argument("--tags", metavar="A,B", help="only runs holding every one of these tags")
    p.add_argument("--split", default="test", choices=("train", "dev", "test"), help="split of the final metrics")


def _add_dataset_commands(sub) -> None:
    """build-dataset, methods, keys, store."""
    b = sub.add_parser("build-dataset", help="tokenise an ERASER dataset for an arch and cache it")
    b.add_argument("--data_dir", help="folder holding <dataset>/ in ERASER layout (default: <workspace>/data)")
    b.add_argument("--dataset", required=True, help="dataset folder name; 'demo' is generated on first use")
    b.add_argument("--arch", default="default", help="'default' (bundled MiniLM), a Hugging Face id or a local path")
    b.add_argument("--split", default="all", choices=("train", "dev", "val", "test", "all"))
    b.add_argument("--num_train", type=int, default=None, help="subsample this many train examples")
    b.add_argument("--num_train_seed", type=int, default=0)
    b.add_argument("--max_length", type=int, default=None, help="subwords per input (default: min(512, arch max))")
    b.add_argument("--force", action="store_true", help="rebuild even when the cache is current")
    b.add_argument("--json", action="store_true", help="also print the summary as JSON")
    b.set_defaults(func=_build_dataset)

    m = sub.add_parser("methods", help="list the paper's methods (use as method=<id>)")
    m.add_argument("-v", "--verbose", action="store_true", help="also each method's description and overrides")
    m.set_defaults(func=_methods)

    k = sub.add_parser("keys", help="list every config key with its default")
    k.add_argument("prefix", nargs="?", help="only keys starting with this (e.g. model.)")
    k.set_defaults(func=_keys)

    s = sub.add_parser("store", help="index run directories in the DuckDB store")
    s.add_argument("action", choices=("sync", "ingest", "rebuild"),
                   help="sync: index new/changed runs and drop deleted ones; ingest: sync + datasets; "
                        "rebuild: recreate the database from the run folders")
    s.set_defaults(func=_store)


def _add_run_commands(sub) -> None:
    """runs, show, compare."""
    r = sub.add_parser("runs", help="the runs table (newest first)")
    _add_filters(r)
    r.add_argument("--limit", type=int, default=None)
    r.add_argument("--json", action="store_true")
    r.add_argument("--set-tags", dest="set_tags", nargs=2, metavar=("RUN", "A,B"),
                   help="replace a run's tags (comma separated; '' clears them) and exit")
    r.add_argument("--add-tags", dest="add_tags", nargs=2, metavar=("RUN", "A,B"),
                   help="add these tags to a run's and exit (edits at the same time all land)")
    r.add_argument("--remove-tags", dest="remove_tags", nargs=2, metavar=("RUN", "A,B"),
                   help="take these tags from a run's and exit")
    r.set_defaults(func=_runs)

    sh = sub.add_parser("show", help="one run: config, status, metrics per split and epoch, checkpoint, folder")
    sh.add_argument("run", help="run id")
    sh.add_argument("--split", default="test", choices=("train", "dev", "test"))
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=_show)

    c = sub.add_parser("compare", help="methods compared: mean ± std over seeds, and NRG (one evaluation per trained "
                                       "model: the latest evaluation of a checkpoint stands for it; no debug runs)")
    _add_filters(c, status=False)
    c.add_argument("--by", default="method,dataset,arch", help="group runs by these columns: method, dataset, arch, protocol, mode, status "
                        "(default method,dataset,arch)")
    c.add_argument("--convention", default=DEFAULT_CONVENTION, choices=CONVENTIONS,
                   help="NRG's composition: paper (UNIREX's: AOPC comp/suff, the reference's AUPRC and task metric; "
                        "default) or eraser (ERASER's metrics: AOPC, AUPRC, token F1, IOU F1, macro F1)")
    c.add_argument("--runs", metavar="R-...,R-...", help="only these runs (the models they trained or evaluated)")
    c.add_argument("--include-debug", dest="include_debug", action="store_true",
                   help="count debug runs too (left out by default)")
    c.add_argument("--csv", help="write the table as CSV")
    c.add_argument("--parquet", help="write the table as Parquet")
    c.add_argument("--json", action="store_true")
    c.add_argument("--pairwise", metavar="METRIC",
                   help="paired tests of every two groups on the same dataset on METRIC (difference, 95%% interval, "
                        "p-value paired by example, Holm-adjusted over the pairs)")
    c.add_argument("--pair", nargs=2, metavar=("A", "B"), help="with --pairwise: only these two groups (labels as in "
                                                             "the table, e.g. 'task_lm / demo / default')")
    c.set_defaults(func=_compare)


def _add_checkpoint_commands(sub) -> None:
    """explain, push."""
    from unirex.hub import DEFAULT_LICENSE


    e = sub.add_parser("explain", help="the rationale of a checkpoint for a text you type (--text) or a file of "
                                       "texts (--file ... --out ...)")
    e.add_argument("--run", required=True, help="run id, checkpoint folder (or Hugging Face repo id)")
    # not required: `explain --flip --split SPLIT` needs neither (_explain says what is missing)
    what = e.add_mutually_exclusive_group(required=False)
    what.add_argument("--text", help="the text to explain (the first document)")
    add_explain_file_args(e, what)
    e.add_argument("--query", help="the query of query tasks (MultiRC, BoolQ, FEVER, ...)")
    e.add_argument("--second-text", dest="second_text", help="the second document of two-document tasks (e-SNLI hypothesis)")
    post_hoc = post_hoc_extractors()  # the registry's, plugins' included ($UNIREX_PLUGINS)
    # no argparse choices: _explain refuses an unknown one in one line, as every other bad input
    e.add_argument("--extractor", default=OWN_EXTRACTOR, metavar="EXTRACTOR",
                   help=f"own (the checkpoint's extractor), {', '.join(post_hoc[:-1])} or {post_hoc[-1]}")
    e.add_argument("--top-k", dest="top_k", type=float, default=10.0, help="rationale size in percent (default 10)")
    e.add_argument("--json", action="store_true")
    _add_flip_arguments(e)
    e.set_defaults(func=_explain)

    pu = sub.add_parser(
        "push", help="upload a run's checkpoint to the Hugging Face Hub with a model card",
        description="Upload a completed run's checkpoint to the Hugging Face Hub as a model repo (task LM loadable "
                    "with transformers, extractor with unirex.load_checkpoint, README.md model card with the ERASER "
                    "metrics). The token comes from HF_TOKEN or `hf auth login`; it is never stored.")
    pu.add_argument("--run", required=True, help="run id (in the workspace) or run folder")
    pu.add_argument("--repo-id", required=True, metavar="USER/NAME", help="Hub repo to create or update")
    pu.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)")
    pu.add_argument("--revision", metavar="BRANCH", help="push to this branch (created if missing)")
    pu.add_argument("--license", default=DEFAULT_LICENSE, metavar="L",
                    help=f"Hub license identifier for the card (default {DEFAULT_LICENSE}; e.g. apache-2.0, mit, cc-by-4.0)")
    pu.add_argument("--dry-run", metavar="DIR", help="write the folder that would be uploaded to DIR and upload nothing")
    pu.set_defaults(func=_push)


def _add_queue_commands(sub) -> None:
    """queue, cancel, requeue."""
    q = sub.add_parser("queue", help="jobs queued by the app (waiting and running)")
    q.add_argument("--all", action="store_true", help="also finished jobs")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_queue)

    ca = sub.add_parser("cancel", help="cancel a queued or running job of the app")
    ca.add_argument("job", help="job id (python -m unirex queue)")
    ca.set_defaults(func=_cancel)

    rq = sub.add_parser("requeue", help="run a run's command line again (an interrupted or failed run), as a new run")
    rq.add_argument("run", help="run id")
    rq.add_argument("launcher", nargs="*", metavar="launcher=...",
                    help="launcher=local|ray|slurm and launcher.* keys (default: the launcher and options that ran it)")
    rq.add_argument("--queue", action="store_true",
                    help="only queue it for the app's worker (default: run it now, in the foreground or on the launcher)")
    rq.set_defaults(func=_requeue)


def make_parser() -> argparse.ArgumentParser:
    # every subcommand's parser is made of the same class: an argparse error is one line, exit status 2
    p = OneLineErrorParser(prog="unirex", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           usage="python -m unirex [-m] key=value ...   |   python -m unirex COMMAND ...")
    p.add_argument("--workspace", help="workspace folder (default: $UNIREX_WORKSPACE or ./workspace)")
    sub = p.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    _add_dataset_commands(sub)
    _add_run_commands(sub)
    _add_checkpoint_commands(sub)
    _add_queue_commands(sub)
    add_roar_parser(sub)
    for name, sp in sub.choices.items():  # --workspace also after the command
        sp.add_argument("--workspace", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    add_download_parser(sub)
    add_export_parser(sub)
    add_annotations_parser(sub)
    return p


# ------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # the CLI is its own process and shows its own progress: the loaders' bars (weights, shards) would
    # interleave with them (the app, which shares its process with requests, leaves this setting alone)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers.utils.logging" in sys.modules:  # already imported (the CLI called in-process)
        sys.modules["transformers.utils.logging"].disable_progress_bar()
    try:
        load_plugins()  # $UNIREX_PLUGINS: modules that register attribution algorithms or extractor types
        first = next((a for i, a in enumerate(argv) if not a.startswith("-")
                      and (i == 0 or argv[i - 1] != "--workspace")), None)
        if not argv or (first is None and any(a in ("-h", "--help") for a in argv)):
            make_parser().print_help()
            return 0
        if first in SUBCOMMANDS:
            args = make_parser().parse_args(argv)
            return args.func(args)
        from cli.train import run_overrides

        return run_overrides(argv, SUBCOMMANDS)
    except DiskFullError as e:  # not the user's input: the run failed, as a failed run exits
        print(f"error: {scrub_secrets(str(e))}", file=sys.stderr)
        return 1
    except UnirexError as e:
        print(f"error: {scrub_secrets(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `python -m unirex methods -v | head`: the reader left, nothing is wrong
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


__all__ = ["main", "make_parser"]
