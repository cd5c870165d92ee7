"""The workbench API: one facade both fronts (the Gradio app and the CLI) call.

``Workbench(workspace)`` offers, over one workspace folder:

* runs: :meth:`~Workbench.submit` (one run or a sweep of overrides, queued; returns at once),
  :meth:`~Workbench.queue`, :meth:`~Workbench.cancel`, :meth:`~Workbench.requeue`, :meth:`~Workbench.resume`,
  :meth:`~Workbench.progress`, :meth:`~Workbench.runs` / :meth:`~Workbench.runs_frame`, :meth:`~Workbench.run`
  (one run in full), :meth:`~Workbench.delete_run`, and the follow-ups that queue jobs on a run
  (evaluate, finetune, save attributions, measure explainer runtime);
* explaining typed text with a checkpoint: :meth:`~Workbench.explain` (loaded checkpoints are cached);
* comparing methods over seeds with NRG: :meth:`~Workbench.compare`, :meth:`~Workbench.nrg`;
* datasets: :meth:`~Workbench.datasets`.

Datasets and sharing (exports, Hub uploads) are focused services behind the facade
(:class:`workbench.dataset_service.DatasetService` as ``wb.data``, :class:`workbench.sharing.SharingService`
as ``wb.sharing``), and so is explaining (:class:`workbench.explain_service.ExplainService` as
``wb.explainer``); the facade keeps their method names. Human rationale sets are one too
(:class:`workbench.annotations.AnnotationService` as ``wb.annotations``), called through it directly.

Runs are queued for the background worker (:mod:`workbench.jobs`) when ``start_worker`` is set (the app);
the CLI runs its own commands in the foreground through :meth:`~Workbench.plan_here` and
:meth:`~Workbench.run_here`, which make and index a run the same way the worker does.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl

from store import (CorruptRunInfo, RunFilter, SyncReport, corrupt_runs, db_path, headline_metrics, ingest_all,
                   ingest_run, rebuild, sync)
from unirex.config import expand_sweep, identify_method
from unirex.errors import DiskFullError, UnirexError, scrub_secrets
from unirex.events import (DoneEvent, EvalProgressEvent, EvalStartEvent, Event, LogEvent, StartEvent,
                           StepEvent, parse_events)
from unirex.flipspec import FlipOptions
from unirex.progress import JobTracker
from unirex.runs import RunDir, RunStatus, debug_of, flat_metrics, new_run_id
from unirex.workspace import workspace_dir
from workbench import compare as _compare
from workbench.annotations import AnnotationService
from workbench.batch_explain import BatchInput, BatchResult
from workbench.checkpoints import CheckpointCache
from workbench.curves import CurveReader, empty_curves
from workbench.dataset_service import DatasetService
from workbench.counterfactual import CounterfactualService, EditDiff, FlipOutcome, FlipSplitSummary
from workbench.explain_service import ExplainService
from workbench.jobs import CancelToken, JobQueue, Worker, new_job_id, owner_alive
from workbench.launchers import (LAUNCHERS, LauncherOptions, check_launcher_folder, refuse_server_keys,
                                 split_launcher_overrides, with_server_values, without_server_keys)
from workbench.records import (CatalogRow, CheckpointInfo, Comparison, DatasetExample, DatasetSummary, Explanation,
                               ExportedFile, Job, MethodPreset, PairTest, PlannedRun, Progress, RunCurves, RunDetail,
                               RunOutcome, RunSummary, ScoreScale, SettingsCheck)
from workbench.roar import RoarService
from workbench.safety import PathPolicy, check_name, redact
from workbench.sharing import SharingService
from workbench.sweeps import ONE_VALUE_KEYS, comma_lists, quote_one_value_keys

# LAUNCHERS ("local", "ray", "slurm") comes from workbench.launchers; launcher_fields(name) lists each one's options


#: what a POSIX shell passes as it is, unquoted (``shlex.quote``'s own set)
_SHELL_SAFE = re.compile(r"[\w@%+=:,./-]+")
#: what a double-quoted shell word would still interpret
_DOUBLE_QUOTE_SPECIAL = re.compile(r'["\\$`!]')


def shell_word(arg: str) -> str:
    """``arg`` as one word of a POSIX shell command, quoted once as a person would type it: as it is when
    nothing in it needs quoting (``training.eval_splits=train,dev,test``), in double quotes when it holds
    single quotes and nothing a double-quoted word interprets (``"tags='a b'"``), else ``shlex.quote``."""
    if arg and _SHELL_SAFE.fullmatch(arg):
        return arg
    if "'" in arg and not _DOUBLE_QUOTE_SPECIAL.search(arg):
        return f'"{arg}"'
    return shlex.quote(arg)


def _unquoted_one_value(override: str) -> str:
    """``training.eval_splits='train,dev,test'`` -> ``training.eval_splits=train,dev,test``: the command line
    takes a comma list of these keys as one value (:data:`workbench.sweeps.ONE_VALUE_KEYS`) without quotes."""
    key, sep, value = override.partition("=")
    if (sep and key.strip() in ONE_VALUE_KEYS and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
            and _SHELL_SAFE.fullmatch(value[1:-1])):
        return f"{key}={value[1:-1]}"
    return override


def command_line(overrides: list[str] | tuple[str, ...], sweep: bool = False) -> str:
    """The shell command that runs ``overrides``: ``python -m unirex key=value ...``, each word quoted once as a
    person would type it (:func:`shell_word`); ``sweep`` adds ``-m`` (one run per combination of the comma
    lists)."""
    return "python -m unirex " + ("-m " if sweep else "") + " ".join(shell_word(_unquoted_one_value(o))
                                                                     for o in overrides)


def format_value(value) -> str:
    """A config value as an override writes it (``null``, ``True``, ``[1.0, 5.0]``, a quoted comma string)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"'{value}'" if ("," in value or " " in value) and value[:1] not in ("'", '"') else value
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def report_split(metrics: dict[str, float], cfg) -> str:
    """The split a run's result is reported on: test when it was evaluated, else its first eval split."""
    return "test" if any(k.startswith("test_") for k in metrics) else (cfg.training.splits or ["dev"])[0]


def _title(cfg) -> str:
    return f"{identify_method(cfg)} · {cfg.data.dataset} · seed {cfg.seed}"


class Workbench:
    """The application layer over one workspace (see the module docstring).

    Args:
        workspace: the workspace folder (default: ``$UNIREX_WORKSPACE`` or ``./workspace``).
        start_worker: start the background worker thread (the app does; the CLI does not).
        confine: resolve every path a caller gives (dataset names, ``data_dir=``, archs, checkpoints,
            output files) inside the workspace and refuse the rest (:mod:`workbench.safety`); the app
            sets it, the CLI (a user's own shell) does not.
        trusted_archs: archs allowed wherever they are (those the app's operator named at start).
        launcher_settings: the launcher settings that run a command or name a folder or a cluster
            (``{"slurm.setup": ..., "slurm.folder": ..., "ray.address": ...}``, the app's
            :func:`~workbench.launchers.server_launcher_values`): with ``confine`` they come only from here,
            a caller's are refused; they fill in what a caller leaves at the default.
    """

    def __init__(self, workspace: str | Path | None = None, start_worker: bool = False, confine: bool = False,
                 trusted_archs: tuple[str, ...] | list[str] = (), launcher_settings: dict[str, str] | None = None):
        self.workspace = workspace_dir(workspace)
        self._workspace_arg = None if workspace is None else str(workspace)  # as given: a run's config records it
        self.launcher_settings = dict(launcher_settings or {})
        self.runs_root = self.workspace / "runs"
        self.policy = PathPolicy(self.workspace, tuple(trusted_archs), confine)
        self.jobs = JobQueue(self.workspace)
        self.checkpoints = CheckpointCache(self.runs_root)
        self.curve_reader = CurveReader(self.runs_root)
        self.data = DatasetService(self.workspace, self.policy)
        self.explainer = ExplainService(self.policy, self.checkpoints, lambda: self.runs(limit=None))
        self.counterfactuals = CounterfactualService(self.policy, self.checkpoints, self.explainer)
        self.sharing = SharingService(self.workspace, self.policy, self._run_dir, self._workspace_arg)
        self.roar = RoarService(self)  # remove and retrain on a run (workbench.roar)
        self.annotations = AnnotationService(self.policy)  # human rationale sets (workbench.annotations)
        self.worker: Worker | None = None
        self.dispatcher = None  # workbench.launchers.dispatch.Dispatcher: the ray/slurm jobs
        if start_worker:
            self.start_worker()

    @property
    def data_dir(self) -> Path:
        return self.workspace / "data"

    @property
    def exports_dir(self) -> Path:
        """``<workspace>/exports``: files written for the user to download (tables, ERASER results)."""
        return self.sharing.exports_dir

    def public_message(self, error: BaseException | str) -> str:
        """An error's message with secrets (the Hub token, the app's login) and server paths outside the
        workspace removed (what a front may show)."""
        return redact(scrub_secrets(str(error)), self.workspace)

    # ------------------------------------------------------------------------------------ the queue
    def start_worker(self) -> Worker:
        """Restore the queue after a restart (running jobs of dead processes become interrupted) and start
        the background worker, and next to it the dispatcher of ``ray``/``slurm`` jobs (it imports Ray or
        submitit only when such a job comes)."""
        from workbench.launchers.dispatch import Dispatcher

        self.jobs.restore()
        if self.worker is None:
            self.worker = Worker(self.jobs, self._run_job)
        self.worker.start()
        if self.dispatcher is None:
            self.dispatcher = Dispatcher(self.jobs)
        self.dispatcher.start()
        return self.worker

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()

    def resolve(self, overrides: list[str] | tuple[str, ...]):
        """The config ``overrides`` give in this workspace (every error before any compute)."""
        from unirex.engine import resolve_run_config

        return resolve_run_config(list(overrides), workspace=str(self.workspace))

    def _plan(self, overrides: list[str] | tuple[str, ...], sweep: bool, launcher: str = "local",
              launcher_options: dict | list[str] | LauncherOptions | None = None):
        """``(overrides, combinations, configs, launcher options)``: every combination resolved and checked,
        ``launcher=`` / ``launcher.*`` keys taken out of ``overrides`` (UnirexError if anything is wrong)."""
        overrides = [o.strip() for o in overrides if o and o.strip()]
        if self.policy.confine:  # settings that run commands or name folders on the server: the server's own
            refuse_server_keys(overrides, launcher_options)
        overrides, opts = split_launcher_overrides(overrides, launcher, launcher_options)
        opts = with_server_values(opts, self.launcher_settings)
        check_launcher_folder(opts, self.workspace)
        if any(o.startswith("workspace=") for o in overrides):
            raise UnirexError("workspace= cannot be set per run here: runs go into this workspace")
        overrides = self.policy.overrides(overrides)
        combos = expand_sweep(quote_one_value_keys(overrides)) if sweep else [overrides]  # tags=a,b: one value
        listed = [] if sweep else comma_lists(overrides)
        if listed:
            raise UnirexError(f"'{listed[0]}' is a comma list: tick 'sweep' (-m) to queue one run per value")
        cfgs = [self.resolve(c) for c in combos]
        for cfg in cfgs:  # the path checks apply to the final values (a checkpoint's saved config included)
            self.policy.resolved(cfg)
        return overrides, combos, cfgs, opts

    def submit(self, overrides: list[str] | tuple[str, ...], sweep: bool = False, launcher: str = "local",
               launcher_options: dict | list[str] | LauncherOptions | None = None, reserve: bool = False) -> list[Job]:
        """Queue one run, or with ``sweep`` one run per combination of the comma lists (Hydra's ``-m``).
        Every combination is resolved and checked first; nothing is queued when one is wrong.

        ``launcher`` (one of :data:`LAUNCHERS`): ``local`` runs on this process's worker thread; ``ray`` and
        ``slurm`` go through the dispatcher to the cluster. ``launcher_options``: that launcher's options as
        a mapping without the ``launcher.`` prefix (``{"gpus_per_job": 1, "ray.address": "auto"}``), or
        ``launcher.key=value`` strings; ``workbench.launchers.launcher_fields(name)`` lists them. ``launcher=``
        and ``launcher.*`` keys among ``overrides`` work too (the command line's form) and are taken out:
        they never reach a run's config or its recorded command line. ``reserve``: only this process's own
        dispatcher may take the jobs (the CLI's foreground sweep).
        """
        overrides, combos, cfgs, opts = self._plan(overrides, sweep, launcher, launcher_options)
        opts.check_available()
        sweep_id = new_job_id().replace("J-", "S-") if len(combos) > 1 else None
        from workbench.jobs import this_owner

        jobs = [Job(job_id=new_job_id(), run_id=new_run_id(), overrides=tuple(c), command=command_line(c),
                    launcher=opts.name, sweep_id=sweep_id, title=_title(cfg), launcher_args=opts.to_args(),
                    owner=this_owner() if reserve else None) for c, cfg in zip(combos, cfgs)]
        jobs = self.jobs.add(jobs)
        if self.worker is not None:
            self.worker.wake()
        if self.dispatcher is not None:
            self.dispatcher.wake()
        return jobs

    def check(self, overrides: list[str] | tuple[str, ...], sweep: bool = False, launcher: str = "local",
              launcher_options: dict | list[str] | LauncherOptions | None = None) -> SettingsCheck:
        """What :meth:`submit` would do with ``overrides``, without queueing: ``ok`` with the number of runs
        and the command line, or the config's own message (unknown keys get "did you mean ...")."""
        from unirex.config import flatten

        clean = tuple(o.strip() for o in overrides if o and o.strip())
        cmd = command_line(clean, sweep=sweep)
        try:
            _, combos, cfgs, opts = self._plan(clean, sweep, launcher, launcher_options)
            opts.check_available()
        except UnirexError as e:
            return SettingsCheck(ok=False, message=self.public_message(e), overrides=clean, runs=0, command=cmd,
                                 settings={})
        n = len(combos)
        return SettingsCheck(ok=True, message=f"ok: {n} run{'s' if n != 1 else ''} on launcher '{opts.name}'",
                             overrides=clean, runs=n, command=cmd, settings=flatten(cfgs[0]))

    def methods(self) -> list[MethodPreset]:
        """The paper's methods (presets) with their settings under the UNIREX keys."""
        from unirex.config import flatten, resolve_config
        from unirex.methods import list_methods

        return [MethodPreset(id=m.id, title=m.title, description=m.description, overrides=tuple(m.overrides),
                             needs=tuple(m.needs), settings=flatten(resolve_config([f"method={m.id}"], validate=False)))
                for m in list_methods()]

    def settings_overrides(self, method: str, settings: dict[str, object]) -> list[str]:
        """``method=<id>`` plus an override for every setting that differs from the preset's own value
        (values may be given as text, as a settings table holds them)."""
        preset = next((m for m in self.methods() if m.id == method), None)
        if preset is None:
            from unirex.methods import get_method

            get_method(method)  # raises with "did you mean"
        out = [f"method={method}"]
        for key, value in settings.items():
            if key not in preset.settings:
                out.append(f"{key}={value if isinstance(value, str) else format_value(value)}")
                continue
            text = value.strip() if isinstance(value, str) else format_value(value)
            if text != format_value(preset.settings[key]) and text != str(preset.settings[key]):
                if isinstance(preset.settings[key], str) and "," in text and text[:1] not in ("'", '"', "["):
                    text = f"'{text}'"  # one value (training.eval_splits=train,dev,test), not a sweep
                out.append(f"{key}={text}")
        return out

    @staticmethod
    def launchers() -> tuple[str, ...]:
        """Where a run can go: ``local`` (this process's background worker), ``ray``, ``slurm``."""
        return LAUNCHERS

    @staticmethod
    def extractors() -> tuple[str, ...]:
        """Attribution algorithms :meth:`explain` can run on any checkpoint's task LM (besides ``own``)."""
        return ExplainService.extractors()

    @staticmethod
    def max_text_chars() -> int:
        """The longest text :meth:`explain` accepts (characters over the documents and the query)."""
        return ExplainService.max_text_chars()

    @staticmethod
    def conventions() -> tuple[str, ...]:
        """Metric conventions NRG can be computed under (:data:`workbench.compare.CONVENTIONS`)."""
        return tuple(_compare.CONVENTIONS)

    def queue(self, include_final: bool = False) -> list[Job]:
        """Waiting and running jobs (``include_final``: every job, newest last)."""
        return self.jobs.jobs(include_final=include_final)

    def job(self, job_id: str) -> Job:
        return self.jobs.get(job_id)

    def cancel(self, job_id: str) -> Job:
        """Remove a waiting job; stop a running one within one training step or evaluation batch. A ``ray`` or
        ``slurm`` job is stopped the same way on its worker (the cancel marker lies in the shared workspace),
        and by the launcher's own cancel (``ray.cancel``, ``scancel``) if it has not stopped within
        ``launcher.cancel_grace_s``; its dispatcher does that, or this call when the dispatcher is gone."""
        job = self.jobs.cancel(job_id)
        if self.worker is not None:
            self.worker.cancel_local(job_id)
        if job.launcher != "local" and job.status == RunStatus.RUNNING:
            if self.dispatcher is not None and job_id in self.dispatcher.tracked:
                self.dispatcher.cancel(job_id)
            elif not owner_alive(job.owner):
                from workbench.launchers.dispatch import finish_orphan

                job = finish_orphan(self.jobs, job, "cancelled")
        return job

    def requeue(self, run_id: str, launcher: str | None = None,
                launcher_options: dict | list[str] | LauncherOptions | None = None) -> Job:
        """Queue a fresh run with the same command line as ``run_id`` (e.g. one that was interrupted). It goes
        to the launcher that ran it, with the same options, unless ``launcher`` is given."""
        name, args = self.launcher_of(run_id)
        if launcher is not None and launcher != name:
            name, args = launcher, ()
        if self.policy.confine:  # the server's own settings are applied again, not taken as the caller's
            args = tuple(without_server_keys(args))
        return self.submit(self.recorded_overrides(run_id), launcher=name,
                           launcher_options=launcher_options if launcher_options is not None else list(args))[0]

    def launcher_of(self, run_id: str) -> tuple[str, tuple[str, ...]]:
        """``(launcher, launcher.key=value options)`` that ran ``run_id`` (from its job, else its meta.json)."""
        rd = self._run_dir(run_id)
        job = self.jobs.find_by_run(rd.run_id)
        if job is not None:
            return job.launcher, tuple(job.launcher_args)
        return rd.meta().get("launcher") or "local", ()

    def recorded_overrides(self, run_id: str) -> list[str]:
        """The overrides that reproduce ``run_id`` (from its recorded command line, else its config)."""
        return self._recorded_overrides(run_id, self._run_dir(run_id).meta())

    def resume(self, run_id: str) -> Job:
        """Continue an interrupted (or cancelled) run from its last checkpoint: a finetune run for the epochs
        it had left, recorded with the original run as its parent."""
        rd = self._run_dir(run_id)
        if not rd.has_checkpoint():
            raise UnirexError(f"run {run_id} has no checkpoint to resume from (it was trained without "
                              "save_checkpoint=True or stopped before its first epoch ended); requeue it instead")
        ck = json.loads((rd.checkpoint_dir / "checkpoint.json").read_text())
        epochs = int((rd.config().get("training") or {}).get("epochs") or 1)
        left = max(1, epochs - int(ck.get("epoch") or 0) - 1)
        keep = [o for o in self._recorded_overrides(run_id, rd.meta())
                if o.split("=", 1)[0] not in ("training", "training.mode", "training.ckpt_path", "training.epochs")]
        name, args = self.launcher_of(run_id)  # on the launcher that ran it (a Slurm job that hit its time limit)
        if self.policy.confine:
            args = tuple(without_server_keys(args))
        return self.submit(keep + ["training=finetune", f"training.ckpt_path={run_id}", f"training.epochs={left}",
                                   "save_checkpoint=True"], launcher=name, launcher_options=list(args))[0]

    def _recorded_overrides(self, run_id: str, meta: dict) -> list[str]:
        cmd = meta.get("command")
        if cmd and cmd.startswith("python -m unirex"):
            return quote_one_value_keys([o for o in shlex.split(cmd)[3:] if "=" in o])
        from unirex.config import from_dict, to_overrides

        cfg = from_dict(self._run_dir(run_id).config(), validate=False)
        return [o for o in to_overrides(cfg) if not o.startswith("workspace=")]

    def _run_job(self, job: Job, token: CancelToken) -> str:
        return self._execute(self.resolve(job.overrides), job.command, run_id=job.run_id, cancel=token).status

    # ------------------------------------------------------------- runs in this process (the CLI)
    def plan_here(self, overrides: list[str] | tuple[str, ...], sweep: bool = False) -> list[PlannedRun]:
        """The runs ``overrides`` make (with ``sweep``, one per combination of the comma lists), every one
        resolved before any starts (every error before any compute), to run in this process with
        :meth:`run_here`. Unlike :meth:`submit` the overrides are the caller's own (the CLI is a user's own
        shell): ``workspace=`` and paths pass as given, and the workspace this facade was given wins."""
        from unirex.engine import resolve_run_config

        overrides = list(overrides)
        combos = expand_sweep(quote_one_value_keys(overrides)) if sweep else [overrides]
        return [PlannedRun(overrides=tuple(c), config=resolve_run_config(c, workspace=self._workspace_arg),
                           command=command_line(c)) for c in combos]

    def run_here(self, planned: PlannedRun, callback=None) -> RunOutcome:
        """Run ``planned`` in this process (no queue, no job; ``callback`` gets the engine's events) and index
        it in the store; ``index_error`` says why it is not indexed yet."""
        return self._execute(planned.config, planned.command, callback=callback)

    def job_outcome(self, job: Job, cfg) -> RunOutcome:
        """How a finished job's run ended, read from its run folder (``run_dir`` None when it wrote none)."""
        rd = RunDir(self.runs_root / job.run_id)
        present = rd.meta_path.is_file()
        metrics = flat_metrics(rd.final_metrics()) if present else {}
        return RunOutcome(run_id=job.run_id, run_dir=rd.path if present else None, status=job.status,
                          metrics=metrics, split=report_split(metrics, cfg), error=job.error)

    def _execute(self, cfg, command: str, run_id: str | None = None, cancel=None, callback=None) -> RunOutcome:
        """Run one config with the engine and index it: the one way a run is made, from the queue's worker
        (``run_id`` chosen at submission and indexed as the run starts, so the runs table shows it at once)
        and from :meth:`run_here`."""

        def on_event(ev: Event) -> None:
            if run_id is not None and isinstance(ev, StartEvent):
                self._index(self.runs_root / run_id)
            if callback is not None:
                callback(ev)

        from unirex.engine import run

        res = None
        try:
            res = run(cfg, callback=on_event, cancel=cancel, run_id=run_id, command=command)
        finally:  # the store shows the run's final state before the job reads finished
            where = res.run_dir if res is not None else (self.runs_root / run_id if run_id else None)
            index_error = self._index(where)
        return RunOutcome(run_id=res.run_id, run_dir=res.run_dir, status=res.status, metrics=dict(res.metrics),
                          split=report_split(res.metrics, cfg), error=res.error, index_error=index_error)

    def _index(self, run_dir: Path | None) -> str | None:
        """Index a run folder (its start, its end) so the runs table shows it; the error message when the store
        could not (a busy store catches up at the next sync)."""
        if run_dir is None or not RunDir(run_dir).meta_path.is_file():
            return None
        try:
            ingest_run(self.workspace, RunDir(run_dir))
        except UnirexError as e:
            return str(e)
        return None

    def _ingest_soon(self, run_id: str) -> None:
        self._index(self.runs_root / run_id)

    def curves(self, run_id: str) -> RunCurves:
        """Loss components per step and dev metrics per epoch of a run (read incrementally from its events)."""
        run_id = check_name(run_id, "run id")
        rd = self._run_dir(run_id) if (self.runs_root / run_id / RunDir.META).is_file() else None
        if rd is None:
            return empty_curves(run_id)
        return self.curve_reader.curves(rd.run_id)

    def progress(self, run_id: str) -> Progress:
        """Where a run is (from its ``events.jsonl``; works for runs of any process)."""
        run_id = check_name(run_id, "run id")
        rd = RunDir(self.runs_root / run_id)
        job = self.jobs.find_by_run(run_id)
        if not rd.meta_path.is_file():
            status = job.status if job else RunStatus.UNKNOWN.value
            return Progress(run_id=run_id, status=status, phase="preparing" if status in (RunStatus.WAITING, RunStatus.RUNNING) else "finished",
                            message=scrub_secrets(job.error or "") if job else "")
        p = progress_from_events(run_id, rd.effective_status(), parse_events(rd.events()))
        return dataclasses.replace(p, message=scrub_secrets(p.message)) if p.message else p

    # --------------------------------------------------------------------------------------- runs
    def sync(self) -> SyncReport:
        """Index new and changed run folders (runs of the CLI, other processes, cluster workers)."""
        return sync(self.workspace)

    def refresh_index(self) -> str | None:
        """:meth:`sync` before a listing; on a full disk the index keeps what it held (DuckDB leaves it whole and
        readable) and the one-line reason comes back, for the caller to show beside the list it reads."""
        try:
            self.sync()
        except DiskFullError as e:
            return f"the run index was not updated: {e}"
        return None

    def index_all(self) -> int:
        """:meth:`sync` and index the built datasets too; the number of runs indexed."""
        return ingest_all(self.workspace)

    def rebuild_index(self) -> int:
        """Recreate the store's database from the run folders; the number of runs indexed."""
        return rebuild(self.workspace)

    def corrupt_runs(self) -> tuple[CorruptRunInfo, ...]:
        """The indexed run folders that cannot be read (listed as ``corrupt``), with their reasons."""
        return corrupt_runs(self.workspace)

    @property
    def db_file(self) -> Path:
        """The store's DuckDB file of this workspace."""
        return db_path(self.workspace)

    def runs_frame(self, flt: RunFilter = RunFilter(), split: str = "test", limit: int | None = None,
                   metrics: tuple[str, ...] | None = None) -> pl.DataFrame:
        """The runs table as a Polars frame (newest first), final metrics on ``split`` (default: the
        registry's headline metrics)."""
        from store import runs_table

        return runs_table(self.workspace, flt, split=split, metrics=metrics, limit=limit)

    def runs(self, flt: RunFilter = RunFilter(), split: str = "test", limit: int | None = None) -> list[RunSummary]:
        df = self.runs_frame(flt, split, limit)
        return [_summary(row, split) for row in df.iter_rows(named=True)]

    def run(self, run_id: str, split: str = "test") -> RunDetail:
        """One run in full (from its folder, with its metrics from the store)."""
        from store import run_metrics
        from unirex.config import from_dict, to_overrides

        rd = self._run_dir(run_id)
        self._ingest_soon(rd.run_id)
        df = run_metrics(self.workspace, rd.run_id)
        final: dict[str, dict[str, float]] = {}
        for row in df.filter(pl.col("epoch").is_null()).iter_rows(named=True):
            final.setdefault(row["split"], {})[row["name"]] = row["value"]
        meta, status = rd.meta(), rd.status()
        try:
            overrides = [o for o in to_overrides(from_dict(rd.config(), validate=False)) if not o.startswith("workspace=")]
        except UnirexError:
            overrides = []
        ck = None
        if rd.has_checkpoint():
            info = json.loads((rd.checkpoint_dir / "checkpoint.json").read_text())
            ck = CheckpointInfo(path=rd.checkpoint_dir, epoch=info.get("epoch"), monitor=info.get("monitor"),
                                value=info.get("value"), labels=list(info.get("labels") or []))
        started, ended = status.get("started_at"), status.get("ended_at")
        summary = RunSummary(
            run_id=rd.run_id, status=rd.effective_status(), method=meta.get("method"), dataset=meta.get("dataset"),
            arch=meta.get("arch"), seed=meta.get("seed"), mode=meta.get("mode"), created_at=meta.get("created_at"),
            duration_s=(ended - started) if started and ended else None, split=split,
            metrics={k: final.get(split, {}).get(k) for k in headline_metrics()}, command=meta.get("command"),
            launcher=meta.get("launcher") or "local", run_dir=str(rd.path),
            error=scrub_secrets(status["error"]) if status.get("error") else None, debug=debug_of(rd, meta),
            tags=tuple(meta.get("tags") or ()))
        outputs = sorted(rd.outputs_dir.glob("*")) if rd.outputs_dir.is_dir() else []
        err = scrub_secrets(rd.error_path.read_text(errors="replace")) if rd.error_path.is_file() else None
        return RunDetail(summary=summary, config=rd.config(), overrides=overrides, meta=meta, metrics=df, final=final,
                         checkpoint=ck, outputs=outputs, path=rd.path, error_text=err)

    def _run_dir(self, run_id: str) -> RunDir:
        run_id = str(run_id or "").strip()
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise UnirexError(f"'{run_id}' is not a run id of this workspace")
        return RunDir.open(self.runs_root, run_id)

    def delete_run(self, run_id: str) -> None:
        """Delete a finished run's folder and its index rows (a running or queued run cannot be deleted)."""
        rd = self._run_dir(run_id)
        job = self.jobs.find_by_run(rd.run_id)
        if rd.effective_status() == RunStatus.RUNNING or (job is not None and job.active):
            raise UnirexError(f"run {run_id} is still running or queued: cancel it first")
        shutil.rmtree(rd.path)
        self.sync()

    # follow-up jobs on a run --------------------------------------------------------------------
    def evaluate(self, run_id: str, splits: list[str] | tuple[str, ...] = ("dev", "test"),
                 extra: list[str] | tuple[str, ...] = ()) -> Job:
        """Queue ``training=evaluate`` of a run's checkpoint on ``splits``."""
        self._needs_checkpoint(run_id)
        if not splits:
            raise UnirexError("choose at least one split to evaluate")
        return self.submit(["training=evaluate", f"training.ckpt_path={run_id}",
                            f"training.eval_splits='{','.join(splits)}'", *extra])[0]

    def finetune(self, run_id: str, extra: list[str] | tuple[str, ...] = ()) -> Job:
        self._needs_checkpoint(run_id)
        return self.submit(["training=finetune", f"training.ckpt_path={run_id}", "save_checkpoint=True", *extra])[0]

    def save_attributions(self, run_id: str) -> Job:
        """Queue an evaluation that saves the run's attributions of every split (a FRESH / L2E teacher)."""
        return self.evaluate(run_id, ("train", "dev", "test"), ["model.save_outputs=True", f"model.exp_id={run_id}"])

    def measure_runtime(self, run_id: str) -> Job:
        return self.evaluate(run_id, ("dev",), ["model.measure_attrs_runtime=True"])

    def _needs_checkpoint(self, run_id: str) -> None:
        self.sharing.needs_checkpoint(run_id)

    # ---------------------------------------------------------- explaining (workbench.explain_service)
    def explain(self, checkpoint: str, text: str, query: str | None = None, extractor: str | None = None,
                top_k: float = 10.0, second_text: str | None = None) -> Explanation:
        return self.explainer.explain(checkpoint, text, query, extractor, top_k, second_text)

    def explain_file(self, checkpoint: str, inputs: list[BatchInput], out: str | Path, extractor: str | None = None,
                     top_k: float = 10.0, batch_size: int = 32, faithfulness: bool = False, overwrite: bool = False,
                     progress=None) -> BatchResult:
        return self.explainer.explain_file(checkpoint, inputs, out, extractor, top_k, batch_size, faithfulness,
                                           overwrite, progress)

    def checkpoint_runs(self) -> list[RunSummary]:
        return self.explainer.checkpoint_runs()

    # ------------------------------------------------- counterfactuals (workbench.counterfactual)
    def explain_edit(self, checkpoint: str, original: str, edited: str, query: str | None = None,
                     extractor: str | None = None, top_k: float = 10.0, second_text: str | None = None,
                     edited_second_text: str | None = None) -> EditDiff:
        return self.counterfactuals.explain_edit(checkpoint, original, edited, query, extractor, top_k, second_text,
                                                 edited_second_text)

    def flip(self, checkpoint: str, text: str, query: str | None = None, extractor: str | None = None,
             second_text: str | None = None, options: FlipOptions | None = None) -> FlipOutcome:
        return self.counterfactuals.flip(checkpoint, text, query, extractor, second_text, options or FlipOptions())

    def flip_split(self, checkpoint: str, split: str = "test", extractor: str | None = None,
                   options: FlipOptions | None = None, limit: int | None = None, progress=None) -> FlipSplitSummary:
        return self.counterfactuals.flip_split(checkpoint, split, extractor, options or FlipOptions(), limit,
                                               progress=progress)

    def checkpoint_examples(self, checkpoint: str, split: str = "test", n: int = 20) -> list[DatasetExample]:
        return self.explainer.checkpoint_examples(checkpoint, split, n)

    def score_scale(self, checkpoint: str, extractor: str | None = None, split: str = "test",
                    progress: Callable[[int, int], None] | None = None) -> ScoreScale:
        """The range of an extractor's word scores over the checkpoint's ``split`` (cached): the Explain tab's
        per-dataset colour scale (``progress(done, total)`` while it is computed)."""
        return self.explainer.score_scale(checkpoint, extractor, split, progress=progress)

    # ---------------------------------------------------------------------------------- comparing
    def compare(self, flt: RunFilter = RunFilter(status=RunStatus.COMPLETED.value), split: str = "test",
                by: tuple[str, ...] = ("method", "dataset", "arch"), convention: str = "paper",
                include_debug: bool = False, intervals: bool = True) -> Comparison:
        """Mean and std over seeds per group, 95% intervals (``intervals``), NRG per dataset (see
        :mod:`workbench.compare`): one evaluation per trained model (:func:`workbench.compare.counted_runs`);
        debug runs left out unless ``include_debug`` (or ``flt.debug`` says otherwise)."""
        if not include_debug and flt.debug is None:
            flt = dataclasses.replace(flt, debug=False)
        return _compare.compare(self.workspace, flt, split, by, convention, intervals)

    def pairwise(self, metric: str, flt: RunFilter = RunFilter(status=RunStatus.COMPLETED.value), split: str = "test",
                 by: tuple[str, ...] = ("method", "dataset", "arch"), pair: tuple[str, str] | None = None,
                 cmp: Comparison | None = None, include_debug: bool = False) -> list[PairTest]:
        """Paired tests on ``metric`` between the groups of a comparison on the same dataset (Holm-adjusted), or
        of the one ``pair`` of group labels; ``cmp``: a comparison already made (else one is made here)."""
        if cmp is None:
            cmp = self.compare(flt, split, by, include_debug=include_debug)
        return _compare.pairwise(cmp, metric, pair)

    def compare_choices(self, split: str = "test") -> dict[str, list[str]]:
        """Datasets, archs and methods of the completed runs with final metrics on ``split`` (the dashboard's
        filter choices; read through the comparison's cache)."""
        df = _compare.runs_metrics(self.workspace, RunFilter(status=RunStatus.COMPLETED.value), split, _compare.metric_names())
        out = {c: sorted({str(v) for v in df[c].unique().to_list() if v is not None}) for c in ("dataset", "arch", "method")}
        out["tags"] = self.tags()
        return out

    def set_tags(self, run_id: str, tags) -> tuple[str, ...]:
        """Replace a run's tags (``a,b`` or a list; empty clears them; :func:`unirex.runs.parse_tags`, one-line
        error for a bad tag) in its ``meta.json`` (under the run's meta lock), and index it again; returns the tags."""
        rd = self._run_dir(run_id)
        parsed = rd.set_tags(tags)
        self._index(rd.path)
        return parsed

    def add_tags(self, run_id: str, tags) -> tuple[str, ...]:
        """Add tags to a run's (``a,b`` or a list; :func:`unirex.runs.parse_tags`) and index it again; returns its
        tags. Edits at the same time (threads of the app, other processes) take turns on the run's meta lock, so
        each lands (:meth:`unirex.runs.RunDir.edit_tags`)."""
        rd = self._run_dir(run_id)
        tags = rd.edit_tags(add=tags)
        self._index(rd.path)
        return tags

    def remove_tags(self, run_id: str, tags) -> tuple[str, ...]:
        """Take tags from a run's (a tag it does not hold is no error) and index it again; returns its tags."""
        rd = self._run_dir(run_id)
        tags = rd.edit_tags(remove=tags)
        self._index(rd.path)
        return tags

    def tags(self) -> list[str]:
        """Every tag of the indexed runs, sorted."""
        from store import tag_names

        return tag_names(self.workspace)

    def nrg(self, run_ids: list[str], split: str = "test", convention: str = "paper"):
        """NRG over a chosen set of runs (each run its own entry)."""
        return _compare.nrg_of_runs(self.workspace, run_ids, split, convention)

    # ------------------------------------------------------------ sharing (workbench.sharing)
    def export_eraser(self, run_id: str, split: str, out: Path | None = None) -> Path:
        return self.sharing.export_eraser(run_id, split, out)

    def push(self, run_id: str, repo_id: str, private: bool = False, revision: str | None = None,
             license: str | None = None, dry_run_dir: str | Path | None = None, api=None):
        return self.sharing.push(run_id, repo_id, private, revision, license, dry_run_dir, api)

    def inside_workspace(self, path: str | Path, what: str = "path") -> Path:
        return self.sharing.inside_workspace(path, what)

    def export_comparison(self, cmp: Comparison, fmt: str = "csv") -> ExportedFile:
        return self.sharing.export_comparison(cmp, fmt)

    def export_eraser_file(self, run_id: str, split: str) -> ExportedFile:
        return self.sharing.export_eraser_file(run_id, split)

    # ------------------------------------------------------- datasets (workbench.dataset_service)
    def dataset_names(self) -> list[str]:
        return self.data.dataset_names()

    def dataset_summaries(self, name: str) -> list[DatasetSummary]:
        return self.data.dataset_summaries(name)

    def build_dataset(self, name: str, arch: str = "default", max_length: int | None = None,
                      on_progress=None) -> list[DatasetSummary]:
        return self.data.build_dataset(name, arch, max_length, on_progress)

    def prepare_dataset(self, name: str, data_dir: str | Path | None = None) -> Path:
        return self.data.prepare_dataset(name, data_dir)

    def build_split(self, name: str, split: str, arch: str = "default", max_length: int | None = None,
                    num_train: int | None = None, num_train_seed: int = 0, force: bool = False,
                    data_dir: str | Path | None = None) -> DatasetSummary:
        return self.data.build_split(name, split, arch, max_length, num_train, num_train_seed, force, data_dir)

    def find_examples(self, name: str, arch: str, max_length: int | None, split: str, label: str | None = None,
                      has_rationale: bool | None = None, truncated: bool | None = None) -> list[int]:
        return self.data.find_examples(name, arch, max_length, split, label, has_rationale, truncated)

    def example(self, name: str, arch: str, max_length: int | None, split: str, index: int) -> DatasetExample:
        return self.data.example(name, arch, max_length, split, index)

    def dataset_labels(self, name: str, arch: str, max_length: int | None, split: str) -> list[str]:
        return self.data.dataset_labels(name, arch, max_length, split)

    def upload_dataset(self, archive: str | Path, name: str | None = None) -> tuple[str, Path, str]:
        return self.data.upload_dataset(archive, name)

    def catalog(self) -> list[CatalogRow]:
        return self.data.catalog()

    def check_archive_sizes(self) -> tuple[list[CatalogRow], list[str]]:
        return self.data.check_archive_sizes()

    def download_dataset(self, name: str, source: str = "eraser", on_progress=None) -> Path:
        return self.data.download_dataset(name, source, on_progress)

    def datasets(self) -> list[DatasetSummary]:
        return self.data.datasets()


def _summary(row: dict, split: str) -> RunSummary:
    return RunSummary(run_id=row["run_id"], status=row["status"], method=row["method"], dataset=row["dataset"],
                      arch=row["arch"], seed=row["seed"], mode=row["mode"], created_at=row["created_at"],
                      duration_s=row["duration_s"], split=split,
                      metrics={k: row.get(k) for k in headline_metrics()}, command=row["command"],
                      launcher=row["launcher"], run_dir=row["run_dir"], error=row["error"],
                      debug=bool(row.get("debug")), tags=tuple(row.get("tags") or ()))


def progress_from_events(run_id: str, status: str, events: list[Event], now: float | None = None) -> Progress:
    """Fold a run's events (:func:`unirex.events.parse_events` of its ``events.jsonl``) into its current
    :class:`Progress`: the phase running now and, from the run's plan, one estimate over the whole run
    (:func:`unirex.progress.estimate_job`; ``now``: the clock, or for a run no longer running its last event's
    time)."""
    p = dict(run_id=run_id, status=status, phase="preparing")
    tracker = JobTracker()
    for ev in events:
        tracker.update(ev)
        if isinstance(ev, StepEvent):
            p.update(phase="training", step=ev.step, total_steps=ev.total_steps, epoch=ev.epoch, epochs=ev.epochs,
                     elapsed_s=ev.elapsed_s, eta_s=ev.eta_s, losses=dict(ev.losses or {}))
        elif isinstance(ev, EvalStartEvent):
            p.update(phase="evaluating", eval_split=ev.split, eval_done=0, eval_total=ev.total, eta_s=None)
        elif isinstance(ev, EvalProgressEvent):
            p.update(phase="evaluating", eval_split=ev.split, eval_done=ev.done, eval_total=ev.total, eta_s=ev.eta_s)
        elif isinstance(ev, LogEvent):
            p.update(message=ev.message)
        elif isinstance(ev, DoneEvent):
            p.update(phase="finished", message=ev.error or "")
    running = status in (RunStatus.RUNNING, RunStatus.UNKNOWN)
    if not running:
        p["phase"] = "finished"
        if now is None and tracker.t_last is not None:
            now = tracker.t_last  # ended without a `done` (killed): its elapsed time stops at its last event
    est = tracker.estimate(now)
    if est is not None:
        p.update(overall=est.fraction, eta_s=est.eta_s, elapsed_s=est.elapsed_s, phases=est.phases,
                 phase_label=est.phase_label)
    return Progress(**p)


__all__ = ["LAUNCHERS", "Workbench", "command_line", "format_value", "progress_from_events"]
