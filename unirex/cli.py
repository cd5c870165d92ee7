"""Command line: ``python -m unirex ...`` (also the installed ``unirex`` command).

Runs take UNIREX's own overrides, so a command line from the paper's README pastes in after
``python -m unirex`` (in place of ``python main.py``)::

    python -m unirex -m data=demo model=expl_reg model.explainer_type=self_lm model.plaus_wt=0.5 seed=0,1,2
    python -m unirex training=evaluate training.ckpt_path=R-20261125-143211-7f3a9c training.eval_splits="'train,dev,test'"

``-m`` (``--multirun``) sweeps every comma list (cartesian product) and prints a summary table.

Commands:
  build-dataset     tokenise an ERASER dataset for an arch and cache it (mirrors UNIREX's build_dataset.py)
  download-dataset  fetch an ERASER dataset of the catalog (or its Hugging Face copy) into the data dir
  export-eraser   write a run's predictions in ERASER's results format
  methods         list the paper's methods (presets usable as method=<id>)
  store           ingest | rebuild the DuckDB run store from the run directories

Errors in the user's input print one line ``error: ...`` and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import json
import sys

from unirex.errors import UnirexError
from unirex.workspace import data_dir as default_data_dir
from unirex.workspace import workspace_dir

SPLIT_CHOICES = ("train", "dev", "val", "test", "all")
SUBCOMMANDS = ("build-dataset", "download-dataset", "export-eraser", "methods", "store")


# ------------------------------------------------------------------------------------ subcommands
def _build_dataset(args) -> int:
    from tqdm import tqdm

    from unirex.data import build_split, ensure_source

    data_dir = args.data_dir or default_data_dir(args.workspace)
    ensure_source(data_dir, args.dataset)
    splits = ["train", "dev", "test"] if args.split == "all" else [args.split]
    for split in tqdm(splits, desc=f"build {args.dataset}", unit="split", disable=len(splits) == 1):
        num_train = args.num_train if split == "train" else None
        built = build_split(data_dir, args.dataset, split, arch=args.arch, max_length=args.max_length,
                            num_train=num_train, num_train_seed=args.num_train_seed, force=args.force)
        s = built.summary
        state = "cache hit" if built.cache_hit else "built"
        print(f"{args.dataset}/{s['tag']}: {state} -> {built.path}")
        print(f"  {s['count']} examples, labels {s['label_distribution']}, mean {s['mean_subwords']:.1f} subwords, "
              f"{s['truncated']} truncated to {s['max_length']}, {s['with_rationale']} with gold rationale"
              + (f" (coverage {s['rationale_coverage_word']:.3f} of words)" if s["rationale_coverage_word"] is not None else ""))
        if args.json:
            print(json.dumps(s))
    return 0


def _methods(args) -> int:
    from unirex.methods import list_methods

    for m in list_methods():
        print(f"{m.id:34s} {m.title}")
        if args.verbose:
            print(f"{'':34s} {m.description}\n{'':34s} {' '.join(m.overrides)}")
    return 0


def _store(args) -> int:
    from store import ingest_all, rebuild

    ws = workspace_dir(args.workspace)
    n = rebuild(ws) if args.action == "rebuild" else ingest_all(ws)
    print(f"{args.action}: {n} runs indexed in {ws / 'unirex.duckdb'}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unirex", description="UNIREX Workbench command line "
                                "(runs: python -m unirex [-m] key=value ...)")
    p.add_argument("--workspace", help="workspace folder (default: $UNIREX_WORKSPACE or ./workspace)")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build-dataset", help="tokenise an ERASER dataset for an arch and cache it")
    b.add_argument("--data_dir", help="folder holding <dataset>/ in ERASER layout (default: <workspace>/data)")
    b.add_argument("--dataset", required=True, help="dataset folder name; 'demo' is generated on first use")
    b.add_argument("--arch", default="default", help="'default' (bundled MiniLM), a Hugging Face id or a local path")
    b.add_argument("--split", default="all", choices=SPLIT_CHOICES)
    b.add_argument("--num_train", type=int, default=None, help="subsample this many train examples")
    b.add_argument("--num_train_seed", type=int, default=0)
    b.add_argument("--max_length", type=int, default=None, help="subwords per input (default: min(512, arch max))")
    b.add_argument("--force", action="store_true", help="rebuild even when the cache is current")
    b.add_argument("--json", action="store_true", help="also print the summary as JSON")
    b.set_defaults(func=_build_dataset)

    m = sub.add_parser("methods", help="list the paper's methods (use as method=<id>)")
    m.add_argument("-v", "--verbose", action="store_true")
    m.set_defaults(func=_methods)

    s = sub.add_parser("store", help="index run directories in the DuckDB store")
    s.add_argument("action", choices=("ingest", "rebuild"))
    s.set_defaults(func=_store)

    from unirex.data.download import add_download_parser
    from unirex.export import add_export_parser

    add_download_parser(sub)
    add_export_parser(sub)
    return p


# ------------------------------------------------------------------------------------------- runs
class TqdmProgress:
    """Engine events -> a tqdm bar per run and a line per evaluation."""

    def __init__(self, label: str = "", enabled: bool = True):
        self.label, self.enabled, self.bar = label, enabled, None

    def __call__(self, ev: dict) -> None:
        from tqdm import tqdm

        kind = ev["kind"]
        if kind == "step" and self.enabled:
            if self.bar is None:
                self.bar = tqdm(total=ev["total_steps"], desc=f"{self.label}train", unit="step", dynamic_ncols=True)
            self.bar.update(1)
            self.bar.set_postfix(epoch=ev["epoch"], loss=f"{ev['losses'].get('loss', 0):.4f}")
        elif kind == "eval":
            m = ev["metrics"]
            where = f"epoch {ev['epoch']} " if ev.get("epoch") is not None else ""
            msg = (f"{self.label}{where}{ev['split']}: acc {m.get('acc', float('nan')):.4f}  "
                   f"comp {m.get('comp_aopc', float('nan')):.4f}  suff {m.get('suff_aopc', float('nan')):.4f}"
                   + (f"  auprc {m['plaus_auprc']:.4f}" if m.get("plaus_auprc") is not None else ""))
            (self.bar.write if self.bar is not None else print)(msg)
        elif kind == "log":
            if self.bar is None:
                print(f"{self.label}{ev['message']}")
        elif kind == "done" and self.bar is not None:
            self.bar.close()
            self.bar = None


def _report_split(res, cfg) -> str:
    """The split a run's result is reported on: test when it was evaluated, else its first eval split."""
    return "test" if any(k.startswith("test_") for k in res.metrics) else (cfg.training.splits or ["dev"])[0]


def _summary_line(res, cfg) -> str:
    m = res.metrics
    split = _report_split(res, cfg)

    def g(name):
        v = m.get(f"{split}_{name}")
        return "n/a" if v is None else f"{v:.4f}"

    return (f"{res.run_id} [{res.status}] {split}: acc {g('acc')} macro_f1 {g('macro_f1')} comp {g('comp_aopc')} "
            f"suff {g('suff_aopc')} auprc {g('plaus_auprc')} token_f1 {g('plaus_token_f1')}")


def run_overrides(argv: list[str]) -> int:
    from unirex.config import expand_sweep
    from unirex.engine import resolve_run_config, run

    p = argparse.ArgumentParser(prog="unirex", add_help=False)
    p.add_argument("-m", "--multirun", action="store_true")
    p.add_argument("--workspace")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-h", "--help", action="store_true")
    args, overrides = p.parse_known_args(argv)
    if args.help:
        make_parser().print_help()
        print(__doc__)
        return 0
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise UnirexError(f"'{bad[0]}' is neither a command ({', '.join(SUBCOMMANDS)}) nor a key=value override")
    # training.eval_splits=train,dev,test is one value (a split list), never a sweep
    overrides = [f"{o.split('=', 1)[0]}='{o.split('=', 1)[1]}'" if o.startswith("training.eval_splits=")
                 and not o.split("=", 1)[1].startswith(("'", '"')) else o for o in overrides]
    combos = expand_sweep(overrides) if args.multirun else [overrides]
    if not args.multirun and any("," in o.split("=", 1)[1] and not o.split("=", 1)[1].strip().startswith(("'", '"', "["))
                                 for o in overrides):
        raise UnirexError("a comma list needs -m (multirun), as in Hydra: python -m unirex -m seed=0,1,2")
    cfgs = [resolve_run_config(c, workspace=args.workspace) for c in combos]  # every error before any compute
    results = []
    for i, (cfg, combo) in enumerate(zip(cfgs, combos)):
        label = f"[{i + 1}/{len(cfgs)}] " if len(cfgs) > 1 else ""
        if len(cfgs) > 1:
            print(f"{label}{' '.join(combo)}")
        res = run(cfg, callback=TqdmProgress(label, enabled=not args.no_progress))
        _ingest(cfg, res)
        if os.environ.get("RANK", "0") == "0":
            print(_summary_line(res, cfg))
        results.append((combo, cfg, res))
    if len(results) > 1:
        _print_table(results)
    return 0 if all(r.status == "completed" for _, _, r in results) else 1


def _ingest(cfg, res) -> None:
    if res.run_dir is None:
        return
    try:
        from store import ingest_run

        ingest_run(workspace_dir(cfg.workspace), res.run_dir)
    except UnirexError as e:  # the run directory is the source of truth: `unirex store ingest` catches up
        print(f"warning: run not indexed yet ({e}); run `python -m unirex store ingest` later", file=sys.stderr)


def _print_table(results) -> None:
    varying = sorted({o.split("=", 1)[0] for combo, _, _ in results for o in combo
                      if len({dict(x.split("=", 1) for x in c).get(o.split("=", 1)[0]) for c, _, _ in results}) > 1})
    cols = ["acc", "macro_f1", "comp_aopc", "suff_aopc", "plaus_auprc", "plaus_token_f1"]
    header = ["run_id", "status", *varying, "split", *cols]
    rows = []
    for combo, cfg, res in results:
        kv = dict(x.split("=", 1) for x in combo)
        split = _report_split(res, cfg)
        vals = [res.metrics.get(f"{split}_{c}") for c in cols]
        rows.append([res.run_id, res.status, *[kv.get(v, "") for v in varying], split,
                     *["n/a" if v is None else f"{v:.4f}" for v in vals]])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("\nsummary")
    for r in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)))


# ------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        first = next((a for i, a in enumerate(argv) if not a.startswith("-")
                      and (i == 0 or argv[i - 1] != "--workspace")), None)
        if first in SUBCOMMANDS or (not argv) or (first is None and any(a in ("-h", "--help") for a in argv)):
            args = make_parser().parse_args(argv)
            return args.func(args)
        return run_overrides(argv)
    except UnirexError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
