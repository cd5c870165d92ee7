"""Runs from UNIREX's own ``key=value`` overrides, in the foreground (``python -m unirex [-m] key=value ...``).

``-m`` (``--multirun``) sweeps every comma list (the cartesian product, as Hydra's basic sweeper) and
prints a summary table; every configuration is resolved and checked before the first run starts. Each
run prints one tqdm bar over the whole run (its training epochs and evaluations as phases, the ETA to its
end with evaluation included, the wall time), an evaluation line per epoch, its run folder, the command line
that reproduces it, and a one-line result.

``launcher=ray|slurm`` (with ``launcher.*`` options, :mod:`workbench.launchers.options`) sends every run to
a cluster instead: the runs are queued in the workspace, submitted by a dispatcher in this process, and
followed to their end (a tqdm bar over finished runs, a line per finished run, each indexed in the store
as it ends, the summary table); Ctrl-C cancels them. ``launcher=local`` (the default) runs them here, one
after the other.
"""

from __future__ import annotations

import os
import sys
import time

from tqdm import tqdm

from cli.parsing import OneLineErrorParser
from cli.render import table
from unirex.errors import UnirexError
from unirex.events import DoneEvent, EvalEvent, EvalProgressEvent, EvalStartEvent, Event, LogEvent, PlanEvent, StepEvent
from unirex.metrics.registry import Family, Headline, metric_keys, metrics
from unirex.progress import JobTracker
from workbench import RunOutcome, Workbench, comma_lists, quote_one_value_keys
from workbench.launchers import split_launcher_overrides
from workbench.launchers.dispatch import Dispatcher


class TqdmProgress:
    """Engine events -> one tqdm bar over the whole run (training and every evaluation, :mod:`unirex.progress`):
    the phase running now, the ETA to the end of the run (evaluation included) and the wall time since it
    began; a line per evaluation and per message."""

    #: the bar counts thousandths of the run
    SCALE = 1000

    def __init__(self, label: str = "", enabled: bool = True):
        self.label, self.enabled, self.bar = label, enabled, None
        self.tracker = JobTracker()
        self.loss: float | None = None

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _write(self, msg: str) -> None:
        tqdm.write(msg) if self.enabled else print(msg)

    def _show(self) -> None:
        est = self.tracker.estimate()
        if est is None or not self.enabled:
            return
        if self.bar is None:
            self.bar = tqdm(total=self.SCALE, desc=f"{self.label}run", dynamic_ncols=True, leave=False,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}{postfix}")
        where = est.phase_label or "preparing"
        if est.phase_total:
            where += f" {est.phase_done}/{est.phase_total} {est.phase_unit}s"
        live = [ph for ph in est.phases if ph.state != "skipped"]
        at = next((i for i, ph in enumerate(live) if ph.state == "running"), None)
        if at is not None:
            where += f" (phase {at + 1}/{len(live)})"
        self.bar.set_description_str(f"{self.label}{where}", refresh=False)
        eta = "?" if est.eta_s is None else tqdm.format_interval(est.eta_s)
        post = f"elapsed {tqdm.format_interval(est.elapsed_s)}, ETA {eta}"
        if self.loss is not None and est.phase_unit == "step":
            post += f", loss {self.loss:.4f}"
        self.bar.set_postfix_str(post, refresh=False)
        self.bar.update(int(est.fraction * self.SCALE) - self.bar.n)

    def __call__(self, ev: Event) -> None:
        self.tracker.update(ev)
        if isinstance(ev, StepEvent):
            self.loss = ev.losses.get("loss")
        if isinstance(ev, (PlanEvent, StepEvent, EvalStartEvent, EvalProgressEvent)):
            self._show()
        elif isinstance(ev, EvalEvent):
            m = ev.metrics
            where = f"epoch {ev.epoch + 1} " if ev.epoch is not None else ""
            self._write(f"{self.label}{where}{ev.split}: {progress_metrics(m)}")
        elif isinstance(ev, LogEvent):
            self._write(f"{self.label}{ev.message}")
        elif isinstance(ev, DoneEvent):
            est = self.tracker.estimate()
            self._close()
            if est is not None and self.enabled:
                self._write(f"{self.label}{ev.status} in {tqdm.format_interval(est.elapsed_s)} (wall time, "
                            "training and evaluation)")


def _value(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def progress_metrics(m: dict) -> str:
    """An evaluation's brief headline metrics for the progress line (``acc 0.9000  comp ...``); a
    plausibility metric only when the split has gold rationales (a value)."""
    return "  ".join(f"{s.short} {_value(m.get(s.key))}" for s in metrics(headline=Headline.BRIEF)
                     if s.family is not Family.PLAUSIBILITY or m.get(s.key) is not None)


def summary_line(res: RunOutcome) -> str:
    m = res.metrics
    split = res.split
    values = " ".join(f"{s.short} {_value(m.get(f'{split}_{s.key}'))}" for s in metrics(headline=Headline.SUMMARY))
    return f"{res.run_id} [{res.status}] {split}: {values}"


def run_overrides(argv: list[str], subcommands: tuple[str, ...]) -> int:
    p = OneLineErrorParser(prog="unirex", add_help=False)  # `--workspace` without a folder: one line
    p.add_argument("-m", "--multirun", action="store_true")
    p.add_argument("--workspace")
    p.add_argument("--no-progress", action="store_true")
    args, overrides = p.parse_known_args(argv)
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise UnirexError(f"'{bad[0]}' is neither a command ({', '.join(subcommands)}) nor a key=value override "
                          "(python -m unirex --help shows both)")
    overrides, launcher = split_launcher_overrides(overrides)  # launcher keys are not run keys
    overrides = quote_one_value_keys(overrides)
    if not args.multirun and comma_lists(overrides):
        raise UnirexError("a comma list needs -m (multirun), as in Hydra: python -m unirex -m seed=0,1,2")
    if launcher.remote:
        return run_remote(args, overrides, launcher)
    given = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].strip() == "workspace"]
    wb = Workbench(args.workspace or (given[-1] if given else None))
    planned = wb.plan_here(overrides, sweep=args.multirun)  # every error before any compute
    results = []
    rank0 = os.environ.get("RANK", "0") == "0"
    for i, run in enumerate(planned):
        label = f"[{i + 1}/{len(planned)}] " if len(planned) > 1 else ""
        if len(planned) > 1:
            print(f"{label}{' '.join(run.overrides)}")
        res = wb.run_here(run, callback=TqdmProgress(label, enabled=not args.no_progress and rank0))
        if res.index_error:  # the run directory is the source of truth: `unirex store sync` catches up
            print(f"warning: run not indexed yet ({res.index_error}); run `python -m unirex store sync` later",
                  file=sys.stderr)
        if rank0:
            print(summary_line(res))
            if res.run_dir is not None:
                print(f"  run folder: {res.run_dir}\n  reproduce:  {run.command}")
        results.append((list(run.overrides), res))
    if len(results) > 1:
        _print_table(results)
    return 0 if all(r.status == "completed" for _, r in results) else 1


def run_remote(args, overrides: list[str], launcher) -> int:
    """``launcher=ray|slurm``: queue every run of the sweep for this process's dispatcher, follow them to their
    end, print a line per finished run and the summary table. Exit status 0 when every run completed, 1 when
    one did not, 130 after Ctrl-C (which cancels the jobs still running: cleanly first, at once on a second
    Ctrl-C)."""
    workspace = args.workspace
    given = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].strip() == "workspace"]
    if given:  # runs go into one workspace, the one the dispatcher and the store use
        workspace = given[-1]
        overrides = [o for o in overrides if o.split("=", 1)[0].strip() != "workspace"]
    wb = Workbench(workspace)
    jobs = wb.submit(overrides, sweep=args.multirun, launcher=launcher.name, launcher_options=launcher, reserve=True)
    cfgs = {j.job_id: wb.resolve(j.overrides) for j in jobs}
    where = " ".join(launcher.to_args()) or "default options"
    print(f"{len(jobs)} run{'s' * (len(jobs) > 1)} queued for launcher={launcher.name} ({where}) in {wb.workspace}; "
          "Ctrl-C cancels them", flush=True)
    disp = Dispatcher(wb.jobs, job_ids={j.job_id for j in jobs})
    pending = {j.job_id: j for j in jobs}
    ended: dict[str, object] = {}
    interrupts = 0
    bar = tqdm(total=len(jobs), desc=f"{launcher.name} sweep", unit="run", dynamic_ncols=True,
               disable=args.no_progress)
    order = [j.job_id for j in jobs]
    try:
        while pending:
            try:
                disp.step()
                states = {jid: wb.jobs.get(jid) for jid in pending}
                for jid, job in states.items():
                    if job.active:
                        continue
                    pending.pop(jid)
                    res = wb.job_outcome(job, cfgs[jid])
                    ended[jid] = (job, res)
                    label = f"[{order.index(jid) + 1}/{len(jobs)}] " if len(jobs) > 1 else ""
                    line = (f"{label}{summary_line(res)}" if res.metrics else f"{label}{job.run_id} [{job.status}]"
                            + ("" if res.run_dir is not None else " (no run folder)"))
                    if job.error and job.status != "completed":
                        line += f"\n  error: {job.error}"
                    if res.run_dir is not None:
                        line += f"\n  run folder: {res.run_dir}\n  reproduce:  {job.command}"
                    bar.update(1)
                    tqdm.write(line) if not args.no_progress else print(line, flush=True)
                running = sum(1 for j in states.values() if j.status == "running")
                bar.set_postfix(running=running, waiting=sum(1 for j in states.values() if j.status == "waiting"))
                if pending:
                    time.sleep(disp.poll_s)
            except KeyboardInterrupt:
                interrupts += 1
                ids = disp.cancel_all(hard=interrupts > 1)
                msg = (f"cancelling {len(ids)} job(s): each stops within a training step "
                       f"(Ctrl-C again stops them at once)" if interrupts == 1 else f"stopping {len(ids)} job(s) now")
                tqdm.write(msg, file=sys.stderr)
    finally:
        bar.close()
        disp.close()
    results = [(list(job.overrides), res) for jid in order if jid in ended for job, res in [ended[jid]]]
    if len(results) > 1:
        _print_table(results)
    if interrupts:
        return 130
    return 0 if all(res.status == "completed" for _, res in results) else 1


def _print_table(results: list[tuple[list[str], RunOutcome]]) -> None:
    varying = sorted({o.split("=", 1)[0] for combo, _ in results for o in combo
                      if len({dict(x.split("=", 1) for x in c).get(o.split("=", 1)[0]) for c, _ in results}) > 1})
    cols = metric_keys(headline=Headline.SUMMARY)
    rows = []
    for combo, res in results:
        kv = dict(x.split("=", 1) for x in combo)
        split = res.split
        rows.append([res.run_id, res.status, *[kv.get(v, "") for v in varying], split,
                     *[res.metrics.get(f"{split}_{c}") for c in cols]])
    print("\nsummary")
    table(["run_id", "status", *varying, "split", *cols], rows)


__all__ = ["TqdmProgress", "run_overrides", "run_remote", "summary_line"]
