"""The one small interface every cluster launcher implements, and the records that cross it.

A launcher hands a :class:`RemoteJob` to an engine that runs it somewhere else (a Ray task, a Slurm job)
and answers, when polled, how it ended (:class:`Outcome`). What runs on the other side is
:func:`workbench.launchers.remote.run_job`: the engine, with the job's run id and command line, writing
the run folder into the shared workspace. The launcher never reads run folders; the dispatcher
(:mod:`workbench.launchers.dispatch`) does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from unirex.runs import RunDir
from workbench.launchers.options import LauncherOptions

#: how a remote job can end, as a job state of the queue
OUTCOMES = ("completed", "failed", "cancelled", "interrupted")


@dataclass(frozen=True)
class RemoteJob:
    """What a worker needs to run one queued job (pickled to it: plain values only)."""

    job_id: str
    run_id: str
    overrides: tuple[str, ...]
    command: str
    workspace: str  # absolute; the same path on every node (a shared filesystem)
    launcher: str
    threads: int = 0  # CPU threads for PyTorch on the worker (the job's launcher.cpus_per_job); 0: its default

    @property
    def run_dir(self) -> Path:
        return Path(self.workspace) / "runs" / self.run_id

    @property
    def logs_dir(self) -> Path:
        """``<run folder>/logs``: the launcher's stdout/stderr of this job (RunDir.logs_dir)."""
        return RunDir(self.run_dir).logs_dir


@dataclass(frozen=True)
class JobResult:
    """What :func:`~workbench.launchers.remote.run_job` returns from the worker."""

    status: str  # the run's final status: completed | failed | cancelled, or interrupted (a Slurm time limit)
    error: str | None = None
    host: str | None = None


@dataclass(frozen=True)
class Outcome:
    """How a remote job ended, as its launcher saw it. ``interrupted``: the worker was lost (its node died,
    it was killed, its time limit passed) without writing its end."""

    status: str
    message: str | None = None

    def __post_init__(self):
        if self.status not in OUTCOMES:
            raise ValueError(f"{self.status!r} is not one of {OUTCOMES}")


class Launcher(ABC):
    """Submits jobs to one engine and tracks them by the handle it returns.

    One instance serves every job of its engine in a process (the dispatcher keeps it); ``options`` passed to
    :meth:`submit` are the job's own (GPUs, CPUs, partition, ...).
    """

    name: ClassVar[str]
    #: whether a job submitted by another (now dead) process can be polled and cancelled from here
    can_reattach: ClassVar[bool] = False

    @abstractmethod
    def submit(self, job: RemoteJob, options: LauncherOptions) -> str:
        """Start ``job``; return the engine's id of it (the handle recorded in the Job)."""

    @abstractmethod
    def poll(self, handle: str) -> Outcome | None:
        """None while the job waits or runs; its :class:`Outcome` once it ended."""

    @abstractmethod
    def cancel(self, handle: str) -> None:
        """The hard stop: the engine's own cancel (the job's worker is killed if it still runs)."""

    def reattach(self, job: RemoteJob, handle: str, options: LauncherOptions) -> bool:
        """Follow a job another process submitted (it died). False where the engine cannot (a Ray task ends
        with the process that submitted it)."""
        return False

    def matches(self, options: LauncherOptions) -> bool:
        """Whether this instance can take a job with ``options`` (same cluster connection)."""
        return True

    def close(self) -> None:
        """Release the engine (a local Ray instance this launcher started is shut down)."""


__all__ = ["JobResult", "Launcher", "OUTCOMES", "Outcome", "RemoteJob"]
