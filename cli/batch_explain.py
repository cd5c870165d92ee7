"""``python -m unirex explain --run R --file IN --out OUT``: explain every text of a file with one checkpoint
(:meth:`workbench.Workbench.explain_file`), with a progress bar and the throughput at the end."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from unirex.errors import UnirexError
from unirex.text_input import check_top_k
from workbench.batch_explain import COLUMNS, FAITHFULNESS_COLUMNS, check_output, read_inputs

#: texts per forward pass unless --batch-size says otherwise
DEFAULT_BATCH_SIZE = 32


def add_explain_file_args(parser: argparse.ArgumentParser, what) -> None:
    """The batch options of ``explain`` (``what``: the group that makes --text and --file exclusive)."""
    what.add_argument("--file", metavar="IN", help="explain every text of IN instead: one text a line, or JSON Lines "
                                                   "(.jsonl: text, optional query, second_text, id); needs --out")
    parser.add_argument("--out", metavar="OUT", help="with --file: where the rows go, .jsonl or .parquet (one row per "
                                                     f"input: {', '.join(COLUMNS)})")
    parser.add_argument("--overwrite", action="store_true", help="with --file: replace OUT if it exists")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"with --file: sequences a forward pass, texts batched by length (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--faithfulness", action="store_true",
                        help=f"with --file: also {' and '.join(FAITHFULNESS_COLUMNS)} of each rationale (two more "
                             "forward passes a text)")


def explain_file(args, workbench: Callable) -> int:
    """Check the output path and every input line, load the checkpoint once, stream the rows to OUT."""
    from tqdm import tqdm

    if not args.out:
        raise UnirexError("--file needs --out OUT (.jsonl or .parquet)")
    if args.batch_size < 1:
        raise UnirexError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.json:
        raise UnirexError("--json is for --text; with --file the rows go to --out")
    check_top_k(args.top_k)
    check_output(args.out, args.overwrite)
    inputs = read_inputs(args.file)  # every line checked before the model loads
    wb = workbench(args)
    # delay: a checkpoint that fails to load says so in one line, without a bar before it
    with tqdm(total=len(inputs), desc="explain", unit="text", file=sys.stderr, delay=1.0) as bar:
        res = wb.explain_file(args.run, inputs, args.out, extractor=args.extractor, top_k=args.top_k,
                              batch_size=args.batch_size, faithfulness=args.faithfulness, overwrite=args.overwrite,
                              progress=bar.update)
    print(f"wrote {res.rows} rows to {res.out} ({res.extractor}; labels {', '.join(res.labels)})")
    print(f"throughput: {res.examples_per_s:.2f} examples/s ({res.seconds:.2f}s for {res.rows} texts; "
          f"model load {res.load_seconds:.2f}s)")
    return 0


__all__ = ["DEFAULT_BATCH_SIZE", "add_explain_file_args", "explain_file"]
