"""``python -m unirex export-eraser``: a run's ERASER results file (:func:`unirex.export.export_eraser` writes
it; this module holds the command's arguments and its output)."""

from __future__ import annotations

from unirex.export import export_eraser


def _export_command(args) -> int:
    workspace = getattr(args, "export_workspace", None) or getattr(args, "workspace", None)
    path, n = export_eraser(args.run, args.split, args.out, workspace, force=getattr(args, "force", False))
    print(f"wrote {n} ERASER result lines to {path}")
    return 0


def add_export_parser(subparsers) -> None:
    """Register ``export-eraser`` on an argparse ``subparsers`` object (sets ``func``)."""
    p = subparsers.add_parser("export-eraser", help="write a run's ERASER results file (*_decoded.jsonl)",
                              description="Write ERASER's results format for a run's saved evaluation of a split.")
    p.add_argument("--run", required=True, help="run id under <workspace>/runs/, or a run directory")
    p.add_argument("--split", default="test", choices=("train", "dev", "val", "test"))
    p.add_argument("--out", required=True, help="output file (.jsonl); never inside a run folder except its outputs/")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists (its permissions are kept)")
    p.add_argument("--workspace", dest="export_workspace", default=None,
                   help="workspace folder (default: the global --workspace, $UNIREX_WORKSPACE or ./workspace)")
    p.set_defaults(func=_export_command)


__all__ = ["add_export_parser"]
