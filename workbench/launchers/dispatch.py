"""The dispatcher: the queue's jobs whose launcher is not local, handed to Ray or Slurm and followed.

:class:`Dispatcher` is the remote counterpart of the local :class:`~workbench.jobs.Worker`. Each
:meth:`~Dispatcher.step` it

1. claims waiting ``ray``/``slurm`` jobs (in submission order), submits each through its launcher and
   records the launcher's handle in the Job;
2. polls the jobs it submitted: a run folder that appears is indexed in the store at once (the app's
   Runs tab shows the run arriving), and a job that ended is marked in the queue with its final state and
   indexed again;
3. carries out cancel requests: the queue's cancel marker (written by the app or ``python -m unirex cancel
   JOB`` in any process) reaches the worker's engine within one step and the run ends ``cancelled`` cleanly;
   a job that has not stopped ``launcher.cancel_grace_s`` seconds later, or has not started yet, is
   stopped by the launcher's own cancel (``ray.cancel(force=True)``, ``scancel``);
4. (the app's dispatcher) adopts running remote jobs whose dispatching process died: a Slurm job is
   followed again; a Ray task, which ends with its driver, reads ``interrupted``.

A job whose worker was lost (its node died, it was killed, its time limit passed) reads ``interrupted``
as soon as the launcher reports it: the dispatcher writes that status into the run folder, which would
otherwise read ``interrupted`` only once its heartbeat is older than ``unirex.runs.STALE_AFTER_S``.

The app runs it as a thread (:meth:`start`, next to the local worker); the CLI's ``-m ... launcher=ray``
calls :meth:`step` in the foreground for the jobs of its sweep (``job_ids``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from store import ingest_run
from unirex.errors import UnirexError
from unirex.runs import TERMINAL, RunDir
from workbench.jobs import JobQueue, owner_alive, this_owner
from workbench.launchers.base import Launcher, Outcome, RemoteJob
from workbench.launchers.options import REMOTE_LAUNCHERS, LauncherOptions, check_launcher_folder, launcher_options
from workbench.records import Job

POLL_S = 1.0
ADOPT_EVERY_S = 10.0
#: after the launcher's own cancel, how long to wait for it to confirm before the job is marked cancelled
HARD_CANCEL_WAIT_S = 60.0
#: consecutive failed polls (the cluster unreachable) before a job reads interrupted
MAX_POLL_ERRORS = 10


def make_launcher(options: LauncherOptions) -> Launcher:
    """A launcher for ``options`` (imports Ray or submitit only now)."""
    options.check_available()
    if options.name == "ray":
        # lazy: imports Ray only when a Ray job comes
        from workbench.launchers.ray_launcher import RayLauncher

        return RayLauncher(options)
    if options.name == "slurm":
        # lazy: imports submitit only when a Slurm job comes
        from workbench.launchers.slurm_launcher import SlurmLauncher

        return SlurmLauncher(options)
    raise UnirexError(f"launcher={options.name} runs jobs in this process, not through a dispatcher")


def remote_job(workspace: Path, job: Job, options: LauncherOptions | None = None) -> RemoteJob:
    """What the worker of ``job`` receives."""
    return RemoteJob(job_id=job.job_id, run_id=job.run_id, overrides=tuple(job.overrides), command=job.command,
                     workspace=str(Path(workspace).resolve()), launcher=job.launcher,
                     threads=int(options.cpus_per_job) if options is not None else 0)


@dataclass
class _Tracked:
    job: Job
    spec: RemoteJob
    options: LauncherOptions
    launcher: Launcher
    handle: str
    started: bool = False
    cancel_at: float | None = None
    hard_at: float | None = None
    poll_errors: int = 0


def _message(e: BaseException) -> str:
    return str(e) if isinstance(e, UnirexError) else f"{type(e).__name__}: {e}"


class Dispatcher:
    """Submits and follows the remote jobs of one workspace's queue (see the module docstring).

    Args:
        queue: the workspace's :class:`~workbench.jobs.JobQueue`.
        on_change: called with a Job when it was submitted and when it ended.
        job_ids: only these jobs (the CLI's sweep); None: every remote job not reserved for another process.
        factory: ``factory(options) -> Launcher`` (default :func:`make_launcher`).
    """

    def __init__(self, queue: JobQueue, on_change: Callable[[Job], None] | None = None,
                 job_ids: set[str] | None = None, poll_s: float = POLL_S,
                 factory: Callable[[LauncherOptions], Launcher] | None = None):
        self.queue = queue
        self.workspace = queue.workspace
        self.on_change = on_change
        self.job_ids = set(job_ids) if job_ids is not None else None
        self.poll_s = poll_s
        self.factory = factory or make_launcher
        self.launchers: list[Launcher] = []
        self.tracked: dict[str, _Tracked] = {}
        self._hard: set[str] = set()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._adopted_at = 0.0

    # ---------------------------------------------------------------------------------- the thread
    def start(self) -> "Dispatcher":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="unirex-dispatcher", daemon=True)
            self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - one bad poll must not stop the dispatcher; the next step retries
                pass
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop dispatching. Jobs that cannot be followed by another process (Ray tasks, submitit's local
        processes) are stopped and read interrupted; Slurm jobs run on and a restarted app follows them."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._lock:
            for t in list(self.tracked.values()):
                if not t.launcher.can_reattach:
                    t.launcher.cancel(t.handle)
                    self._end(t.job, t, Outcome("interrupted", "the process dispatching it stopped"))
            self.close()

    def close(self) -> None:
        """Release the launchers (a local Ray instance started here is shut down)."""
        with self._lock:
            for launcher in self.launchers:
                try:
                    launcher.close()
                except Exception:  # noqa: BLE001
                    pass
            self.launchers = []

    # ------------------------------------------------------------------------------------- cancels
    def cancel(self, job_id: str, hard: bool = False) -> None:
        """Note a cancel of ``job_id`` (the queue's marker is the request itself); ``hard`` skips the grace
        period: the launcher's own cancel at the next step."""
        if hard:
            self._hard.add(job_id)
        self.wake()

    def cancel_all(self, hard: bool = False) -> list[str]:
        """Cancel every active job of this dispatcher (the CLI's Ctrl-C). Returns their ids."""
        ids = set(self.tracked) | (self.job_ids or set())
        out = []
        for job_id in sorted(ids):
            try:
                job = self.queue.get(job_id)
                if job.active:
                    self.queue.cancel(job_id)
                    out.append(job_id)
                    if hard:
                        self._hard.add(job_id)
            except UnirexError:
                continue
        return out

    # ---------------------------------------------------------------------------------------- steps
    def step(self) -> list[Job]:
        """Submit what waits, follow what runs, carry out cancels. Returns the jobs that ended."""
        with self._lock:
            ended = self._claim()
            if self.job_ids is None and time.monotonic() - self._adopted_at >= ADOPT_EVERY_S:
                self._adopted_at = time.monotonic()
                ended += self._adopt_orphans()
            for t in list(self.tracked.values()):
                job = self._poll(t)
                if job is not None:
                    ended.append(job)
            return ended

    def _launcher(self, options: LauncherOptions) -> Launcher:
        for launcher in self.launchers:
            if launcher.name == options.name and launcher.matches(options):
                return launcher
        if options.name == "ray" and any(lc.name == "ray" for lc in self.launchers):
            raise UnirexError("this process is connected to another Ray cluster (one per process); "
                              "run this job from another process or with the same launcher.ray.address")
        launcher = self.factory(options)
        self.launchers.append(launcher)
        return launcher

    def _claim(self) -> list[Job]:
        ended = []
        while True:
            job = self.queue.claim_next(REMOTE_LAUNCHERS, job_ids=self.job_ids)
            if job is None:
                return ended
            try:
                options = launcher_options(job.launcher, job.launcher_args)
                check_launcher_folder(options, self.workspace)  # a queue file edited by hand, too
                spec = remote_job(self.workspace, job, options)
                launcher = self._launcher(options)
                handle = launcher.submit(spec, options)
            except Exception as e:  # noqa: BLE001 - the job fails with the reason; the others go on
                ended.append(self._end(job, None, Outcome("failed", _message(e))))
                continue
            job = self.queue.update(job.job_id, handle=handle)
            self.tracked[job.job_id] = _Tracked(job, spec, options, launcher, handle)
            self._notify(job)

    def _adopt_orphans(self) -> list[Job]:
        ended = []
        me = this_owner()
        for job in self.queue.jobs(include_final=False):
            if (job.status != "running" or job.launcher not in REMOTE_LAUNCHERS or job.job_id in self.tracked
                    or job.owner == me or owner_alive(job.owner)):
                continue
            job = self.queue.take_over(job.job_id, job.owner)
            if job is None:
                continue
            spec = remote_job(self.workspace, job)
            try:
                options = launcher_options(job.launcher, job.launcher_args)
                spec = remote_job(self.workspace, job, options)
                launcher = self._launcher(options)
                followed = bool(job.handle) and launcher.reattach(spec, job.handle, options)
            except Exception:  # noqa: BLE001 - cannot follow it: it reads interrupted
                followed = False
            if followed:
                self.tracked[job.job_id] = _Tracked(job, spec, options, launcher, job.handle)
            else:
                ended.append(self._end(job, None, Outcome(
                    "interrupted", "the process that dispatched it stopped (a Ray task ends with its driver)")))
        return ended

    def _poll(self, t: _Tracked) -> Job | None:
        now = time.time()
        rd = RunDir(t.spec.run_dir)
        if not t.started and rd.meta_path.is_file():
            t.started = True
            self._ingest(rd)
        job_id = t.job.job_id
        if t.cancel_at is None and (job_id in self._hard or self.queue.cancel_requested(job_id)):
            t.cancel_at = now
        if t.cancel_at is not None and t.hard_at is None and (
                job_id in self._hard or not t.started or now - t.cancel_at >= t.options.cancel_grace_s):
            t.launcher.cancel(t.handle)  # not started yet (no clean stop to wait for), or the grace ran out
            t.hard_at = now
        try:
            outcome = t.launcher.poll(t.handle)
            t.poll_errors = 0
        except Exception as e:  # noqa: BLE001 - the cluster may answer at the next poll
            t.poll_errors += 1
            outcome = None
            if t.poll_errors >= MAX_POLL_ERRORS:
                outcome = Outcome("interrupted", f"lost contact with {t.launcher.name}: {_message(e)}")
        if outcome is None and t.hard_at is not None and now - t.hard_at > HARD_CANCEL_WAIT_S:
            outcome = Outcome("cancelled", f"{t.launcher.name} did not confirm the cancel")
        if outcome is None:
            return None
        return self._end(t.job, t, outcome)

    def _end(self, job: Job, t: _Tracked | None, outcome: Outcome) -> Job:
        """Mark a job ended: its run folder first (the source of truth), then the queue and the store."""
        status, error = outcome.status, outcome.message
        if t is not None and t.cancel_at is not None and status != "completed":
            status, error = "cancelled", None
        rd = RunDir(self.workspace / "runs" / job.run_id)
        if rd.meta_path.is_file():
            stored = rd.status()
            if stored.get("status") == "running":  # its worker never wrote an end: it was killed or lost
                status = "cancelled" if status == "cancelled" else "interrupted"
                error = error or ("cancelled" if status == "cancelled" else "the worker was lost")
                rd.set_status(status, error=None if status == "cancelled" else error, ended_at=time.time(),
                              worker_host=stored.get("host"), worker_pid=stored.get("pid"))
            elif stored.get("status") in TERMINAL:
                status = stored["status"]
                error = stored.get("error") or (error if status == "failed" else None)
        job = self.queue.finish(job.job_id, status, None if status in ("cancelled", "completed") else error)
        self.tracked.pop(job.job_id, None)
        self._hard.discard(job.job_id)
        if rd.meta_path.is_file():
            self._ingest(rd)
        self._notify(job)
        return job

    def _ingest(self, rd: RunDir) -> None:
        try:
            ingest_run(self.workspace, rd)
        except UnirexError:  # a busy store catches up at the next sync
            pass

    def _notify(self, job: Job) -> None:
        if self.on_change is not None:
            try:
                self.on_change(job)
            except Exception:  # noqa: BLE001
                pass


def finish_orphan(queue: JobQueue, job: Job, status: str = "cancelled") -> Job:
    """End a remote job whose dispatching process is gone, from any process (``python -m unirex cancel`` with
    no app running): a Slurm job is cancelled through submitit; the run folder and the queue read ``status``."""
    spec = remote_job(queue.workspace, job)
    try:
        options = launcher_options(job.launcher, job.launcher_args)
        if job.handle and job.launcher == "slurm" and options.slurm_cluster == "slurm":
            launcher = make_launcher(options)
            if launcher.reattach(spec, job.handle, options):
                launcher.cancel(job.handle)
    except Exception:  # noqa: BLE001 - nothing to cancel any more
        pass
    d = Dispatcher(queue, job_ids={job.job_id})
    return d._end(job, None, Outcome(status, None if status == "cancelled" else "the process dispatching it stopped"))


__all__ = ["Dispatcher", "HARD_CANCEL_WAIT_S", "finish_orphan", "make_launcher", "remote_job"]
