"""``python -m unirex download-dataset``: fetch an ERASER dataset of the catalog into the data folder
(:mod:`unirex.data.download` does the fetching; this module holds the command's arguments and its output)."""

from __future__ import annotations

import argparse
from pathlib import Path

from unirex.data.catalog import CATALOG, ENV_BASE_URL, catalog_rows
from unirex.data.download import describe, ensure_downloaded
from unirex.errors import UnirexError
from unirex.safepath import dataset_path
from unirex.workspace import data_dir as default_data_dir


def _download_command(args) -> int:
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir(args.workspace)
    if args.list or not args.name:
        if not args.list:
            raise UnirexError("name a dataset to download: " + ", ".join(CATALOG) + " (or --list)")
        for r in catalog_rows(data_dir):
            print(f"{r['name']:20s} {r['task_type']:16s} {r['sizes']:>26s}  {r['status']:16s} {r['pinned']:10s}  "
                  f"{r['labels']}")
        return 0
    target = dataset_path(data_dir, args.name)
    if target.exists() and not args.force:
        print(f"{args.name}: already present at {target} (--force fetches it again)")
        return 0
    path = ensure_downloaded(data_dir, args.name, progress=not args.no_progress, source=args.source,
                             force=args.force, hf_id=args.hf_id)
    print(f"{args.name}: {describe(path)} -> {path}")
    return 0


def add_download_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``download-dataset NAME [--data_dir DIR] [--source eraser|hf] [--force]`` to a subparsers object."""
    p = subparsers.add_parser(
        "download-dataset", help="fetch an ERASER dataset (movies, multirc, esnli, ...) into the data folder",
        description="Download, verify and unpack an ERASER dataset into <data_dir>/<NAME>. The archive base "
                    f"address is ${ENV_BASE_URL} (default: the ERASER site).")
    p.add_argument("name", nargs="?", metavar="NAME", help=f"catalog dataset: {', '.join(CATALOG)}")
    p.add_argument("--data_dir", help="folder that receives <NAME>/ (default: <workspace>/data)")
    p.add_argument("--source", choices=("eraser", "hf"), default="eraser",
                   help="eraser: the official archive; hf: the Hugging Face copy, converted (needs `datasets`)")
    p.add_argument("--hf_id", help="with --source hf: another Hugging Face dataset id with the same fields")
    p.add_argument("--force", action="store_true", help="fetch again and replace an existing folder")
    p.add_argument("--list", action="store_true", help="list the catalog and what is present locally")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_download_command)
    return p


__all__ = ["add_download_parser"]
