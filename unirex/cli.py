"""Command line: ``python -m unirex <command> ...`` (also the installed ``unirex`` command).

Commands:
  build-dataset   tokenise an ERASER dataset for an arch and cache it (mirrors UNIREX's build_dataset.py)

Errors in the user's input print one line ``error: ...`` and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from unirex.errors import UnirexError
from unirex.workspace import data_dir as default_data_dir

SPLIT_CHOICES = ("train", "dev", "val", "test", "all")


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


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unirex", description="UNIREX Workbench command line")
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except UnirexError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
