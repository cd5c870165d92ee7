"""``python -m unirex annotations ...``: human rationale sets (:mod:`workbench.annotations`; the layout is
:mod:`unirex.data.annotations`'s): import and export Label Studio JSON or ERASER, annotator agreement,
the sets and their versions, and merging a set into a dataset's train split."""

from __future__ import annotations

import argparse
import json

from unirex.errors import UnirexError

SPLIT_HELP = ("split of the examples new to the set: train (default), dev, test, or auto (80/10/10 by a hash "
              "of the example's id); an example keeps the split it first got")


def _workbench(args):
    from workbench import Workbench

    return Workbench(getattr(args, "workspace", None))


def _print_save(res, notes=()) -> None:
    counts = ", ".join(f"{s} {n}" for s, n in res.split_counts.items())
    print(f"{res.name}: version {res.version} -> {res.path}")
    print(f"  {res.n_annotations} annotations of {res.n_examples} examples by {len(res.annotators)} annotators "
          f"({', '.join(res.annotators)}); {res.n_added} added, {res.n_replaced} replaced; examples per split: {counts}")
    for n in (*notes, *res.notes):
        print(f"  note: {n}")


def _import(args) -> int:
    ann = _workbench(args).annotations
    if bool(args.label_studio) == bool(args.eraser):
        raise UnirexError("give one of --label-studio FILE or --eraser FOLDER")
    if args.label_studio:
        labels = tuple(x.strip() for x in args.labels.split(",") if x.strip()) if args.labels else None
        report, res = ann.import_label_studio(args.label_studio, args.name, split=args.split,
                                              rationale_labels=tuple(args.rationale_label or ["Rationale"]),
                                              class_labels=labels)
        print(f"read {report.n_tasks} tasks: {len(report.annotations)} annotations by {len(report.annotators)} "
              f"annotators, {report.n_skipped} skipped")
        _print_save(res, report.notes)
    else:
        _print_save(ann.import_eraser(args.eraser, args.name, annotator=args.annotator))
    return 0


def _export(args) -> int:
    ann = _workbench(args).annotations
    if bool(args.label_studio) == bool(args.eraser):
        raise UnirexError("give one of --label-studio FILE or --eraser FOLDER")
    if args.label_studio:
        path, n = ann.export_label_studio(args.name, args.label_studio, force=args.force)
        print(f"wrote {n} Label Studio tasks to {path}")
    else:
        path = ann.export_eraser(args.name, args.eraser)
        print(f"wrote the latest version of {args.name} (ERASER layout) to {path}")
    return 0


def _agreement(args) -> int:
    ag = _workbench(args).annotations.agreement(args.name)
    if args.json:
        print(json.dumps(ag.to_json(), indent=1))
        return 0
    if not ag.n_examples:
        print(f"{args.name}: no example has two annotators ({len(ag.annotators)} annotator(s): "
              f"{', '.join(ag.annotators)})")
        return 0
    print(f"{args.name}: token-level Cohen's kappa {ag.kappa:.3f}, pairwise F1 {ag.f1:.3f} over {ag.n_examples} "
          f"examples with two or more of the {len(ag.annotators)} annotators")
    for p in ag.pairs:
        print(f"  {p.a} / {p.b}: kappa {p.kappa:.3f}, F1 {p.f1:.3f} ({p.n_examples} examples, {p.n_words} words)")
    print("examples, most disagreement first:")
    for e in ag.examples[:args.top]:
        labels = "" if e.labels_agree else f"  labels differ: {', '.join(e.labels)}"
        print(f"  {e.example_id}: kappa {e.kappa:.3f}, F1 {e.f1:.3f} ({', '.join(e.annotators)}){labels}  {e.preview}")
    return 0


def _list(args) -> int:
    ann = _workbench(args).annotations
    names = ann.sets()
    if not names:
        print("no annotation set yet")
    for n in names:
        s = ann.load(n)
        print(f"{n}: version {s.version}, {len(s.annotations)} annotations of {len(s.examples)} examples by "
              f"{', '.join(s.annotators)}")
    return 0


def _merge(args) -> int:
    r = _workbench(args).annotations.merge(args.name, args.into, args.out)
    print(f"{r.name}: {r.base} with {r.n_added} annotations of {r.set_name} (version {r.set_version}) added to "
          f"train ({r.n_train} train examples) -> {r.path}")
    return 0


def add_annotations_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``annotations import|export|agreement|list|merge`` on an argparse ``subparsers`` object."""
    p = subparsers.add_parser("annotations", help="human rationale sets: Label Studio/ERASER import and export, "
                                                  "agreement, merge into a train split")
    sub = p.add_subparsers(dest="annotations_command", metavar="ACTION", required=True)

    i = sub.add_parser("import", help="import a Label Studio JSON export or an ERASER folder as a new version of a set")
    i.add_argument("--label-studio", dest="label_studio", metavar="FILE", help="Label Studio JSON export")
    i.add_argument("--eraser", metavar="FOLDER", help="an ERASER dataset folder (an exported set keeps its annotators)")
    i.add_argument("--name", required=True, help="the annotation set (a dataset name; made on first import)")
    i.add_argument("--split", default="train", choices=("train", "dev", "test", "auto"), help=SPLIT_HELP)
    i.add_argument("--rationale-label", dest="rationale_label", action="append", metavar="NAME",
                   help="a span label that marks the rationale (default Rationale; repeat for several)")
    i.add_argument("--labels", metavar="A,B", help="the class labels allowed (default: any)")
    i.add_argument("--annotator", default="eraser", help="with --eraser: the annotator of a plain ERASER folder")
    i.set_defaults(func=_import)

    e = sub.add_parser("export", help="write a set's latest version as a Label Studio JSON export or an ERASER folder")
    e.add_argument("--name", required=True, help="the annotation set")
    e.add_argument("--label-studio", dest="label_studio", metavar="FILE", help="the JSON file to write")
    e.add_argument("--eraser", metavar="FOLDER", help="a new folder to copy the ERASER dataset to")
    e.add_argument("--force", action="store_true", help="replace an existing --label-studio file")
    e.set_defaults(func=_export)

    a = sub.add_parser("agreement", help="token-level Cohen's kappa and pairwise F1 between a set's annotators")
    a.add_argument("name", help="the annotation set")
    a.add_argument("--json", action="store_true", help="print kappa, f1, n_examples, annotators (and the details) as JSON")
    a.add_argument("--top", type=int, default=20, help="examples listed (most disagreement first)")
    a.set_defaults(func=_agreement)

    ls = sub.add_parser("list", help="the annotation sets of the workspace")
    ls.set_defaults(func=_list)

    m = sub.add_parser("merge", help="a new dataset: a dataset with a set's annotations added to its train split")
    m.add_argument("--name", required=True, help="the annotation set")
    m.add_argument("--into", required=True, help="the base dataset (read, never changed)")
    m.add_argument("--out", required=True, help="the new dataset's name")
    m.set_defaults(func=_merge)
    for sp in sub.choices.values():  # --workspace also after the action
        sp.add_argument("--workspace", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


__all__ = ["add_annotations_parser"]
