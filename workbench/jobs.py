"""The run queue and its background worker.

Jobs live in the workspace, one JSON file each (``<workspace>/queue/<job_id>.json``), so the queue
survives a restart of the app and any process (the CLI's ``queue`` and ``cancel``) can read and change
it. State changes happen under an ``flock`` on ``<workspace>/queue/.lock``. A cancel request for a
running job is a marker file ``<job_id>.cancel`` that the running job's cancel token sees within one
training step or one evaluation batch, whatever process asked.

:class:`Worker` is one background thread that takes waiting jobs in submission order and runs them one at
a time through the engine (on the GPU when present: ``setup.device=auto``). A job that raises is marked
``failed`` with its message and the worker goes on; the engine's own run folder records the same.
Global RNG seeding happens inside the engine, in this thread only: request threads (explaining text,
queries) never seed.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from unirex.errors import DiskFullError, UnirexError, scrub_secrets
from unirex.fsutil import reporting_disk_full, write_json_atomic
from unirex.runs import RunDir, RunStatus, pid_alive
from workbench.records import FINAL_JOB_STATES, Job

QUEUE_DIR = "queue"
POLL_S = 1.0


def new_job_id() -> str:
    return f"J-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def this_owner() -> str:
    """``host:pid`` of this process, as a job's ``owner`` records it."""
    return _owner()


def owner_alive(owner: str | None) -> bool:
    """Whether the process ``host:pid`` still runs (a process of another machine is trusted to)."""
    return _owner_alive(owner)


def _owner_alive(owner: str | None) -> bool:
    if not owner or ":" not in owner:
        return False
    host, pid = owner.rsplit(":", 1)
    if host != socket.gethostname():
        return True  # another machine's process: cannot tell from here, trust its record
    return pid.isdigit() and pid_alive(int(pid))


class JobQueue:
    """The persisted queue of one workspace."""

    def __init__(self, workspace: Path):
        self.workspace = Path(workspace)
        self.dir = self.workspace / QUEUE_DIR  # made by the first write: the CLI's own runs leave no queue folder

    # --- files ------------------------------------------------------------------------------------
    def _path(self, job_id: str) -> Path:
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise UnirexError(f"'{job_id}' is not a job id")
        return self.dir / f"{job_id}.json"

    def cancel_marker(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.cancel"

    @contextmanager
    def locked(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self, path: Path) -> Job | None:
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        data["overrides"] = tuple(data.get("overrides") or ())
        data["launcher_args"] = tuple(data.get("launcher_args") or ())
        names = {f.name for f in dataclasses.fields(Job)}
        return Job(**{k: v for k, v in data.items() if k in names})

    def _write(self, job: Job) -> None:
        with reporting_disk_full("the job queue", self.dir):
            self.dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self._path(job.job_id), dataclasses.asdict(job))

    # --- reading ----------------------------------------------------------------------------------
    def jobs(self, include_final: bool = True) -> list[Job]:
        """Every job, oldest first (submission order)."""
        out = [j for j in (self._read(p) for p in self.dir.glob("J-*.json")) if j is not None]
        out.sort(key=lambda j: (j.created_at, j.job_id))
        return out if include_final else [j for j in out if j.active]

    def get(self, job_id: str) -> Job:
        job = self._read(self._path(job_id))
        if job is None:
            raise UnirexError(f"no job '{job_id}' in {self.dir}")
        return job

    def find_by_run(self, run_id: str) -> Job | None:
        return next((j for j in reversed(self.jobs()) if j.run_id == run_id), None)

    # --- changes ----------------------------------------------------------------------------------
    def add(self, jobs: list[Job]) -> list[Job]:
        now = time.time()
        out = []
        with self.locked():
            for i, job in enumerate(jobs):
                job = dataclasses.replace(job, status=RunStatus.WAITING.value, created_at=now + i * 1e-6)
                self._write(job)
                out.append(job)
        return out

    def update(self, job_id: str, **fields) -> Job:
        with self.locked():
            job = dataclasses.replace(self.get(job_id), **fields)
            self._write(job)
        return job

    def claim_next(self, launcher: str | tuple[str, ...] = "local", job_ids: set[str] | None = None) -> Job | None:
        """The oldest waiting job of ``launcher`` (one name or several), marked running by this process; None if
        there is none. A waiting job reserved for another live process (its ``owner``) is left to it;
        ``job_ids`` narrows the choice to those jobs."""
        launchers = (launcher,) if isinstance(launcher, str) else tuple(launcher)
        me = _owner()
        with self.locked():
            for job in self.jobs(include_final=False):
                if (job.status == RunStatus.WAITING and job.launcher in launchers
                        and (job_ids is None or job.job_id in job_ids)
                        and (job.owner in (None, me) or not _owner_alive(job.owner))):
                    job = dataclasses.replace(job, status=RunStatus.RUNNING.value, started_at=time.time(), owner=me)
                    self._write(job)
                    return job
        return None

    def take_over(self, job_id: str, previous_owner: str | None) -> Job | None:
        """Make this process the owner of a running job whose owner was ``previous_owner`` (a dead process);
        None when the job changed meanwhile (another process took it, or it ended)."""
        with self.locked():
            job = self.get(job_id)
            if job.status != RunStatus.RUNNING or job.owner != previous_owner:
                return None
            job = dataclasses.replace(job, owner=_owner())
            self._write(job)
            return job

    def finish(self, job_id: str, status: str, error: str | None = None) -> Job:
        if status not in FINAL_JOB_STATES:
            raise ValueError(f"{status!r} is not a final job state")
        job = self.update(job_id, status=status, error=None if error is None else scrub_secrets(error),
                          ended_at=time.time())
        self.cancel_marker(job_id).unlink(missing_ok=True)
        return job

    def cancel(self, job_id: str) -> Job:
        """A waiting job leaves the queue (status ``cancelled``); a running one is asked to stop (its token
        sees the request within one step or evaluation batch). A finished job is an error."""
        with self.locked():
            job = self.get(job_id)
            if job.status == RunStatus.WAITING:
                job = dataclasses.replace(job, status=RunStatus.CANCELLED.value, ended_at=time.time())
                self._write(job)
                return job
            if job.status == RunStatus.RUNNING:
                self.cancel_marker(job_id).write_text(str(time.time()))
                return job
        raise UnirexError(f"job {job_id} is already {job.status}")

    def cancel_requested(self, job_id: str) -> bool:
        return self.cancel_marker(job_id).exists()

    def restore(self) -> list[Job]:
        """After a restart: running jobs whose process is gone become ``interrupted`` (their run folder
        reads interrupted too); waiting jobs stay in the queue. Returns the waiting jobs."""
        with self.locked():
            for job in self.jobs(include_final=False):
                if job.status == RunStatus.RUNNING and job.launcher == "local" and not _owner_alive(job.owner):
                    self._write(dataclasses.replace(job, status=RunStatus.INTERRUPTED.value, ended_at=time.time(),
                                                    error="the process running it stopped"))
                    self.cancel_marker(job.job_id).unlink(missing_ok=True)
        return [j for j in self.jobs(include_final=False) if j.status == RunStatus.WAITING]


class CancelToken:
    """What the engine checks every step: this process's cancel event or the job's marker file (checked at
    most every ``interval_s`` seconds, so a step costs no file access)."""

    def __init__(self, queue: JobQueue, job_id: str, interval_s: float = 0.25):
        self.queue, self.job_id, self.interval_s = queue, job_id, interval_s
        self.event = threading.Event()
        self._checked = 0.0

    def set(self) -> None:
        self.event.set()

    def is_set(self) -> bool:
        if self.event.is_set():
            return True
        now = time.monotonic()
        if now - self._checked >= self.interval_s:
            self._checked = now
            if self.queue.cancel_requested(self.job_id):
                self.event.set()
        return self.event.is_set()


Runner = Callable[[Job, CancelToken], str]


class Worker:
    """One background thread running the queue's local jobs one at a time.

    Args:
        queue: the workspace's :class:`JobQueue`.
        runner: ``runner(job, token) -> final status`` (the service passes one that runs the engine).
        on_change: called after a job starts or ends (the service ingests the run into the store).
    """

    def __init__(self, queue: JobQueue, runner: Runner, on_change: Callable[[Job], None] | None = None):
        self.queue, self.runner, self.on_change = queue, runner, on_change
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: tuple[Job, CancelToken] | None = None

    def start(self) -> "Worker":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="unirex-worker", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop after the current job (a running job is asked to cancel)."""
        self._stop.set()
        if self.current is not None:
            self.current[1].set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def cancel_local(self, job_id: str) -> bool:
        """Set the in-process cancel event of the running job ``job_id`` (immediate)."""
        cur = self.current
        if cur is not None and cur[0].job_id == job_id:
            cur[1].set()
            return True
        return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.queue.claim_next("local")
            if job is None:
                self._wake.wait(POLL_S)
                self._wake.clear()
                continue
            token = CancelToken(self.queue, job.job_id)
            self.current = (job, token)
            self._notify(job)
            error = None
            try:
                status = self.runner(job, token)
            except UnirexError as e:
                status, error = RunStatus.FAILED.value, str(e)
            except Exception as e:  # noqa: BLE001 - a failing job must not stop the worker
                status, error = RunStatus.FAILED.value, f"{type(e).__name__}: {e}"
            finally:
                self.current = None
            try:
                job = self.queue.finish(job.job_id, status, error)
            except DiskFullError:  # its file stays `running`; read as interrupted once this process is gone
                pass
            self._notify(job)

    def _notify(self, job: Job) -> None:
        if self.on_change is not None:
            try:
                self.on_change(job)
            except Exception:  # noqa: BLE001 - the store catches up at the next sync
                pass


def run_folder(workspace: Path, job: Job) -> RunDir:
    return RunDir(Path(workspace) / "runs" / job.run_id)


__all__ = ["CancelToken", "JobQueue", "Worker", "new_job_id", "owner_alive", "this_owner"]
