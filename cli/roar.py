"""``python -m unirex roar``: remove and retrain on a finished run (:mod:`workbench.roar` does the work; this module
holds the command's arguments and its output).

    python -m unirex roar --run R --k 10,20,50 [--arms extractor,random,gold] [--recursive] [--launcher ray]
                          [launcher.gpus_per_job=1 ...] [--dry-run] [--wait]
    python -m unirex roar --run R --report [--json]
    python -m unirex roar --run R --advance          (recursive ROAR: the next k of a chain whose last k finished)
"""

from __future__ import annotations

import json
import sys
import time

from unirex.errors import UnirexError


def _launcher(args) -> tuple[str, list[str]]:
    """``(launcher name, launcher.key=value options)`` from ``--launcher`` and the trailing launcher keys."""
    bad = [o for o in args.launcher_keys if "=" not in o or not o.split("=", 1)[0].startswith("launcher")]
    if bad:
        raise UnirexError(f"roar takes launcher keys only after its options (launcher.gpus_per_job=1, ...), not '{bad[0]}'")
    name = args.launcher
    opts = []
    for o in args.launcher_keys:
        key, value = o.split("=", 1)
        if key.strip() == "launcher":
            name = value.strip()
        else:
            opts.append(o)
    return name, opts


def _print_report(rep, as_json: bool) -> None:
    from cli.render import table

    if as_json:
        import dataclasses

        print(json.dumps(dataclasses.asdict(rep), indent=1))
        return
    base = "n/a" if rep.baseline is None else f"{rep.baseline:.4f}"
    print(f"ROAR of {rep.run_id} on {rep.dataset}: {rep.split} accuracy of the retrained models (run itself, k=0: {base})")
    if not rep.points:
        print("no ROAR copies of this run yet (python -m unirex roar --run RUN --k 10,20,50 makes them)")
        return
    table(["arm", "k", "accuracy", "runs", "status", "dataset"],
          [[p.arm, p.k, p.accuracy, len(p.runs), p.status, p.dataset] for p in rep.points])


def _wait(wb, job_ids: set[str], recursive_run: str | None, progress: bool) -> int:
    """Run the queued jobs in this process (the local worker, and the dispatcher for ray/slurm) until they end;
    recursive ROAR queues each next k as the previous one completes."""
    from tqdm import tqdm

    wb.start_worker()
    bar = tqdm(total=len(job_ids), desc="ROAR retraining", unit="run", disable=not progress)
    try:
        while True:
            jobs = [wb.job(j) for j in job_ids]
            left = [j for j in jobs if j.active]
            bar.n = len(jobs) - len(left)
            bar.refresh()
            if recursive_run is not None and not left:
                new = wb.roar.advance(recursive_run)
                for it in new:
                    job_ids.add(it.job_id)
                    bar.total = len(job_ids)
                    tqdm.write(f"{it.job_id}: queued as run {it.run_id} on {it.dataset} ({it.arm}, k={it.k})")
                if new:
                    continue
            if not left:
                break
            time.sleep(1.0)
    finally:
        bar.close()
        wb.stop_worker()
    return 0 if all(wb.job(j).status == "completed" for j in job_ids) else 1


def _roar_command(args) -> int:
    from workbench import Workbench

    wb = Workbench(args.workspace)
    if args.report:
        _print_report(wb.roar.report(args.run), args.json)
        return 0
    if args.advance:
        new = wb.roar.advance(args.run)
        for it in new:
            print(f"{it.job_id}: queued as run {it.run_id} on {it.dataset} ({it.arm}, k={it.k})")
        if not new:
            print("nothing to advance: no recursive chain of this run has a finished step with a k left")
        return 0
    if args.k is None:
        raise UnirexError("roar needs --k (e.g. --k 10,20,50), or --report / --advance")
    name, opts = _launcher(args)
    from tqdm import tqdm

    bars = []  # made at the first progress report: after every input was checked (an error prints one line)

    def progress(frac: float, msg: str) -> None:
        if not bars:
            bars.append(tqdm(total=100, desc="ROAR copies", unit="%", disable=args.no_progress, leave=False))
        bars[0].n = int(100 * frac)
        bars[0].set_postfix_str(msg, refresh=True)

    try:
        plan = wb.roar.submit(args.run, args.k, args.arms, recursive=args.recursive, launcher=name, launcher_options=opts,
                              dry_run=args.dry_run, seed=args.seed, on_progress=progress)
    finally:
        for b in bars:
            b.close()
    if args.json:
        import dataclasses

        print(json.dumps(dataclasses.asdict(plan), indent=1, default=str))
    else:
        verb = "would write" if plan.dry_run else "wrote"
        for it in plan.items:
            frac = "" if it.removed_fraction is None else f" ({100 * it.removed_fraction:.1f}% of the words removed)"
            print(f"{verb} {plan.data_dir / it.dataset}{frac}")
            if plan.dry_run:
                print(f"  would queue: {it.command}")
            else:
                print(f"  {it.job_id}: queued as run {it.run_id} (launcher={plan.launcher})")
        if plan.pending:
            print(f"recursive ROAR: k={','.join(map(str, plan.pending))} follow, each once the previous k's retraining "
                  f"has finished (python -m unirex roar --run {plan.run_id} --advance, or --wait)")
        if not plan.dry_run and not args.wait:
            print(f"the app's worker runs local jobs (python -m unirex queue lists them; --wait runs them here); "
                  f"python -m unirex roar --run {plan.run_id} --report shows accuracy against k")
    if plan.dry_run or not args.wait:
        return 0
    rc = _wait(wb, {it.job_id for it in plan.items}, plan.run_id if plan.recursive else None, not args.no_progress)
    _print_report(wb.roar.report(plan.run_id), False)
    return rc


def add_roar_parser(subparsers) -> None:
    """Register ``roar`` on an argparse ``subparsers`` object (sets ``func``)."""
    p = subparsers.add_parser(
        "roar", help="remove and retrain: a run's dataset without each extractor's top-k%% words, retrained",
        description="ROAR (Hooker et al., 2019): copies of a finished run's dataset with the top-k%% words of every "
                    "document removed (ranked by the run's extractor; a random removal of the same size as the control; "
                    "optionally the gold rationale), written under the data folder as <dataset>-roar-<run>-<arm>-k<k>, "
                    "and one retraining job per copy (the run's own config) through the queue. --report: accuracy "
                    "against k per arm.")
    p.add_argument("--run", required=True, help="run id of a finished training run with a checkpoint")
    p.add_argument("--k", help="percentages of each document's words to remove, comma separated (1..99), e.g. 10,20,50")
    p.add_argument("--arms", help="extractor,random (default), and gold for datasets with gold evidence")
    p.add_argument("--recursive", action="store_true",
                   help="recursive ROAR (Madsen et al., 2022): each k's extractor removal ranked by the model retrained "
                        "at the previous k (the words removed before stay removed)")
    p.add_argument("--launcher", default="local", help="local (the app's worker, or --wait), ray or slurm")
    p.add_argument("launcher_keys", nargs="*", metavar="launcher.KEY=VALUE",
                   help="the launcher's options, as a sweep takes them (python -m unirex keys launcher)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random removal and of ties (default 0)")
    p.add_argument("--dry-run", dest="dry_run", action="store_true", help="print the copies and jobs, write nothing")
    p.add_argument("--wait", action="store_true", help="run the jobs here (local) or follow them (ray/slurm) to their end")
    p.add_argument("--report", action="store_true", help="accuracy per arm per k from the finished retrainings")
    p.add_argument("--advance", action="store_true", help="recursive ROAR: queue the next k of a finished step")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-progress", dest="no_progress", action="store_true")
    p.set_defaults(func=_roar_command)


__all__ = ["add_roar_parser"]
